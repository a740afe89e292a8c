r"""R2-D2: meta-learning with a differentiable closed-form solver (Bertinetto, Henriques, Torr
and Vedaldi, ICLR 2019).

The inner loop of MAML takes a few gradient steps on the support set; R2-D2 solves its inner
problem *exactly*. On the embedded support set of an episode, with a column of ones appended
for a bias, :math:`X = [f(x_i)\ 1]_i \in \mathbb{R}^{n \times (D+1)}` (:math:`n = NK` images)
and one-hot targets :math:`Y \in \{0, 1\}^{n \times N}`, the base learner is ridge regression
on the mean squared error,

.. math:: W = \arg\min_W \tfrac{1}{n} \lVert X W - Y \rVert^2 + \lambda \lVert W \rVert^2
            = (X^\top X + n\lambda I_{D+1})^{-1} X^\top Y
            = X^\top (X X^\top + n\lambda I_{n})^{-1} Y ,

the last form by the Woodbury identity. The embeddings are wide (:math:`D + 1 = 3585` for the
authors' network on 28x28 images) and the support sets small (:math:`n \le 540` in their
60-way training episodes), so the :math:`n \times n` system is the cheap one. A query's
scores are the regression's outputs, calibrated by a learned scale :math:`\alpha` and bias
:math:`\beta` (the authors' "adjust" layer, two scalars),

.. math:: \hat y(x) = \alpha\, [f(x)\ 1]\, W + \beta ,

trained by cross-entropy. Every step is differentiable, so the meta-gradient flows through the
solve into :math:`f` (and into :math:`\alpha, \beta`, and :math:`\lambda` where it is learned):
``torch.linalg.solve`` differentiates the solution of a linear system exactly.

Conventions of the authors' code (``bertinetto/r2d2``: ``fewshots/models/r2d2.py``,
``adjust.py``, ``load_model.py``, ``scripts/train/omni5_r2d2.sh`` and ``conf/fewshots.yaml``),
all kept here:

* **Scaling.** They divide :math:`X` (ones column included) and :math:`Y` by
  :math:`\sqrt{n}` before solving with :math:`\lambda`; that gives exactly the :math:`W` above
  (ridge on the *mean* squared error, the regulariser :math:`n\lambda`), which is how this
  module computes it. The bias row of :math:`W` is regularised like the others. Queries get a
  plain 1 for the bias.
* **Regulariser** :math:`\lambda = 50`, fixed (their ``learn_lambda`` defaults to off, and the
  Omniglot scripts do not turn it on); ``learn_lambda=True`` makes it a parameter, as their
  option does.
* **Scale and bias** start at :math:`\alpha = 10` (their Omniglot scripts'
  ``init_adj_scale 10``; the default in their configuration, 1e-4, is for miniImageNet) and
  :math:`\beta = 0`; both are learned.
* **Which system.** Woodbury when :math:`n \le D + 1`, the primal system otherwise, as they
  choose; the two give the same :math:`W` (``form=`` forces one).
* **Embedding** (their ``RRNet`` for Omniglot): four blocks of 3x3 convolution (padding 1),
  batch norm (momentum 0.1), 2x2 max-pool and leaky ReLU (slope 0.1), with 96, 192, 384 and 512
  channels; the fourth block's pool has stride 1; blocks 3 and 4 end with dropout (0 on
  Omniglot, their ``--model.drop 0``). The embedding concatenates the third block's output,
  max-pooled once more (2x2, stride 1), and the fourth block's, both flattened: on 28x28 images
  :math:`384 \cdot 2 \cdot 2 + 512 \cdot 2 \cdot 2 = 3584` numbers. Their "64C" variant
  (``RRNet_small``, ``embedding="64c"``) has 64 channels in every block: 512 numbers.
* **Training** (their Omniglot scripts): 60-way episodes of 10 images per class (batch 600),
  the shots drawn uniformly from 1 to 9 for each episode and the other images of each class as
  queries; rotations as new classes; Adam at 5e-3 halved every 2,000 episodes; validation on
  5-way (or 20-way) 1-shot and 5-shot episodes, keeping one model for each; 10,000 test
  episodes. The shots are drawn so by default (``fixed_shots=False``): a training episode of
  ``k_shot`` support and ``n_query`` query images per class is re-split, by a draw that
  depends only on the episode, into :math:`K \in \{1, \dots, k\_shot\}` support images per
  class and the rest as queries (:func:`redraw_shots`; the training defaults ``--way 60 --shot
  9 --query 1`` are their recipe). ``fixed_shots=True`` trains on the episodes as drawn.
  Evaluation is unaffected.

Departures: the course's runs keep one model, chosen on one validation setting, not one per
shot; evaluation uses the batch-norm running averages (``eval()``), as their evaluation script
does.

The paper's Omniglot figures (its Table 1) could not be confirmed from a source the course
could read, so ``fslearn report`` sets none beside this method's (see
:mod:`fslearn.results`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fslearn.data.episodes import Episode
from fslearn.methods.base import MetricMethod, check_query_labels, check_support
from fslearn.methods.options import Option

if TYPE_CHECKING:  # fslearn.training imports the methods
    from fslearn.training import TrainingConfig

__all__ = [
    "EMBEDDINGS",
    "FORMS",
    "R2D2",
    "R2D2Embedding",
    "redraw_shots",
    "ridge_head_logits",
    "ridge_regression",
]

#: the embedding networks by name: channels of the four blocks
EMBEDDINGS: Mapping[str, tuple[int, int, int, int]] = MappingProxyType({
    "r2d2": (96, 192, 384, 512),  # the authors' RRNet
    "64c": (64, 64, 64, 64),  # their RRNet_small ("R2-D2 (64C)")
})
#: how the ridge regression is solved: the n x n (Woodbury) system, the (D+1) x (D+1) one, or
#: the smaller of the two (the authors' choice)
FORMS = ("auto", "woodbury", "primal")


def _block(in_channels: int, out_channels: int, pool_stride: int, dropout: float
           ) -> nn.Sequential:
    """3x3 convolution, batch norm, 2x2 max-pool, leaky ReLU (0.1) and, if ``dropout``, dropout:
    the authors' order."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels, momentum=0.1),
        nn.MaxPool2d(2, stride=pool_stride),
        nn.LeakyReLU(0.1),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class R2D2Embedding(nn.Module):
    """The authors' embedding: ``[batch, C, H, W]`` -> ``[batch, D]``, the flattened outputs of
    the third block (max-pooled once more, stride 1) and of the fourth, concatenated
    (``D = 3584`` for 28x28 images and the ``"r2d2"`` channels; see the module docstring).

    Args:
        in_channels: image channels.
        channels: the four blocks' channels.
        dropout: dropout probability at the end of blocks 3 and 4 (0 on Omniglot).

    Attributes:
        channels_last: run the convolutions on channels-last tensors (faster on a CPU), as
            :class:`~fslearn.backbones.Conv4` does.
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = EMBEDDINGS["r2d2"],
                 dropout: float = 0.0) -> None:
        super().__init__()
        sizes = [in_channels, *channels]
        strides, drops = (2, 2, 2, 1), (0.0, 0.0, dropout, dropout)
        self.blocks = nn.ModuleList(
            _block(c_in, c_out, stride, drop) for (c_in, c_out), stride, drop
            in zip(itertools.pairwise(sizes), strides, drops, strict=True))
        self.pool3 = nn.MaxPool2d(2, stride=1)
        self.in_channels = in_channels
        self.channels_last = True

    def output_dim(self, image_size: int) -> int:
        """``D`` for square images of side ``image_size`` (28 -> 14 -> 7 -> 3, then 2)."""
        side = image_size // 2 // 2 // 2 - 1
        return (self.blocks[2][0].out_channels + self.blocks[3][0].out_channels) * side * side

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"R2D2Embedding expects images [batch, {self.in_channels}, H, W], "
                             f"got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < 16:
            raise ValueError(f"R2D2Embedding halves the image three times and then pools it "
                             f"once more, so it needs images of at least 16x16 pixels; got "
                             f"{x.shape[-2]}x{x.shape[-1]}. Use a larger image size.")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for block in self.blocks[:3]:
            x = block(x)
        third = self.pool3(x).flatten(1)
        return torch.cat([third, self.blocks[3](x).flatten(1)], dim=1)


def ridge_regression(x: Tensor, y: Tensor, lam: float | Tensor, form: str = "woodbury"
                     ) -> Tensor:
    r"""The ridge-regression weights :math:`W = \arg\min \lVert xW - y \rVert^2 + \lambda
    \lVert W \rVert^2` of each task, differentiable in ``x``, ``y`` and ``lam``.

    Args:
        x: ``[tasks, n, p]`` inputs (rows are examples).
        y: ``[tasks, n, N]`` targets.
        lam: the regulariser :math:`\lambda > 0` (a number or a 0-d tensor).
        form: ``"woodbury"``, :math:`x^\top (x x^\top + \lambda I_n)^{-1} y` (an ``n x n``
            system), ``"primal"``, :math:`(x^\top x + \lambda I_p)^{-1} x^\top y` (``p x p``),
            or ``"auto"``, the smaller one. They give the same ``W``.

    Returns:
        ``[tasks, p, N]``.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    n, p = x.shape[-2], x.shape[-1]
    if form == "auto":
        form = "woodbury" if n <= p else "primal"
    xt = x.transpose(-2, -1)
    if form == "woodbury":
        gram = x @ xt + lam * torch.eye(n, dtype=x.dtype, device=x.device)
        return xt @ torch.linalg.solve(gram, y)
    gram = xt @ x + lam * torch.eye(p, dtype=x.dtype, device=x.device)
    return torch.linalg.solve(gram, xt @ y)


