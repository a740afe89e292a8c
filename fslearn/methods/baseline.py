r"""The transfer baselines of Chen, Liu, Kira, Wang and Huang (2019): Baseline and Baseline++.

**Pre-training.** An embedding network :math:`f` (the course's Conv4) and a classifier over all
``num_classes`` training classes are trained together as an ordinary classifier, with
cross-entropy on class-balanced mini-batches of labelled images
(:class:`~fslearn.data.LabelledBatchSampler`, ``TrainingConfig.batch_size`` images per step; Chen
et al.: 16, Adam, learning rate :math:`10^{-3}`). The classifier is

* linear for **Baseline**: :math:`s_c(x) = w_c^\top f(x) + b_c`;
* cosine for **Baseline++**: :math:`s_c(x) = \gamma \cos(w_c, f(x))
  = \gamma\, \frac{w_c^\top f(x)}{\lVert w_c \rVert \lVert f(x) \rVert}`, with the scale
  :math:`\gamma` of the authors' code: 10 for a head over more than 200 classes, else 2
  (:func:`cosine_scale`). Each weight vector :math:`w_c` acts as a class prototype and only the
  direction of :math:`f(x)` counts, which reduces the variation within a class.

**Testing on an episode.** The backbone is frozen; the support and query images are embedded
once; a *new* head (linear for Baseline, cosine for Baseline++, with ``n_way`` outputs) is
trained on the support embeddings only, with the authors' recipe: 100 epochs over the support
set in shuffled mini-batches of 4, SGD with learning rate 0.01, momentum 0.9, dampening 0.9 and
weight decay :math:`10^{-3}`, cross-entropy; then the queries are classified by that head. The
fine-tuning runs inside :meth:`~Baseline.forward` (like MAML's adaptation), on embeddings, so it
is cheap, and :func:`~fslearn.evaluation.evaluate` embeds each test image once. The queries'
labels are never read.

Reproducible fine-tuning: the head's initial weights and the order of the support images in each
epoch come from a generator seeded with ``finetune_seed`` afresh for every episode, the same for
every episode of a batch, so an episode's scores depend only on its embeddings (not on which
other episodes share its batch) and :func:`~fslearn.evaluation.evaluate` gives the same numbers
every time. The episodes' classes are random, so a shared initialisation biases nothing.

Differences from the authors' code: their cosine head (``distLinear``) also learns a norm per
class (weight normalisation), so its logits are :math:`\gamma g_c \cos(w_c, f(x))`; here they
are exactly :math:`\gamma \cos(w_c, f(x))`, the paper's equation. They pre-trained for 5 epochs
over the images of the 4112 Vinyals training classes (rotations included), shuffling images; the
sampler here balances classes exactly (every Omniglot class has 20 images, so the two agree on
average). Chen et al. report their Omniglot figures only in an appendix whose exact values the
course's notes could not confirm, so ``fslearn report`` sets no paper figures beside them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fslearn.backbones import Conv4
from fslearn.data.batches import LabelledBatch, LabelledBatchSampler
from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import Episode
from fslearn.methods.base import MetricMethod, check_support
from fslearn.methods.options import Family, Option
from fslearn.methods.siamese import _embedding_size

if TYPE_CHECKING:
    from fslearn.training import TrainingConfig

__all__ = [
    "FINETUNE_DAMPENING",
    "FINETUNE_MOMENTUM",
    "FINETUNE_WEIGHT_DECAY",
    "HEADS",
    "Baseline",
    "BaselinePlusPlus",
    "CosineClassifier",
    "cosine_logits",
    "cosine_scale",
    "finetune_head",
    "head_logits",
]

#: the kinds of classifier head: Baseline's linear one, Baseline++'s cosine one
HEADS = ("linear", "cosine")
#: the authors' fine-tuning optimizer: SGD with these (and ``finetune_lr`` 0.01)
FINETUNE_MOMENTUM = 0.9
FINETUNE_DAMPENING = 0.9
FINETUNE_WEIGHT_DECAY = 1e-3


def cosine_scale(num_classes: int) -> float:
    """The scale of a cosine head in Chen et al.'s code: 10 over more than 200 classes, else 2."""
    return 10.0 if num_classes > 200 else 2.0


