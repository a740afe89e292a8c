r"""Prototypical Networks (Snell, Swersky and Zemel, 2017).

Each class is represented by the mean of its embedded support images, its *prototype*

.. math:: c_n = \frac{1}{K} \sum_{(x_i, y_i) \in S,\ y_i = n} f_\theta(x_i),

and a query is classified by a softmax over negative squared Euclidean distances to the prototypes

.. math:: p(y = n \mid x) = \frac{\exp(-\lVert f_\theta(x) - c_n \rVert^2)}
                                 {\sum_{n'} \exp(-\lVert f_\theta(x) - c_{n'} \rVert^2)}.
"""

from __future__ import annotations

from types import MappingProxyType

import torch.nn.functional as F
from torch import Tensor, nn

from fslearn.backbones import Conv4
from fslearn.methods.base import MetricMethod
from fslearn.results import PaperFigures

__all__ = ["PrototypicalNetwork", "prototypes", "squared_euclidean_distance"]


def prototypes(support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    """Mean embedding of each class.

    Args:
        support_z: ``[tasks, n_support, D]`` embedded support images.
        support_y: ``[tasks, n_support]`` labels in ``0..n_way-1``.
        n_way: number of classes.

    Returns:
        ``[tasks, n_way, D]``; row ``n`` is the mean of the support embeddings labelled ``n``.
    """
    one_hot = F.one_hot(support_y, n_way).to(support_z.dtype)  # [tasks, n_support, n_way]
    sums = one_hot.transpose(1, 2) @ support_z  # [tasks, n_way, D]
    return sums / one_hot.sum(dim=1).unsqueeze(-1)


def squared_euclidean_distance(query_z: Tensor, centres: Tensor) -> Tensor:
    """``||q - c||^2`` for every query and centre.

    Args:
        query_z: ``[tasks, n_query_total, D]``.
        centres: ``[tasks, n_way, D]``.

    Returns:
        ``[tasks, n_query_total, n_way]``.
    """
    return (query_z.unsqueeze(2) - centres.unsqueeze(1)).pow(2).sum(dim=-1)


class PrototypicalNetwork(MetricMethod):
    """Classify queries by their squared Euclidean distance to class prototypes.

    Args:
        backbone: the embedding network :math:`f_\\theta`; a :class:`~fslearn.backbones.Conv4`
            with ``in_channels`` input channels when omitted.
        in_channels: image channels for the default backbone.
    """

    name = "protonet"
    #: Snell et al. (2017), Table 1, Euclidean distance, trained 60-way
    paper_figures = MappingProxyType({"classification": PaperFigures(
        "Snell, Swersky and Zemel (2017), Prototypical Networks for Few-shot Learning, "
        "NeurIPS, Table 1",
        {(5, 1): 0.988, (5, 5): 0.997, (20, 1): 0.960, (20, 5): 0.989})})

    def __init__(self, backbone: nn.Module | None = None, in_channels: int = 1) -> None:
        super().__init__(backbone if backbone is not None else Conv4(in_channels))
        self.hparams = {"in_channels": in_channels}

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        return -squared_euclidean_distance(query_z, prototypes(support_z, support_y, n_way))