def _with_ones(z: Tensor) -> Tensor:
    """``[..., D]`` -> ``[..., D+1]``: a column of ones appended, for the bias."""
    return torch.cat([z, z.new_ones(*z.shape[:-1], 1)], dim=-1)


def ridge_head_logits(support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int,
                      lam: float | Tensor, scale: float | Tensor, bias: float | Tensor,
                      form: str = "auto") -> Tensor:
    r"""R2-D2's head: ridge regression of one-hot labels on the support embeddings (with a
    bias column), solved in closed form, then applied to the queries and calibrated,
    :math:`\alpha\, [f(x)\ 1] W + \beta` (see the module docstring).

    Args:
        support_z: ``[tasks, n, D]`` support embeddings.
        support_y: ``[tasks, n]`` labels in ``0..n_way-1``, in any order.
        query_z: ``[tasks, q, D]`` query embeddings.
        n_way: number of classes.
        lam: :math:`\lambda`, the regulariser of the *mean* squared error (the system gets
            :math:`n\lambda`).
        scale, bias: :math:`\alpha` and :math:`\beta`.
        form: see :func:`ridge_regression`.

    Returns:
        Logits ``[tasks, q, n_way]``.
    """
    x = _with_ones(support_z)
    targets = F.one_hot(support_y, n_way).to(support_z.dtype)
    weights = ridge_regression(x, targets, lam * support_z.shape[1], form)  # [tasks, D+1, N]
    return scale * (_with_ones(query_z) @ weights) + bias


