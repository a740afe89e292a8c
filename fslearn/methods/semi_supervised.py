r"""Semi-supervised prototypes (Ren, Triantafillou, Ravi, Snell, Swersky, Tenenbaum, Larochelle
and Zemel, 2018): an episode also brings *unlabelled* images, some of its own classes, some of
*distractor* classes, and they refine the prototypes before the queries are classified.

The prototypes :math:`p_c` of the labelled support set (Prototypical Networks) are refined by one
step of soft k-means. Each unlabelled embedding :math:`\tilde h_j` is assigned softly to the
classes,

.. math:: \tilde z_{jc} = \frac{\exp(-\lVert \tilde h_j - p_c \rVert^2)}
                             {\sum_{c'} \exp(-\lVert \tilde h_j - p_{c'} \rVert^2)},

and every prototype becomes the weighted mean of its labelled images (weight 1) and of all the
unlabelled ones (weight :math:`\tilde z_{jc}`):

.. math:: \tilde p_c = \frac{\sum_i h_i z_{ic} + \sum_j \tilde h_j \tilde z_{jc}}
                            {\sum_i z_{ic} + \sum_j \tilde z_{jc}}.

Queries are then scored as in Prototypical Networks, :math:`-\lVert h(x) - \tilde p_c\rVert^2`.
Three refinements (``refinement``):

* ``"soft"``: the step above.
* ``"cluster"``: one more cluster, for the distractors, with its prototype at the origin and a
  learned radius :math:`r` (the classes' radii are 1): the assignment's logits are
  :math:`-\lVert \tilde h_j - p_c\rVert^2 / (2 r_c^2) - \log r_c`, a Gaussian's log-density,
  and the images the distractor cluster takes count for no class.
* ``"masked"``: each unlabelled image's weight for class :math:`c` is also multiplied by a soft
  mask :math:`m_{jc} = \sigma(\gamma_c (\beta_c - \tilde d_{jc}))` of its normalised distance
  :math:`\tilde d_{jc} = d_{jc} / \frac1M \sum_{j'} d_{j'c}`; a small network reads the
  statistics of the class's normalised distances (min, max, variance, skewness, kurtosis) and
  gives the threshold :math:`\beta_c` and slope :math:`\gamma_c`.

Conventions read in the authors' code (renmengye/few-shot-ssl-public, ``fewshot/models/``):
one refinement step (their ``num_cluster_steps`` default); the distractor cluster's radius is
learned as its logarithm, starting at 100; the masked model's network is 5 -> 20 (tanh) -> 3
with weights drawn with standard deviation 0.01, its inputs carry no gradient, and
:math:`\beta = \exp(o_0)`, :math:`\gamma = \exp(o_2)` (:math:`o_1` only moves the threshold
over several refinement steps). The labelled support images enter the update of their own
class only, as here. One difference: the authors' cluster model scores queries with the radii's
logits, :math:`-d/2` for the classes (a temperature of 2 against this module's :math:`-d`), over
the classes *and* the distractor cluster (a query it takes counts as wrong), whose centre has
moved to the mean of the images it took; here queries are scored over the classes alone.

Their Omniglot protocol, as their code runs it (``run_exp.py``, ``fewshot/data/omniglot.py``,
``refinement_dataset.py``): 28x28 images, the 90-degree rotations as new classes (the Vinyals
split: 4,112 training classes, 1,692 test classes); each training class split once, seeded, into
10% labelled images (2 of 20) and 90% unlabelled ones; training episodes of 5 classes with one
support and one query image each from the labelled part, M = 5 unlabelled images of each class
and of H = 5 distractor classes from the unlabelled part (``--labelled-fraction``,
``--unlabelled``, ``--distractors``; the defaults here); test episodes with every image
available: 1 support, 14 queries and 5 unlabelled images per class, 5 distractor classes, 600
episodes. Adam at 1e-3 for 20,000 episodes, halved six times from step 6,000 (``--lr-step
3000 --lr-gamma 0.5`` halves as often, from step 3,000), L2 of 5e-5 on the convolution
kernels (``--weight-decay`` also covers biases and batch norm), the final weights kept (no
selection on validation). The "20 unlabelled at test" of their README is for ImageNet: on
Omniglot, 1 + 20 images leave no query.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fslearn.backbones import Conv4
from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.methods.base import MetricMethod
from fslearn.methods.options import Option
from fslearn.methods.protonet import prototypes, squared_euclidean_distance
from fslearn.results import PaperFigures
from fslearn.training_config import TrainingConfig

__all__ = ["REFINEMENTS", "DistanceMask", "SemiSupervisedPrototypes", "cluster_assignments",
           "distance_statistics", "refine_prototypes", "soft_assignments"]

REFINEMENTS = ("soft", "cluster", "masked")
#: Ren et al.'s Omniglot test episodes (their code): every one of a class's 20 images used
REN_TEST_EPISODES = MappingProxyType({"n_way": 5, "k_shot": 1, "n_query": 14, "unlabelled": 5})
#: their distractor classes per episode, in training and test alike
REN_DISTRACTORS = 5
#: the distractor cluster's radius before training (the authors' ``init_radius``)
INITIAL_DISTRACTOR_RADIUS = 100.0


def soft_assignments(centres: Tensor, unlabelled_z: Tensor) -> Tensor:
    """Soft k-means assignments: a softmax over the centres of minus the squared distances.

    Args:
        centres: ``[tasks, n_way, D]``.
        unlabelled_z: ``[tasks, n_unlabelled, D]``.

    Returns:
        ``[tasks, n_unlabelled, n_way]``; each row sums to 1.
    """
    return (-squared_euclidean_distance(unlabelled_z, centres)).softmax(dim=-1)


def cluster_assignments(centres: Tensor, unlabelled_z: Tensor, log_radius: Tensor) -> Tensor:
    """Soft assignments to the classes and to a distractor cluster at the origin.

    The logits are Gaussian log-densities, ``-d / (2 r^2) - log r`` (the constant
    ``log(2 pi) / 2`` cancels), with radius 1 for the classes and ``exp(log_radius)`` for the
    distractor cluster.

    Args:
        centres: ``[tasks, n_way, D]``.
        unlabelled_z: ``[tasks, n_unlabelled, D]``.
        log_radius: scalar, the distractor cluster's log-radius.

    Returns:
        ``[tasks, n_unlabelled, n_way + 1]``, the distractor cluster last; rows sum to 1.
    """
    with_origin = torch.cat([centres, torch.zeros_like(centres[:, :1])], dim=1)
    distance = squared_euclidean_distance(unlabelled_z, with_origin)
    log_radii = torch.cat([torch.zeros(centres.shape[1], dtype=centres.dtype,
                                       device=centres.device), log_radius.reshape(1)])
    logits = -distance / (2 * torch.exp(2 * log_radii)) - log_radii
    return logits.softmax(dim=-1)


def refine_prototypes(support_z: Tensor, support_y: Tensor, unlabelled_z: Tensor,
                      weights: Tensor, n_way: int) -> Tensor:
    """One soft k-means update: each class's weighted mean of its labelled images (weight 1)
    and of every unlabelled image (its weight for the class).

    Args:
        support_z: ``[tasks, n_support, D]``.
        support_y: ``[tasks, n_support]`` labels in ``0..n_way-1``.
        unlabelled_z: ``[tasks, n_unlabelled, D]``.
        weights: ``[tasks, n_unlabelled, n_way]`` each unlabelled image's weight per class.
        n_way: number of classes.

    Returns:
        ``[tasks, n_way, D]`` the refined prototypes.
    """
    labelled = F.one_hot(support_y, n_way).to(support_z.dtype)  # [tasks, n_support, n_way]
    sums = labelled.transpose(1, 2) @ support_z + weights.transpose(1, 2) @ unlabelled_z
    counts = labelled.sum(dim=1) + weights.sum(dim=1)  # [tasks, n_way]
    return sums / counts.unsqueeze(-1)


def distance_statistics(normalised: Tensor) -> Tensor:
    """Min, max, variance, skewness and kurtosis of each class's normalised distances.

    Args:
        normalised: ``[tasks, n_unlabelled, n_way]`` distances, each class's divided by its mean.

    Returns:
        ``[tasks, n_way, 5]``. A variance of 0 (one unlabelled image) is read as 1, as the
        authors do, so that skewness and kurtosis stay finite.
    """
    mean = normalised.mean(dim=1, keepdim=True)
    variance = normalised.var(dim=1, unbiased=False, keepdim=True)
    variance = torch.where(variance == 0, torch.ones_like(variance), variance)
    centred = normalised - mean
    skewness = (centred.pow(3) / variance.pow(1.5)).mean(dim=1, keepdim=True)
    kurtosis = (centred.pow(4) / variance.pow(2)).mean(dim=1, keepdim=True) - 3
    stats = [normalised.amin(dim=1, keepdim=True), normalised.amax(dim=1, keepdim=True),
             variance, skewness, kurtosis]
    return torch.cat(stats, dim=1).transpose(1, 2)


class DistanceMask(nn.Module):
    """Masked soft k-means' mask network: statistics of a class's distances -> threshold
    :math:`\\beta_c` and slope :math:`\\gamma_c` -> a soft mask of each unlabelled image."""

    def __init__(self, hidden: int = 20) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, hidden), nn.Tanh(), nn.Linear(hidden, 3))
        for layer in (self.net[0], self.net[2]):
            nn.init.normal_(layer.weight, std=0.01)  # the authors' init_std
            nn.init.zeros_(layer.bias)

    def forward(self, distance: Tensor) -> Tensor:
        """``distance: [tasks, n_unlabelled, n_way]`` squared distances -> the mask, same
        shape, in (0, 1)."""
        mean = distance.mean(dim=1, keepdim=True)
        normalised = distance / torch.where(mean == 0, torch.ones_like(mean), mean)
        # the statistics only choose the threshold: no gradient flows through them (authors)
        out = self.net(distance_statistics(normalised.detach()))  # [tasks, n_way, 3]
        threshold, slope = out[..., 0].exp(), out[..., 2].exp()
        return torch.sigmoid(slope.unsqueeze(1) * (threshold.unsqueeze(1) - normalised))


class SemiSupervisedPrototypes(MetricMethod):
    """Prototypical Networks whose prototypes are refined by the episode's unlabelled images.

    Args:
        backbone: the embedding network; a :class:`~fslearn.backbones.Conv4` with
            ``in_channels`` input channels when omitted.
        in_channels: image channels for the default backbone.
        refinement: ``"soft"``, ``"cluster"`` or ``"masked"`` soft k-means (module docstring).
        steps: refinement steps (the authors train and test with one).

    Episodes without unlabelled images are scored exactly as by Prototypical Networks.
    """

    name = "semiproto"
    #: Ren et al. (2018), OpenReview version, Table 1: Omniglot 5-way 1-shot test ERROR
    #: (percent) without / with distractor classes, by refinement; "supervised" is their
    #: Prototypical Network trained on the labelled 10% only, "inference" the same network
    #: refining its prototypes with the test episodes' unlabelled images. ``fslearn report``
    #: sets them beside its figures on their test episodes (:meth:`extra_test_settings`; the
    #: camera-ready version's table differs: supervised 94.62% -> masked soft k-means 97.30%)
    paper_figures = MappingProxyType({"semi_supervised": PaperFigures(
        "Ren, Triantafillou, Ravi, Snell, Swersky, Tenenbaum, Larochelle and Zemel (2018), "
        "Meta-Learning for Semi-Supervised Few-Shot Classification, ICLR, OpenReview version, "
        "Table 1 (Omniglot 5-way 1-shot error, without / with distractors)",
        {"supervised": (5.16, 5.16), "inference": (2.35, 4.70), "soft": (2.56, 4.59),
         "cluster": (2.18, 2.71), "masked": (2.46, 2.62)})})
    cli_options = (
        Option(("--refinement",), "how the unlabelled images refine the prototypes: soft "
               "k-means, soft k-means with a distractor cluster, or masked soft k-means",
               choices=REFINEMENTS),
        Option(("--unlabelled",), "unlabelled images of each episode class and distractor "
               "class per training episode", type=int, metavar="M", constructor=False),
        Option(("--distractors",), "distractor classes per training episode (unlabelled "
               "images only)", type=int, metavar="H", constructor=False),
        Option(("--labelled-fraction",), "the fraction of each training class's images that "
               "carry labels (a fixed split, seeded by --seed): support and query images come "
               "from them, unlabelled images from the rest; 1 for all", type=float,
               metavar="F", constructor=False),
    )
    sampler_settings = ("unlabelled", "distractors", "labelled_fraction")
    #: Ren et al.'s Omniglot training episodes (their code's defaults): 5-way 1-shot with one
    #: query per class, M = 5, H = 5, from a fixed split with 10% of each class labelled
    training_defaults = MappingProxyType({
        "n_way": 5, "k_shot": 1, "n_query": 1,
        "sampler": MappingProxyType({"unlabelled": 5, "distractors": 5,
                                     "labelled_fraction": 0.1})})

    @classmethod
    def describe_training(cls, config: TrainingConfig, options: Mapping[str, Any]
                          ) -> tuple[str, str]:
        """``5w1s-5u5d-soft``, ``5-way 1-shot, 5 unlabelled per class, 5 distractor classes,
        labels on 10% of each class (soft refinement)``."""
        unlabelled = config.sampler.get("unlabelled", 0)
        distractors = config.sampler.get("distractors", 0)
        labelled = config.sampler.get("labelled_fraction", 1.0)
        refinement = options["refinement"]
        return (f"{config.n_way}w{config.k_shot}s-{unlabelled}u{distractors}d-{refinement}",
                f"{config.n_way}-way {config.k_shot}-shot, {unlabelled} unlabelled per class, "
                f"{distractors} distractor classes, labels on {100 * labelled:g}% of each class "
                f"({refinement} refinement)")

    def __init__(self, backbone: nn.Module | None = None, in_channels: int = 1,
                 refinement: str = "soft", steps: int = 1) -> None:
        if refinement not in REFINEMENTS:
            raise ValueError(f"refinement must be one of {', '.join(REFINEMENTS)} (--refinement), "
                             f"got {refinement!r}")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        super().__init__(backbone if backbone is not None else Conv4(in_channels))
        self.refinement, self.steps = refinement, steps
        #: at test time, let the episode's queries refine the prototypes too, as unlabelled
        #: images (transductive inference: it assumes the queries come together, a batch of
        #: the episode's classes); False by default
        self.transductive = False
        if refinement == "cluster":
            self.log_distractor_radius = nn.Parameter(
                torch.tensor(math.log(INITIAL_DISTRACTOR_RADIUS)))
        if refinement == "masked":
            self.mask = DistanceMask()
        self.hparams = {"in_channels": in_channels, "refinement": refinement, "steps": steps}

    def refined_prototypes(self, support_z: Tensor, support_y: Tensor, unlabelled_z: Tensor,
                           n_way: int) -> Tensor:
        """The prototypes after :attr:`steps` refinements, ``[tasks, n_way, D]``; those of
        the labelled images alone where there is no unlabelled image."""
        centres = prototypes(support_z, support_y, n_way)
        if unlabelled_z.shape[1] == 0:
            return centres
        for _ in range(self.steps):
            weights = self.unlabelled_weights(centres, unlabelled_z)
            centres = refine_prototypes(support_z, support_y, unlabelled_z, weights, n_way)
        return centres

    def unlabelled_weights(self, centres: Tensor, unlabelled_z: Tensor) -> Tensor:
        """Each unlabelled image's weight for each class in one refinement step, by
        :attr:`refinement`: soft assignments; those of the classes beside a distractor cluster
        (the cluster's share counts for no class); or soft assignments times the mask.

        Args:
            centres: ``[tasks, n_way, D]`` the prototypes before the step.
            unlabelled_z: ``[tasks, n_unlabelled, D]``.

        Returns:
            ``[tasks, n_unlabelled, n_way]``; each row sums to at most 1.
        """
        if self.refinement == "soft":
            return soft_assignments(centres, unlabelled_z)
        if self.refinement == "cluster":
            return cluster_assignments(centres, unlabelled_z,
                                       self.log_distractor_radius)[..., :centres.shape[1]]
        distance = squared_euclidean_distance(unlabelled_z, centres)
        return (-distance).softmax(dim=-1) * self.mask(distance)

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int,
               unlabelled_z: Tensor | None = None) -> Tensor:
        """Logits ``[tasks, n_query_total, n_way]``; ``unlabelled_z: [tasks, n_unlabelled, D]``
        or None (no unlabelled image: Prototypical Networks' scores)."""
        if unlabelled_z is None:
            unlabelled_z = support_z[:, :0]
        centres = self.refined_prototypes(support_z, support_y, unlabelled_z, n_way)
        return -squared_euclidean_distance(query_z, centres)

    def forward(self, episode: Episode) -> Tensor:
        unlabelled = episode.unlabelled_x
        if self.transductive and not self.training:  # the queries are unlabelled images too
            unlabelled = (episode.query_x if unlabelled is None
                          else torch.cat([unlabelled, episode.query_x], dim=1))
        if unlabelled is None:
            return super().forward(episode)
        tasks = episode.tasks
        parts = (episode.support_x, episode.query_x, unlabelled)
        sizes = [part.shape[1] for part in parts]
        both = torch.cat([part.flatten(0, 1) for part in parts])
        # one pass over all the episode's images, as MetricMethod.forward does
        z = both if both.dim() == 2 else self.embed(both)
        support_z, query_z, unlabelled_z = (
            chunk.view(tasks, size, -1)
            for chunk, size in zip(z.split([tasks * s for s in sizes]), sizes, strict=True))
        return self.scores(support_z, episode.support_y, query_z, episode.n_way, unlabelled_z)

    def extra_test_settings(self, config: TrainingConfig) -> list[dict[str, Any]]:
        """Ren et al.'s Omniglot test episodes, without and with distractor classes, beside
        their Table 1 figure for a model trained like this one (the row of its refinement).

        The authors train and test with or without distractors alike, so the figure stands
        beside the column its training matches. A model trained without unlabelled images is
        their "supervised" row, tested on the same support and query sizes without unlabelled
        images, and their "semi-supervised inference" row when it refines its prototypes with
        the test episodes' unlabelled images."""
        errors = self.paper_figures["semi_supervised"].figures
        if not config.sampler.get("unlabelled"):
            return [{**REN_TEST_EPISODES, "unlabelled": 0, "distractors": 0,
                     "paper_accuracy": 1 - errors["supervised"][0] / 100},
                    *({**REN_TEST_EPISODES, "distractors": distractors,
                       "paper_accuracy": 1 - errors["inference"][column] / 100}
                      for column, distractors in enumerate((0, REN_DISTRACTORS)))]
        trained_with = bool(config.sampler.get("distractors"))
        return [{**REN_TEST_EPISODES, "distractors": distractors,
                 "paper_accuracy": (1 - errors[self.refinement][column] / 100
                                    if trained_with == bool(distractors) else None)}
                for column, distractors in enumerate((0, REN_DISTRACTORS))]

    def training_sampler(self, data: Any, config: TrainingConfig) -> EpisodeSampler | None:
        """Episodes with ``config.sampler["unlabelled"]`` unlabelled images of each class and
        ``config.sampler["distractors"]`` distractor classes, the labelled images from the
        fixed ``config.sampler["labelled_fraction"]`` of each class (all of it in a record
        made before the setting existed)."""
        if not isinstance(data, FewShotDataset):
            raise ValueError(f"{self.name} learns from image episodes, not from "
                             f"{type(data).__name__}: train it on an image dataset.")
        return EpisodeSampler(data, config.n_way, config.k_shot, config.n_query,
                              tasks=config.batch_size or 1, seed=config.seed,
                              unlabelled=int(config.sampler.get("unlabelled", 0)),
                              distractors=int(config.sampler.get("distractors", 0)),
                              labelled_fraction=float(config.sampler.get("labelled_fraction",
                                                                         1.0)))
