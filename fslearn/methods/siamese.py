r"""Siamese networks (Koch, Zemel and Salakhutdinov, 2015), and their contrastive and triplet
variants.

One embedding network :math:`f` (the *twins* share every weight) maps both images of a pair to
vectors; the probability that they show the same class is a sigmoid of a learned weighted L1
distance between the vectors,

.. math:: p(x_1, x_2) = \sigma\Big(\sum_j \alpha_j \,\lvert f(x_1)_j - f(x_2)_j \rvert + b\Big),

trained as *verification*, with binary cross-entropy on same (:math:`y = 1`) and different
(:math:`y = 0`) pairs, :math:`-[y \log p + (1 - y) \log(1 - p)]` (``loss="bce"``).

Two common variants learn the embedding from a distance alone, with no weighting:

* ``loss="contrastive"`` (Hadsell, Chopra and LeCun, 2006), on the Euclidean distance
  :math:`D = \lVert f(x_1) - f(x_2) \rVert_2`: same pairs are pulled together, different pairs
  pushed at least a margin :math:`m` apart,

  .. math:: L = y \tfrac12 D^2 + (1 - y) \tfrac12 \max(0,\ m - D)^2 ;

* ``loss="triplet"`` (Schroff, Kalenichenko and Philbin, 2015), on the *squared* Euclidean
  distance between embeddings normalised to unit length (as in their FaceNet): an anchor must be
  closer to a positive (same class) than to a negative (another class) by a margin :math:`m`,

  .. math:: L = \max\big(0,\ \lVert f(a) - f(p) \rVert^2 - \lVert f(a) - f(n) \rVert^2 + m\big).

All losses are averaged over the batch (the papers sum; only the learning rate's scale differs).

Few-shot classification compares a query with every support image: the similarity is
:math:`p(x_q, x_i)` (bce), or minus the distance the variant was trained on. A class's score is
the *mean* similarity to its support images, so one-shot classification picks the most similar
support image, as in Koch et al. For ``bce`` the logits are the logarithm of that mean
probability (same order; their softmax is each class's mean :math:`p` divided by the sum over
classes, what ``fslearn predict`` reports).

The embedding is the course's Conv4 backbone, shared with the other methods, so that the
comparison is about the method. Koch et al. used a larger convnet on 105x105 images (four
convolutional layers up to 256 filters, then a 4096-unit sigmoid layer whose outputs the L1
distance compares), trained on 40 background alphabets with affine distortions, and reported
92.0% on their own task, 20-way one-shot *within* an alphabet; reproductions of that task report
55-80%: the paper tuned heavily. The figures set beside this module in ``fslearn report`` are
those tabulated for Siamese networks under the Vinyals protocol (97.3 / 98.4 / 88.2 / 97.0% for
5-way 1/5-shot and 20-way 1/5-shot), by Vinyals et al. (2016) and Finn et al. (2017).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fslearn._modes import evaluation_mode
from fslearn.backbones import Conv4
from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import Episode
from fslearn.data.pairs import PairBatch, PairSampler, TripletBatch, TripletSampler
from fslearn.methods.base import MetricMethod
from fslearn.methods.options import Family, Option
from fslearn.results import PaperFigures

if TYPE_CHECKING:
    from fslearn.training import TrainingConfig

__all__ = [
    "DEFAULT_MARGINS",
    "LOSSES",
    "SiameseNetwork",
    "class_means",
    "contrastive_loss",
    "euclidean_distance",
    "log_class_means",
    "pairwise",
    "squared_distance",
    "triplet_loss",
    "weighted_l1_logit",
]

#: the training objectives: Koch et al.'s verification, and the two distance-based variants
LOSSES = ("bce", "contrastive", "triplet")
#: the margin of each distance-based loss when none is given: 1 for the contrastive loss on
#: unnormalised embeddings, FaceNet's 0.2 for the triplet loss on unit vectors
DEFAULT_MARGINS = {"contrastive": 1.0, "triplet": 0.2}


def weighted_l1_logit(z1: Tensor, z2: Tensor, alpha: Tensor, bias: Tensor) -> Tensor:
    """``sum_j alpha_j |z1_j - z2_j| + b``, the logit of P(same).

    Args:
        z1, z2: ``[..., D]`` embeddings (broadcast against each other).
        alpha: ``[D]`` weight of each component's distance.
        bias: ``[]`` the offset ``b``.

    Returns:
        ``[...]``.
    """
    return (z1 - z2).abs() @ alpha + bias


def squared_distance(z1: Tensor, z2: Tensor) -> Tensor:
    """``||z1 - z2||^2``: ``[..., D]`` x ``[..., D]`` (broadcast) -> ``[...]``."""
    return (z1 - z2).pow(2).sum(dim=-1)


def euclidean_distance(z1: Tensor, z2: Tensor, eps: float = 1e-12) -> Tensor:
    """``||z1 - z2||``: ``[..., D]`` x ``[..., D]`` (broadcast) -> ``[...]``.

    The squared distance is clamped at ``eps`` before the square root, whose slope is infinite
    at 0: two identical embeddings get a zero gradient instead of NaN."""
    return squared_distance(z1, z2).clamp_min(eps).sqrt()


def contrastive_loss(distance: Tensor, same: Tensor, margin: float) -> Tensor:
    """Hadsell et al.'s ``y D^2 / 2 + (1 - y) max(0, m - D)^2 / 2``, averaged over the pairs.

    Args:
        distance: ``[batch]`` Euclidean distances ``D`` between the pairs' embeddings.
        same: ``[batch]`` 1.0 for a same pair, 0.0 for a different one.
        margin: ``m``, how far apart different pairs must be before they cost nothing.
    """
    pull = distance.pow(2) / 2
    push = (margin - distance).clamp_min(0).pow(2) / 2
    return (same * pull + (1 - same) * push).mean()


def triplet_loss(positive_distance: Tensor, negative_distance: Tensor, margin: float) -> Tensor:
    """Schroff et al.'s ``max(0, d(a, p) - d(a, n) + m)``, averaged over the triplets.

    Args:
        positive_distance: ``[batch]`` squared distances from each anchor to its positive.
        negative_distance: ``[batch]`` squared distances from each anchor to its negative.
        margin: ``m``, by how much the negative must be farther than the positive.
    """
    return (positive_distance - negative_distance + margin).clamp_min(0).mean()


def pairwise(score: Callable[[Tensor, Tensor], Tensor], query_z: Tensor, support_z: Tensor,
             max_numbers: int = 2**24) -> Tensor:
    """``score`` of every query against every support image.

    Args:
        score: a function of two broadcast ``[..., D]`` embeddings, returning ``[...]``.
        query_z: ``[tasks, n_query_total, D]``.
        support_z: ``[tasks, n_support, D]``.
        max_numbers: the queries are scored in chunks whose broadcast ``[tasks, chunk,
            n_support, D]`` holds at most this many numbers (a batch of 50 20-way 5-shot
            episodes would need 96 million at once).

    Returns:
        ``[tasks, n_query_total, n_support]``.
    """
    tasks, n_query, dim = query_z.shape
    n_support = support_z.shape[1]
    if n_query == 0:
        return query_z.new_zeros(tasks, 0, n_support)
    step = max(1, max_numbers // max(1, tasks * n_support * dim))
    return torch.cat([score(query_z[:, start : start + step, None], support_z[:, None])
                      for start in range(0, n_query, step)], dim=1)


def class_means(values: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    """The mean of ``values`` over each class's support images.

    Args:
        values: ``[tasks, n_query_total, n_support]`` one value per query and support image.
        support_y: ``[tasks, n_support]`` labels in ``0..n_way-1`` (any number per class).
        n_way: number of classes.

    Returns:
        ``[tasks, n_query_total, n_way]``.
    """
    one_hot = F.one_hot(support_y, n_way).to(values.dtype)  # [tasks, n_support, n_way]
    return (values @ one_hot) / one_hot.sum(dim=1).unsqueeze(1)


def log_class_means(log_values: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    """``log(class_means(exp(log_values)))``, computed without underflow: the log of each
    class's mean probability from log-probabilities. Shapes as :func:`class_means`."""
    top = log_values.amax(dim=-1, keepdim=True).detach()
    return class_means((log_values - top).exp(), support_y, n_way).log() + top