def _shots_of(episode: Episode, max_shot: int) -> int:
    """The shots of ``episode`` under random shots, uniform in 1..max_shot: a pure function of
    the episode's classes (which the sampler drew from its seed and the episode's index), so a
    resumed run draws what an uninterrupted one drew."""
    rng = np.random.default_rng(episode.classes.flatten().to(torch.int64).tolist())
    return int(rng.integers(1, max_shot + 1))


def redraw_shots(episode: Episode) -> Episode:
    """``episode`` re-split into ``K`` support images per class, ``K`` drawn from ``1..k_shot``
    (:func:`_shots_of`), and all its other images as queries (the authors' random shots).

    The support and query sets of ``episode`` must be in class-major order (as the samplers
    give them); the result is too.
    """
    n_way, k_shot, n_query = episode.n_way, episode.k_shot, episode.n_query
    shots = _shots_of(episode, k_shot)
    tasks = episode.tasks

    def by_class(t: Tensor, per_class: int) -> Tensor:
        return t.reshape(tasks, n_way, per_class, *t.shape[2:])

    support_x, query_x = by_class(episode.support_x, k_shot), by_class(episode.query_x, n_query)
    support_y, query_y = by_class(episode.support_y, k_shot), by_class(episode.query_y, n_query)
    new_query_x = torch.cat([support_x[:, :, shots:], query_x], dim=2).flatten(1, 2)
    new_query_y = torch.cat([support_y[:, :, shots:], query_y], dim=2).flatten(1, 2)
    return Episode(support_x[:, :, :shots].flatten(1, 2), support_y[:, :, :shots].flatten(1, 2),
                   new_query_x, new_query_y, episode.classes, n_way)