def cosine_logits(z: Tensor, weight: Tensor, scale: float) -> Tensor:
    """``scale * cos(w_c, z)`` for every class ``c``.

    Args:
        z: ``[..., n, D]`` embeddings.
        weight: ``[..., C, D]`` one weight vector per class (leading axes broadcast with ``z``'s).
        scale: the factor :math:`\\gamma`.

    Returns:
        ``[..., n, C]``.
    """
    return scale * F.normalize(z, dim=-1) @ F.normalize(weight, dim=-1).transpose(-1, -2)


def head_logits(z: Tensor, weight: Tensor, bias: Tensor | None, scale: float | None) -> Tensor:
    """Logits of a head: linear ``z w^T + b`` when ``scale`` is None, else cosine (no bias).

    ``z: [tasks, n, D]``, ``weight: [tasks, C, D]``, ``bias: [tasks, C]`` -> ``[tasks, n, C]``.
    """
    if scale is not None:
        return cosine_logits(z, weight, scale)
    logits = z @ weight.transpose(-1, -2)
    return logits if bias is None else logits + bias[..., None, :]


class CosineClassifier(nn.Module):
    """Baseline++'s head: ``scale * cos(w_c, z)`` for ``num_classes`` weight vectors ``w_c``
    (initialised as ``nn.Linear(dim, num_classes, bias=False)``'s weights)."""

    def __init__(self, dim: int, num_classes: int, scale: float) -> None:
        super().__init__()
        bound = 1 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(num_classes, dim).uniform_(-bound, bound))
        self.scale = scale

    def forward(self, z: Tensor) -> Tensor:
        """``[..., D]`` -> ``[..., num_classes]``."""
        return cosine_logits(z, self.weight, self.scale)