class SiameseNetwork(MetricMethod):
    """Twin embeddings compared by a learned weighted L1 distance (or a plain distance).

    Args:
        backbone: the embedding network ``f``; a :class:`~fslearn.backbones.Conv4` with
            ``in_channels`` input channels when omitted.
        in_channels: image channels for the default backbone.
        image_size: side of the square input images (sets the size of the weights ``alpha``).
        loss: ``"bce"`` (Koch et al.: sigmoid of the weighted L1 distance, binary
            cross-entropy on pairs), ``"contrastive"`` (on pairs) or ``"triplet"`` (on triplets).
        margin: the margin of the contrastive or triplet loss (default: see
            :data:`DEFAULT_MARGINS`); the bce loss has none.

    Raises:
        ValueError: an unknown loss, a margin for the bce loss, or a margin that is not positive.
    """

    name = "siamese"
    #: Koch et al. (2015)'s network (binary cross-entropy on pairs) as tabulated under the
    #: Vinyals protocol by Vinyals et al. (2016) and Finn et al. (2017), Table 1. Koch et al.'s
    #: own protocol, 20-way one-shot within an alphabet after training on 40 background
    #: alphabets with affine distortions, gave 92.0%: not comparable
    paper_figures = MappingProxyType({"classification": PaperFigures(
        "Koch, Zemel and Salakhutdinov (2015), Siamese Neural Networks for One-shot Image "
        "Recognition, ICML Deep Learning Workshop; Omniglot figures under the Vinyals protocol "
        "as tabulated by Vinyals et al. (2016) and Finn et al. (2017), Table 1 (the paper's own "
        "protocol, 20-way one-shot within an alphabet: 92.0%)",
        {(5, 1): 0.973, (5, 5): 0.984, (20, 1): 0.882, (20, 5): 0.970})})
    family = Family(
        "Siamese networks",
        summary="trained on same/different pairs or on triplets instead of episodes, validated "
        "on --val-way --val-shot episodes",
        why=", which train on pairs", refuses=("way", "shot", "query", "tasks"),
        trains_on="trains on pairs or triplets, --pairs-per-step of them per step "
        "(validation episodes: --val-way, --val-shot, --val-query)")
    #: Koch et al.'s mini-batch of pairs
    training_defaults = MappingProxyType({"batch_size": 128})
    cli_options = (
        Option(("--pairs-per-step",), "pairs (half same, half different), or triplets, per "
               "optimizer step", type=int, metavar="B", constructor=False,
               config_field="batch_size", exclusive=True),
        Option(("--loss",), "bce: a sigmoid of a learned weighted L1 distance, binary "
               "cross-entropy on pairs (Koch et al.); contrastive: Hadsell et al.'s loss on the "
               "Euclidean distance of pairs; triplet: Schroff et al.'s loss on squared "
               "distances of unit-length embeddings", choices=LOSSES, exclusive=True),
        Option(("--margin",), "margin of the contrastive or triplet loss", type=float,
               metavar="M", exclusive=True, default_text=", ".join(
                   f"{k} {v:g}" for k, v in DEFAULT_MARGINS.items()) + "; bce has none"),
    )

    @classmethod
    def describe_training(cls, config: TrainingConfig, options: Mapping[str, Any]
                          ) -> tuple[str, str]:
        """Runs are named after the loss, which also sets pairs or triplets:
        ``bce-128pairs``, ``128 pairs per step (bce loss)``."""
        loss = options["loss"]
        kind = "triplets" if loss == "triplet" else "pairs"
        return (f"{loss}-{config.batch_size}{kind}",
                f"{config.batch_size} {kind} per step ({loss} loss)")

    def __init__(self, backbone: nn.Module | None = None, in_channels: int = 1,
                 image_size: int = 28, loss: str = "bce", margin: float | None = None) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if loss == "bce" and margin is not None:
            raise ValueError("The bce loss has no margin; a margin is for loss='contrastive' or "
                             "'triplet' (--loss on the command line): choose one of them, or "
                             "leave the margin out.")
        margin = DEFAULT_MARGINS.get(loss) if margin is None else float(margin)
        if margin is not None and not (math.isfinite(margin) and margin > 0):
            raise ValueError(f"margin must be a positive number, got {margin}")
        super().__init__(backbone if backbone is not None else Conv4(in_channels))
        self.loss_name, self.margin = loss, margin
        if loss == "bce":
            dim = _embedding_size(self.backbone, in_channels, image_size)
            # initialised as nn.Linear(dim, 1) would be
            bound = 1 / math.sqrt(dim)
            self.alpha = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
            self.bias = nn.Parameter(torch.zeros(()))
        self.hparams = {"in_channels": in_channels, "image_size": image_size, "loss": loss,
                        "margin": margin}

    def embed(self, x: Tensor) -> Tensor:
        """``x: [batch, C, H, W]`` -> ``[batch, D]``; unit vectors for the triplet loss."""
        z = self.backbone(x)
        return F.normalize(z, dim=-1) if self.loss_name == "triplet" else z

    def pair_score(self, z1: Tensor, z2: Tensor) -> Tensor:
        """How alike two embeddings are, ``[..., D]`` x ``[..., D]`` (broadcast) -> ``[...]``:
        the logit of P(same) (bce), else minus the distance the loss is defined on (Euclidean
        for the contrastive loss, squared Euclidean for the triplet loss)."""
        if self.loss_name == "bce":
            return weighted_l1_logit(z1, z2, self.alpha, self.bias)
        if self.loss_name == "contrastive":
            return -euclidean_distance(z1, z2)
        return -squared_distance(z1, z2)

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        similarity = pairwise(self.pair_score, query_z, support_z)  # [tasks, queries, support]
        if self.loss_name == "bce":  # the log of the mean P(same) with each class's images
            return log_class_means(F.logsigmoid(similarity), support_y, n_way)
        return class_means(similarity, support_y, n_way)  # minus the mean distance

    def loss(self, episode: Episode | PairBatch | TripletBatch) -> tuple[Tensor, Tensor]:
        """``(scalar loss, outputs)`` on a batch of pairs or triplets: the outputs are the
        logits of P(same) (bce), the Euclidean distances (contrastive), or ``[batch, 2]``
        squared distances anchor-positive and anchor-negative (triplet). On an episode: the
        cross-entropy of the episode's scores, as every method."""
        if isinstance(episode, Episode):
            return super().loss(episode)
        batch = episode
        wanted = TripletBatch if self.loss_name == "triplet" else PairBatch
        if not isinstance(batch, wanted):
            raise ValueError(f"A Siamese network with the {self.loss_name} loss trains on "
                             f"{wanted.__name__}es, not on {type(batch).__name__}es.")
        if isinstance(batch, TripletBatch):
            # one pass through the backbone: batch norm sees the whole batch, as in training
            anchor, positive, negative = self.embed(
                torch.cat([batch.anchor, batch.positive, batch.negative])).chunk(3)
            distances = torch.stack([squared_distance(anchor, positive),
                                     squared_distance(anchor, negative)], dim=-1)
            return triplet_loss(distances[:, 0], distances[:, 1], self._margin()), distances
        z1, z2 = self.embed(torch.cat([batch.first, batch.second])).chunk(2)
        if self.loss_name == "bce":
            logits = self.pair_score(z1, z2)
            return F.binary_cross_entropy_with_logits(logits, batch.same), logits
        distance = euclidean_distance(z1, z2)
        return contrastive_loss(distance, batch.same, self._margin()), distance

    def correct(self, logits: Tensor, episode: Episode | PairBatch | TripletBatch
                ) -> tuple[int, int] | None:
        """Right answers among the outputs of :meth:`loss`, for the training loop's running
        accuracy. Pairs: verification, "same" when P(same) > 1/2 (bce) or when the distance is
        below half the margin, halfway between where the contrastive loss pulls same pairs (0)
        and where it stops pushing different ones (the margin). Triplets: the positive is closer
        to the anchor than the negative."""
        if isinstance(episode, Episode):
            return super().correct(logits, episode)
        if isinstance(episode, TripletBatch):
            return int((logits[:, 0] < logits[:, 1]).sum()), episode.batch
        said_same = logits > 0 if self.loss_name == "bce" else logits < self._margin() / 2
        return int((said_same == episode.same.bool()).sum()), episode.batch

    def training_sampler(self, dataset: FewShotDataset, config: TrainingConfig
                         ) -> PairSampler | TripletSampler:
        """Balanced same/different pairs (bce, contrastive) or triplets (triplet),
        ``config.batch_size`` of them per step."""
        kind = "triplets" if self.loss_name == "triplet" else "pairs"
        if config.batch_size is None:
            raise ValueError(f"A Siamese network learns from {kind}, not episodes: set "
                             f"TrainingConfig.batch_size, the {kind} per step (Koch et al.: "
                             f"128).")
        sampler = TripletSampler if self.loss_name == "triplet" else PairSampler
        return sampler(dataset, config.batch_size, config.seed)

    def _margin(self) -> float:
        assert self.margin is not None  # the distance-based losses always have one
        return self.margin


def _embedding_size(backbone: nn.Module, in_channels: int, image_size: int) -> int:
    """Length of the backbone's output for one ``image_size`` square image (in evaluation mode,
    so that batch norm's running statistics are left alone)."""
    with evaluation_mode(backbone), torch.no_grad():
        return int(backbone(torch.zeros(1, in_channels, image_size, image_size)).shape[-1])