class R2D2(MetricMethod):
    """Ridge regression on the embedded support set, solved in closed form, as the classifier
    of each episode (see the module docstring).

    Args:
        in_channels: image channels.
        image_size: side of the square images (sizes the embedding; 28 for Omniglot).
        embedding: ``"r2d2"`` (the authors' 96-192-384-512 network) or ``"64c"`` (64 channels
            in every block).
        dropout: at the end of blocks 3 and 4 (the authors: 0 on Omniglot).
        ridge_lambda: the regulariser :math:`\\lambda` (50), its initial value if learned.
        learn_lambda: learn :math:`\\lambda` too (the authors' option, off by default).
        init_scale: the initial scale :math:`\\alpha` (10 on Omniglot); the bias starts at 0.
        fixed_shots: train on the episodes as drawn; by default (False) each training episode
            is re-split into 1..k_shot support images per class and the rest as queries
            (:func:`redraw_shots`), as the authors train.
        form: how the ridge regression is solved (:data:`FORMS`).
    """

    name = "r2d2"
    cli_options = (
        Option(("--embedding",), "the embedding network: r2d2, the authors' four blocks of "
               "96, 192, 384 and 512 channels, or 64c, 64 channels in every block",
               choices=tuple(EMBEDDINGS)),
        Option(("--ridge-lambda",), "the ridge regulariser lambda of the mean squared error "
               "(the authors' 50)", type=float, metavar="LAMBDA"),
        Option(("--learn-lambda",), "learn lambda as well (default: fixed, as in the authors' "
               "runs)", flag=True),
        Option(("--init-scale",), "initial scale alpha of the regression outputs (the "
               "authors' Omniglot value)", type=float, metavar="ALPHA"),
        Option(("--fixed-shots",), "train on --shot support images per class in every "
               "episode (default: as the authors, each episode is re-split into 1 to --shot "
               "support images per class, drawn uniformly, the other images of the --shot + "
               "--query as queries)", flag=True),
    )
    # the authors' episodes; their learning rate (5e-3, halved every 2,000 episodes) and
    # validation on 1 and 5 shots are given on the command line (`fslearn train` reads only
    # the episode fields from here)
    training_defaults = MappingProxyType({"n_way": 60, "k_shot": 9, "n_query": 1})

    @classmethod
    def describe_training(cls, config: TrainingConfig, options: Mapping[str, Any]
                          ) -> tuple[str, str]:
        """N-way K-shot episodes with ``--fixed-shots``; else ``60w1-9s`` episodes."""
        if options.get("fixed_shots"):
            return super().describe_training(config, options)
        images = config.k_shot + config.n_query
        return (f"{config.n_way}w1-{config.k_shot}s",
                f"{config.n_way}-way 1- to {config.k_shot}-shot ({images} images per class)")

    def __init__(self, in_channels: int = 1, image_size: int = 28, embedding: str = "r2d2",
                 dropout: float = 0.0, ridge_lambda: float = 50.0, learn_lambda: bool = False,
                 init_scale: float = 10.0, fixed_shots: bool = False, form: str = "auto"
                 ) -> None:
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {', '.join(EMBEDDINGS)}, got "
                             f"{embedding!r}")
        if not isinstance(image_size, int) or image_size < 16:
            raise ValueError(f"{self.name} needs images of at least 16x16 pixels (its embedding "
                             f"halves them three times, then pools once more); got "
                             f"image_size={image_size!r}. Use a larger image size.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not ridge_lambda > 0:
            raise ValueError(f"ridge_lambda (--ridge-lambda) must be positive (the ridge "
                             f"regulariser; the authors' is 50), got {ridge_lambda!r}")
        if form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
        super().__init__(R2D2Embedding(in_channels, EMBEDDINGS[embedding], dropout))
        self.lam = nn.Parameter(torch.tensor(float(ridge_lambda)), requires_grad=learn_lambda)
        self.scale = nn.Parameter(torch.tensor(float(init_scale)))
        self.bias = nn.Parameter(torch.tensor(0.0))
        self.fixed_shots, self.form = fixed_shots, form
        self.embedding_dim = self.backbone.output_dim(image_size)
        self.hparams = {"in_channels": in_channels, "image_size": image_size,
                        "embedding": embedding, "dropout": dropout,
                        "ridge_lambda": float(ridge_lambda),
                        "learn_lambda": learn_lambda, "init_scale": float(init_scale),
                        "fixed_shots": fixed_shots, "form": form}

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        """Logits ``[tasks, n_query_total, n_way]`` of :func:`ridge_head_logits`."""
        check_support(self.name, support_z, support_y, query_z, n_way)
        if support_z.shape[-1] != self.embedding_dim:
            raise ValueError(f"{self.name} expects embeddings of {self.embedding_dim} numbers "
                             f"(its network on {self.hparams['image_size']}-pixel images), got "
                             f"{support_z.shape[-1]}: give it images of the size it was built "
                             f"for.")
        return ridge_head_logits(support_z, support_y, query_z, n_way, self.lam, self.scale,
                                 self.bias, self.form)

    def _training_episode(self, episode: Episode) -> Episode:
        return redraw_shots(episode) if self.training and not self.fixed_shots else episode

    def loss(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """Cross-entropy of the calibrated regression outputs on the queries (in training with
        random shots, on the re-split episode's queries); and the logits."""
        check_query_labels(self.name, episode.query_y, episode.n_way)
        return super().loss(self._training_episode(episode))

    def correct(self, logits: Tensor, episode: Episode) -> tuple[int, int] | None:
        """Right answers among ``logits``, against the queries they were computed for (the
        re-split episode's, in training with random shots)."""
        if logits.shape[1] != episode.query_y.shape[1]:
            episode = redraw_shots(episode)
        return super().correct(logits, episode)
