"""The interface every few-shot method implements, so one training loop and one evaluation
function serve them all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fslearn.data.episodes import Episode
from fslearn.methods.options import Family, Option
from fslearn.results import PaperFigures

if TYPE_CHECKING:  # fslearn.training imports this module
    from fslearn.training import TrainingConfig

__all__ = ["BatchSampler", "FewShotMethod", "MetricMethod", "check_query_labels",
           "check_support"]


class BatchSampler(Protocol):
    """What the training loop needs of a sampler of training batches."""

    def episode(self, index: int) -> Any:
        """Batch ``index`` (an episode, a batch of pairs, of labelled images, of sequence
        episodes...), a pure function of the sampler's seed and ``index``."""


class FewShotMethod(nn.Module, ABC):
    """A model that, given an episode's support set, scores its queries.

    Subclasses implement :meth:`forward`; :meth:`loss` defaults to cross-entropy on the logits
    and is overridden by methods trained otherwise (e.g. Relation Networks' mean squared error).

    ``hparams`` holds the constructor arguments, so a checkpoint can rebuild the method.

    What the training loop, evaluation, prediction and the command line need to know about a
    method they read from its class's declarations below (see :mod:`fslearn.methods.options`),
    never from its name or its class.
    """

    #: the name under which the method is registered (``fslearn train <name>``)
    name: str = ""
    #: what it is tested on: ``"episodes"`` (support and query sets) or ``"sequences"``
    #: (:class:`~fslearn.data.sequences.SequenceTasks`: one answer per step)
    episode_kind: ClassVar[str] = "episodes"
    #: its command-line options, beyond the shared ones (``fslearn train <name> --help``)
    cli_options: ClassVar[tuple[Option, ...]] = ()
    #: the methods it shares options and a way of training with, if any
    family: ClassVar[Family | None] = None
    #: the TrainingConfig fields (and ``image_size``) it trains with unless told otherwise,
    #: its sampler's settings under ``"sampler"``
    training_defaults: ClassVar[Mapping[str, object]] = MappingProxyType({})
    #: the names of the settings its :meth:`training_sampler` reads from
    #: ``TrainingConfig.sampler``; the training loop refuses any other
    sampler_settings: ClassVar[tuple[str, ...]] = ()
    #: constructor arguments that make it a sinusoid regression model, or None if it only
    #: classifies images (``fslearn train <name> --sinusoid``)
    regression_hparams: ClassVar[Mapping[str, object] | None] = None
    #: its scores depend on each image only through ``embed(x)`` (``[batch, D]``), and
    #: ``forward`` takes episodes whose images are already such vectors (the
    #: :class:`MetricMethod` contract, which sets it True): evaluation, ``fslearn report`` and
    #: prediction then embed every image once and build all episodes from the embeddings
    embeds_once: ClassVar[bool] = False
    #: what its batch norm layers normalise over in training: ``"batch"`` (a step's whole
    #: batch, e.g. every task's images embedded in one pass: a run on several processes
    #: synchronises their statistics) or ``"task"`` (each task's own images, left alone)
    batch_statistics: ClassVar[str] = "batch"
    #: the figures its papers published, by kind of test (:data:`fslearn.results.KINDS_OF_TEST`),
    #: set beside fslearn's by ``fslearn report`` and the book; never inherited (a subclass is
    #: another method: :func:`fslearn.results.paper_figures` reads a class's own declaration)
    paper_figures: ClassVar[Mapping[str, PaperFigures]] = MappingProxyType({})

    def __init__(self) -> None:
        super().__init__()
        self.hparams: dict[str, object] = {}

    @property
    def fixed_way(self) -> int | None:
        """The only number of classes per episode this model scores (a classifier head of that
        many outputs, fixed when it was built), or None (the default) where it scores episodes
        of any ``n_way``. ``fslearn report`` leaves out the standard settings of another
        ``n_way``."""
        return None

    @classmethod
    def describe_training(cls, config: TrainingConfig, options: Mapping[str, Any]
                          ) -> tuple[str, str]:
        """How ``fslearn train`` names a run of this method and announces its training
        batches: ``(shape, words)``.

        ``shape`` goes into the default run folder, ``runs/<name>-<data>-<shape>-seed<seed>``
        (``"5w1s"``); ``words`` into the line ``Training <name> on <data>, <words>, ...``
        (``"5-way 1-shot"``). ``config`` holds the run's training settings, ``options`` the
        value of each of the method's :attr:`cli_options` by argument name (its default where
        it was not given). The default describes N-way K-shot episodes; a method trained on
        other batches, or whose options make runs worth telling apart, overrides it.
        """
        return (f"{config.n_way}w{config.k_shot}s",
                f"{config.n_way}-way {config.k_shot}-shot")

    @abstractmethod
    def forward(self, episode: Episode) -> Tensor:
        """Scores ``[tasks, n_way*n_query, n_way]`` of each query for each episode label."""

    def loss(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """``(scalar training loss, logits)`` on the episode's queries."""
        logits = self(episode)
        return F.cross_entropy(logits.flatten(0, 1), episode.query_y.flatten()), logits

    def probabilities(self, scores: Tensor) -> Tensor:
        """Class probabilities ``[..., n_way]`` from the scores of :meth:`forward` (what
        ``fslearn predict`` reports): their softmax, for scores that are logits. A method whose
        scores are something else overrides it."""
        return scores.softmax(dim=-1)

    def correct(self, logits: Tensor, episode: Episode) -> tuple[int, int] | None:
        """``(right answers, answers)`` among ``logits`` (from :meth:`loss`) on ``episode``, for
        the training loop's running accuracy; None where there is nothing to count (regression).
        Methods whose outputs are scored otherwise (sequence models) override it."""
        if episode.query_y.is_floating_point():
            return None
        return int((logits.argmax(-1) == episode.query_y).sum()), episode.query_y.numel()

    def training_sampler(self, data: Any, config: TrainingConfig) -> BatchSampler | None:
        """The sampler of this method's training batches from the training ``data``, or None
        (the default): the training loop then draws N-way K-shot episodes of a dataset's
        classes, or a task distribution's tasks, ``config.batch_size`` of them per step.

        A method that learns from something else (same/different pairs or triplets,
        class-balanced labelled mini-batches, sequence episodes) overrides it: it reads
        ``config.batch_size`` (what one step draws, in its own unit; None where it was not
        given), its settings in ``config.sampler`` (those it names in :attr:`sampler_settings`)
        and ``config.seed``, and batch ``i`` of the sampler must be a pure function of
        ``(config.seed, i)``, so that a resumed run sees what an uninterrupted one would have
        seen.
        """
        return None

    def extra_test_settings(self, config: TrainingConfig) -> list[dict[str, Any]]:
        """Test episodes that ``fslearn report`` runs beside the standard settings, for a
        method whose papers test it on other episodes (none by default).

        ``config`` is the checkpoint's training configuration. Each entry holds
        :func:`~fslearn.evaluation.evaluate`'s episode arguments (``n_way``, ``k_shot``,
        ``n_query`` and any of ``unlabelled``, ``distractors``, ``within_alphabet``) and
        ``paper_accuracy``, the published figure of a model trained like this one on such
        episodes of the Vinyals test classes (a fraction), or None.
        """
        return []

    def training_step(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """Accumulate the gradient of :meth:`loss` into the parameters' ``.grad``; return the
        loss and the logits, detached. The training loop calls this, then the optimizer.

        A method overrides it to back-propagate in pieces (MAML's per-task loop keeps one
        task's graph in memory at a time) or to set ``.grad`` to another update direction.
        """
        loss, logits = self.loss(episode)
        loss.backward()
        return loss.detach(), logits.detach()


class MetricMethod(FewShotMethod):
    """A method that sees each image only through a fixed embedding ``f(x)``.

    Its scores depend on the support and query images only through their embeddings, so an
    evaluation can embed every test image once and build all episodes from the embeddings
    (see :func:`fslearn.evaluation.evaluate`).
    """

    embeds_once = True

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def embed(self, x: Tensor) -> Tensor:
        """``x: [batch, C, H, W]`` -> ``[batch, D]``."""
        return self.backbone(x)

    @abstractmethod
    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        """Logits ``[tasks, n_query_total, n_way]`` from embeddings.

        Args:
            support_z: ``[tasks, n_way*k_shot, D]``.
            support_y: ``[tasks, n_way*k_shot]`` labels in ``0..n_way-1``.
            query_z: ``[tasks, n_query_total, D]``.
            n_way: number of classes.
        """

    def forward(self, episode: Episode) -> Tensor:
        tasks, n_support = episode.tasks, episode.support_x.shape[1]
        both = torch.cat([episode.support_x.flatten(0, 1), episode.query_x.flatten(0, 1)])
        # Images are embedded in one pass over support and query together (half the kernel
        # launches; batch norm in training mode sees the whole episode, as in the reference
        # implementations). Rows that are already vectors are precomputed embeddings.
        z = both if both.dim() == 2 else self.embed(both)
        support_z = z[: tasks * n_support].view(tasks, n_support, -1)
        query_z = z[tasks * n_support :].view(tasks, episode.query_x.shape[1], -1)
        return self.scores(support_z, episode.support_y, query_z, episode.n_way)


def check_support(method: str, support_z: Tensor, support_y: Tensor, query_z: Tensor,
                  n_way: int) -> Tensor:
    """Check that embedded support and query sets fit together; return the number of support
    images of each class, ``[tasks, n_way]``.

    Raises:
        ValueError: shapes that do not agree, labels outside ``0..n_way-1``, or a class without
            support images (one line saying what was found).
    """
    if support_z.dim() != 3 or query_z.dim() != 3:
        raise ValueError(f"{method} expects embeddings [tasks, images, D], got support "
                         f"{tuple(support_z.shape)} and query {tuple(query_z.shape)}")
    if support_y.shape != support_z.shape[:2]:
        raise ValueError(f"{method}: support_y has shape {tuple(support_y.shape)} but the support "
                         f"set is {tuple(support_z.shape[:2])} [tasks, images]: one label per "
                         f"support image")
    if query_z.shape[0] != support_z.shape[0] or query_z.shape[2] != support_z.shape[2]:
        raise ValueError(f"{method}: query embeddings {tuple(query_z.shape)} do not match the "
                         f"support embeddings {tuple(support_z.shape)} (same tasks and D)")
    if support_y.numel() and (int(support_y.min()) < 0 or int(support_y.max()) >= n_way):
        raise ValueError(f"{method}: support labels must be in 0..{n_way - 1} for n_way={n_way}, "
                         f"got labels from {int(support_y.min())} to {int(support_y.max())}")
    counts = F.one_hot(support_y, n_way).sum(dim=1)
    if bool((counts == 0).any()):
        task, label = (int(i) for i in (counts == 0).nonzero()[0])
        raise ValueError(f"{method}: n_way={n_way} but class {label} of task {task} has no "
                         f"support image; every class needs at least one")
    return counts


def check_query_labels(method: str, query_y: Tensor, n_way: int) -> None:
    """Refuse query labels outside ``0..n_way-1`` (the training loss would fail obscurely)."""
    if query_y.numel() and (int(query_y.min()) < 0 or int(query_y.max()) >= n_way):
        raise ValueError(f"{method}: query labels must be in 0..{n_way - 1} for n_way={n_way}, "
                         f"got labels from {int(query_y.min())} to {int(query_y.max())}")
