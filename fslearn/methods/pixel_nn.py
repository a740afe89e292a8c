r"""A baseline with nothing learned: 1-nearest-neighbour on raw pixels.

The embedding is the identity on pixels, :math:`f(x) = \operatorname{vec}(x)`, and a query takes
the label of the support image nearest to it in squared Euclidean distance,

.. math:: \hat y(x) = y_{i^\star}, \qquad
          i^\star = \arg\min_{(x_i, y_i) \in S} \lVert \operatorname{vec}(x) -
          \operatorname{vec}(x_i) \rVert^2 .

This is nearest *neighbour*, not nearest prototype: with several shots per class the score of
class ``n`` is minus the distance to the *closest* of its support images. With one shot the two
coincide. It has no parameters, so it cannot be trained; it measures how far pixels alone go.
"""

from __future__ import annotations

from types import MappingProxyType

from torch import Tensor, nn

from fslearn.methods.base import MetricMethod
from fslearn.results import PaperFigures

__all__ = ["PixelNearestNeighbour"]


class PixelNearestNeighbour(MetricMethod):
    """Label each query with the class of its nearest support image in pixel space.

    Args:
        in_channels: accepted for the same call signature as the other methods; unused.

    The scores are ``-min_i ||x - x_i||^2`` over the support images ``x_i`` of each class, so a
    softmax over them is meaningless but their arg-max is the 1-nearest-neighbour prediction.
    """

    name = "pixel_nn"
    #: Vinyals et al. (2016), Table 1, "Pixels": nearest neighbour on raw pixels with a cosine
    #: distance, nothing learned (this one uses the squared Euclidean distance)
    paper_figures = MappingProxyType({"classification": PaperFigures(
        "Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra (2016), Matching Networks for "
        "One Shot Learning, NeurIPS, Table 1 (Omniglot, \"Pixels\", cosine distance)",
        {(5, 1): 0.417, (5, 5): 0.632, (20, 1): 0.267, (20, 5): 0.426})})

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__(nn.Flatten())
        self.hparams = {"in_channels": in_channels}

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        # [tasks, n_query_total, n_support] squared distances to every support image, as
        # ||q||^2 - 2 q.s + ||s||^2 (a matrix product: no [queries, support, pixels] tensor)
        distances = (
            query_z.pow(2).sum(-1, keepdim=True)
            - 2 * query_z @ support_z.transpose(1, 2)
            + support_z.pow(2).sum(-1).unsqueeze(1)
        ).clamp_min(0)
        # per class, the distance to its closest support image
        closest = distances.new_full((*distances.shape[:2], n_way), float("inf"))
        index = support_y.unsqueeze(1).expand_as(distances)
        closest = closest.scatter_reduce(2, index, distances, reduce="amin")
        return -closest