def finetune_head(
    support_z: Tensor,
    support_y: Tensor,
    n_way: int,
    scale: float | None = None,
    epochs: int = 100,
    batch: int = 4,
    lr: float = 0.01,
    seed: int = 0,
) -> tuple[Tensor, Tensor | None]:
    """Train a new head on each task's support embeddings only, Chen et al.'s way.

    ``epochs`` passes over the support set, each in a shuffled order, in mini-batches of
    ``batch`` (the last one smaller where ``batch`` does not divide the support set); each
    mini-batch takes one step of SGD with momentum 0.9, dampening 0.9 and weight decay 1e-3 (on
    every parameter, as :class:`torch.optim.SGD`) on the mean cross-entropy. The tasks are
    trained side by side, each with its own loss: one task never affects another.

    Args:
        support_z: ``[tasks, n_support, D]`` embeddings (treated as constants).
        support_y: ``[tasks, n_support]`` labels in ``0..n_way-1``.
        n_way: outputs of the head.
        scale: None for a linear head with a bias (Baseline), else a cosine head of this scale
            (Baseline++).
        epochs, batch, lr: the recipe (Chen et al.: 100, 4, 0.01).
        seed: the initial weights (as ``nn.Linear``'s) and the shuffles; the same for every task.

    Returns:
        ``(weight [tasks, n_way, D], bias [tasks, n_way] or None)``, detached.
    """
    tasks, n_support, dim = support_z.shape
    generator = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(dim)

    def initial(*shape: int) -> Tensor:
        values = (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        return values.to(support_z).expand(tasks, *shape).clone()

    params = [initial(n_way, dim)] + ([initial(n_way)] if scale is None else [])
    momentum: list[Tensor | None] = [None] * len(params)
    z, y = support_z.detach(), support_y
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(n_support, generator=generator).to(z.device)
            for start in range(0, n_support, batch):
                rows = order[start : start + batch]
                leaves = [p.requires_grad_() for p in params]
                logits = head_logits(z[:, rows], leaves[0], leaves[1] if scale is None else None,
                                     scale)
                loss = F.cross_entropy(logits.flatten(0, 1), y[:, rows].flatten(),
                                       reduction="none").view(tasks, -1).mean(dim=1).sum()
                gradients = torch.autograd.grad(loss, leaves)
                updated = []
                for i, (p, g) in enumerate(zip(params, gradients, strict=True)):
                    step = g + FINETUNE_WEIGHT_DECAY * p.detach()
                    previous = momentum[i]
                    momentum[i] = step if previous is None else (
                        FINETUNE_MOMENTUM * previous + (1 - FINETUNE_DAMPENING) * step)
                    updated.append(p.detach() - lr * momentum[i])
                params = updated
    return params[0], (params[1] if scale is None else None)


class Baseline(MetricMethod):
    """Chen et al.'s Baseline: pre-trained with a linear classifier over all training classes,
    tested by training a new linear head on each episode's support embeddings.

    Args:
        backbone: the embedding network; default Conv4.
        in_channels: image channels (1 for Omniglot).
        num_classes: training classes of the pre-training classifier (4112 for Omniglot's
            Vinyals training split; ``fslearn train`` sets it from the data).
        image_size: side of the training images (sizes the classifier's input).
        scale: Baseline++ only: the cosine heads' scale; None for Chen et al.'s rule,
            :func:`cosine_scale` of each head's number of classes (10 for pre-training over 4112
            classes, 2 for an episode's head).
        finetune_epochs, finetune_batch, finetune_lr: the test-time recipe (100, 4, 0.01).
        finetune_seed: seed of each episode's head initialisation and shuffles.
    """

    name = "baseline"
    family = Family(
        "transfer baselines",
        summary="pre-trained as classifiers over all training classes on class-balanced "
        "mini-batches instead of episodes (constant learning rate unless --lr-gamma says "
        "otherwise), then a new head fine-tuned on each test episode's support set; validated "
        "on --val-way --val-shot episodes",
        why=", which pre-train on labelled mini-batches", refuses=("way", "shot", "query", "tasks"),
        trains_on="pre-trains on labelled mini-batches, --batch-size images per step "
        "(validation episodes: --val-way, --val-shot, --val-query)")
    #: Chen et al.'s mini-batch, at a constant learning rate
    training_defaults = MappingProxyType({"batch_size": 16, "lr_gamma": 1.0})
    cli_options = (
        Option(("--batch-size",), "images per pre-training step", type=int, metavar="B",
               constructor=False, config_field="batch_size", exclusive=True),
        Option(("--finetune-epochs",), "passes over the support set when fine-tuning each test "
               "episode's head (Chen et al.'s)", type=int, metavar="E"),
        Option(("--finetune-batch",), "support images per fine-tuning step", type=int,
               metavar="B"),
        Option(("--finetune-lr",), "learning rate of the fine-tuning SGD, momentum 0.9",
               type=float, metavar="LR"),
        Option(("--scale",), "baselinepp only: the cosine heads' scale", type=float,
               default_text="10 over more than 200 classes, else 2, as Chen et al.'s code"),
    )
    #: the classifier head: "linear" (Baseline) or "cosine" (Baseline++)
    head = "linear"

    @classmethod
    def describe_training(cls, config: TrainingConfig, options: Mapping[str, Any]
                          ) -> tuple[str, str]:
        """Pre-training batches: ``16batch``, ``class-balanced mini-batches of 16 images``."""
        return (f"{config.batch_size}batch",
                f"class-balanced mini-batches of {config.batch_size} images")

    def __init__(self, backbone: nn.Module | None = None, in_channels: int = 1,
                 num_classes: int = 4112, image_size: int = 28, scale: float | None = None,
                 finetune_epochs: int = 100, finetune_batch: int = 4, finetune_lr: float = 0.01,
                 finetune_seed: int = 0) -> None:
        for label, value in (("num_classes", num_classes), ("finetune_epochs", finetune_epochs),
                             ("finetune_batch", finetune_batch)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (a classifier over the training "
                             f"classes), got {num_classes}")
        if not isinstance(finetune_seed, int) or finetune_seed < 0:
            raise ValueError(f"finetune_seed must be a non-negative integer, got "
                             f"{finetune_seed!r}")
        if not (math.isfinite(finetune_lr) and finetune_lr > 0):
            raise ValueError(f"finetune_lr must be a positive number, got {finetune_lr}")
        if scale is not None:
            if self.head != "cosine":
                raise ValueError(f"scale is the cosine head's factor, an option of baselinepp, "
                                 f"not of {self.name}: leave it out.")
            scale = float(scale)
            if not (math.isfinite(scale) and scale > 0):
                raise ValueError(f"scale must be a positive number, got {scale}")
        super().__init__(backbone if backbone is not None else Conv4(in_channels))
        self.num_classes, self.scale = num_classes, scale
        self.finetune_epochs, self.finetune_batch = finetune_epochs, finetune_batch
        self.finetune_lr, self.finetune_seed = float(finetune_lr), finetune_seed
        dim = _embedding_size(self.backbone, in_channels, image_size)
        self.classifier: nn.Module = (
            nn.Linear(dim, num_classes) if self.head == "linear"
            else CosineClassifier(dim, num_classes, self._scale(num_classes)))
        self.hparams = {"in_channels": in_channels, "num_classes": num_classes,
                        "image_size": image_size,
                        **({"scale": scale} if self.head == "cosine" else {}),
                        "finetune_epochs": finetune_epochs, "finetune_batch": finetune_batch,
                        "finetune_lr": self.finetune_lr, "finetune_seed": finetune_seed}

    def _scale(self, classes: int) -> float | None:
        """The cosine scale of a head over ``classes`` classes; None for a linear head."""
        if self.head == "linear":
            return None
        return self.scale if self.scale is not None else cosine_scale(classes)

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        """Train a new head on the support embeddings (the backbone frozen: the embeddings are
        constants), then its logits ``[tasks, n_query_total, n_way]`` for the queries."""
        check_support(self.name, support_z, support_y, query_z, n_way)
        scale = self._scale(n_way)
        weight, bias = finetune_head(support_z.detach(), support_y, n_way, scale,
                                     self.finetune_epochs, self.finetune_batch, self.finetune_lr,
                                     self.finetune_seed)
        return head_logits(query_z.detach(), weight, bias, scale)

    def loss(self, episode: Episode | LabelledBatch) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """Pre-training: ``(cross-entropy over all training classes, logits [batch,
        num_classes])`` on a labelled mini-batch."""
        if not isinstance(episode, LabelledBatch):
            raise ValueError(f"{self.name} pre-trains as a classifier on labelled mini-batches "
                             f"(TrainingConfig.batch_size), not on {type(episode).__name__}s; "
                             f"episodes are for testing it (evaluate).")
        batch = episode
        if batch.y.numel() and (int(batch.y.min()) < 0
                                or int(batch.y.max()) >= self.num_classes):
            raise ValueError(f"{self.name}: labels must be in 0..{self.num_classes - 1} for its "
                             f"{self.num_classes} training classes, got labels from "
                             f"{int(batch.y.min())} to {int(batch.y.max())}")
        logits = self.classifier(self.embed(batch.x))
        return F.cross_entropy(logits, batch.y), logits

    def correct(self, logits: Tensor, episode: Episode | LabelledBatch  # type: ignore[override]
                ) -> tuple[int, int] | None:
        """Right answers of the pre-training classifier on a labelled mini-batch."""
        if isinstance(episode, Episode):
            return super().correct(logits, episode)
        return int((logits.argmax(-1) == episode.y).sum()), episode.batch

    def training_sampler(self, dataset: FewShotDataset, config: TrainingConfig
                         ) -> LabelledBatchSampler:
        """Class-balanced labelled mini-batches of ``config.batch_size`` images over all of
        ``dataset``'s classes, which must be the ``num_classes`` the classifier was built for."""
        if config.batch_size is None:
            raise ValueError(f"{self.name} pre-trains on labelled mini-batches, not episodes: "
                             f"set TrainingConfig.batch_size (Chen et al.: 16).")
        if dataset.num_classes != self.num_classes:
            raise ValueError(f"{self.name} was built with a classifier over {self.num_classes} "
                             f"classes, but {dataset.name} has {dataset.num_classes}: build it "
                             f"with num_classes={dataset.num_classes}.")
        return LabelledBatchSampler(dataset, config.batch_size, config.seed)


class BaselinePlusPlus(Baseline):
    """Chen et al.'s Baseline++: :class:`Baseline` with cosine heads, ``scale * cos(w_c, z)``,
    both in pre-training and for each episode's new head."""

    name = "baselinepp"
    head = "cosine"
