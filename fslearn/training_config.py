"""The settings of a training run, and how a checkpoint's record of them is read back.

:class:`TrainingConfig` holds what every run has (the episodes' shape, the batch of one step,
the optimizer, validation, checkpoints, the seed) and, in ``sampler``, the settings of the
method's own sampler of training batches (sequence episodes: ``per_class``, ``labels``), which
the method reads (:meth:`~fslearn.methods.FewShotMethod.training_sampler`) and declares
(:attr:`~fslearn.methods.FewShotMethod.sampler_settings`).

Runs saved before ``sampler`` existed recorded a field for each kind of batch (``tasks``,
``pairs_per_step``, ``batch_size``, ``per_class``, ``labels``): :func:`config_from_record` maps
them, and the constructor still takes them as keywords.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from fslearn.data.sequences import LABEL_KINDS

__all__ = ["LR_SCHEDULES", "OLD_FIELDS", "OPTIMIZERS", "TrainingConfig", "config_from_record"]

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("step", "linear")
#: the fields of the records saved before the sampler's settings left TrainingConfig: each
#: sized or shaped one kind of batch (``batch_size``, the images of a labelled mini-batch, is
#: read as such where a record has them)
OLD_FIELDS = ("tasks", "pairs_per_step", "per_class", "labels")


@dataclass(frozen=True, init=False)
class TrainingConfig:
    """Hyper-parameters of a training run (defaults: Snell et al.'s Omniglot setup).

    Attributes:
        n_way, k_shot, n_query: shape of the training episodes (sequence episodes: ``n_way``
            classes; task distributions: ``k_shot`` support and ``n_query`` query points).
        batch_size: what one optimizer step draws, as the method's sampler counts it: episodes
            (tasks) for the methods that learn from N-way K-shot episodes, from a task
            distribution or from sequence episodes (16 in Santoro et al.), pairs or triplets
            (Siamese networks), labelled images (the transfer baselines). None: one episode or
            task per step; a method that learns from pairs or images refuses it.
        sampler: settings of the method's own sampler of training batches, which it reads and
            declares in ``sampler_settings`` (sequence episodes: ``per_class``, the drawings of
            each class per episode, and ``labels``, ``"one_hot"`` or ``"string"``); a setting
            it does not read is refused when the run starts. Empty for episodes, pairs and
            labelled mini-batches.
        episodes: total number of optimizer steps.
        lr: initial learning rate; with ``lr_schedule="step"`` multiplied by ``lr_gamma`` every
            ``lr_step`` episodes, with ``"linear"`` annealed linearly to 0 at the last episode
            (Reptile's outer step size).
        weight_decay: weight decay.
        optimizer: ``"adam"`` or ``"sgd"`` (plain gradient steps: Reptile's outer update).
        val_every: validate every this many episodes (0: never; the last state is the best).
        val_episodes, val_way, val_shot, val_query: the validation episodes (``val_shot=None``
            means ``k_shot``); the same episodes every time, so validations are comparable.
            Sequence episodes validate with ``val_way`` classes, shaped as the training ones.
        checkpoint_every: save the resumable state every this many episodes.
        seed: initial weights (set by the caller), training and validation episodes.

    The keywords of the runs saved before ``sampler`` existed are still taken and mapped:
    ``tasks`` and ``pairs_per_step`` are ``batch_size`` (give one of the three), ``per_class``
    and ``labels`` go into ``sampler`` (``labels`` only with ``per_class``).
    """

    n_way: int
    k_shot: int
    n_query: int
    batch_size: int | None
    episodes: int
    lr: float
    lr_step: int
    lr_gamma: float
    weight_decay: float
    optimizer: str
    lr_schedule: str
    val_every: int
    val_episodes: int
    val_way: int
    val_shot: int | None
    val_query: int
    checkpoint_every: int
    seed: int
    sampler: Mapping[str, Any] = field(hash=False)

    def __init__(
        self,
        n_way: int = 60,
        k_shot: int = 1,
        n_query: int = 5,
        batch_size: int | None = None,
        episodes: int = 20_000,
        lr: float = 1e-3,
        lr_step: int = 2_000,
        lr_gamma: float = 0.5,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        lr_schedule: str = "step",
        val_every: int = 1_000,
        val_episodes: int = 600,
        val_way: int = 5,
        val_shot: int | None = None,
        val_query: int = 15,
        checkpoint_every: int = 500,
        seed: int = 0,
        sampler: Mapping[str, Any] | None = None,
        *,
        tasks: int | None = None,
        pairs_per_step: int | None = None,
        per_class: int | None = None,
        labels: str | None = None,
    ) -> None:
        given = locals()
        batch_size = _one_batch_size(batch_size, tasks, pairs_per_step, per_class)
        sampler = _sampler(sampler, per_class, labels)
        for f in fields(self):
            value = {"batch_size": batch_size, "sampler": sampler}.get(f.name, given[f.name])
            object.__setattr__(self, f.name, value)
        self._check()

    def _check(self) -> None:
        positive = (
            "n_way",
            "k_shot",
            "n_query",
            "episodes",
            "lr_step",
            "val_episodes",
            "val_way",
            "val_query",
            "checkpoint_every",
        )
        for name in positive:
            _check_positive(name, getattr(self, name))
        _check_positive("batch_size", self.batch_size, none=True)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"TrainingConfig.optimizer must be one of {', '.join(OPTIMIZERS)}, "
                f"got {self.optimizer!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"TrainingConfig.lr_schedule must be one of "
                f"{', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.val_every < 0:
            raise ValueError(f"TrainingConfig.val_every must be >= 0, got {self.val_every}")
        if not self.lr > 0 or not 0 < self.lr_gamma <= 1:
            raise ValueError(
                f"lr must be > 0 and lr_gamma in (0, 1], got lr={self.lr}, lr_gamma={self.lr_gamma}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The record of a checkpoint's ``"config"``: JSON-serialisable."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "sampler": dict(self.sampler)
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingConfig:
        """The same as :func:`config_from_record`."""
        return config_from_record(values)

    def __getattr__(self, name: str) -> Any:
        # only called for a missing attribute: say where an old field went
        if name in OLD_FIELDS:
            where = "batch_size" if name in ("tasks", "pairs_per_step") else f"sampler[{name!r}]"
            raise AttributeError(
                f"TrainingConfig.{name} is now TrainingConfig.{where}: read "
                f"that (a checkpoint's record: config_from_record)."
            )
        raise AttributeError(f"'TrainingConfig' object has no attribute {name!r}")


def _check_positive(name: str, value: object, none: bool = False) -> None:
    if none and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"TrainingConfig.{name} must be a positive integer"
            f"{' or None' if none else ''}, got {value!r}"
        )


def _one_batch_size(
    batch_size: int | None, tasks: int | None, pairs_per_step: int | None, per_class: int | None
) -> int | None:
    """``batch_size``, or the old keyword given for it; more than one of them is refused."""
    given = {
        name: value
        for name, value in (
            ("batch_size", batch_size),
            ("tasks", tasks),
            ("pairs_per_step", pairs_per_step),
        )
        if value is not None
    }
    for name, value in given.items():
        _check_positive(name, value, none=True)
    if len(given) > 1:
        raise ValueError(
            f"TrainingConfig.{' and '.join(given)} each size the batch of one "
            f"step (batch_size, as the method's sampler counts it): set one of "
            f"them."
        )
    if pairs_per_step is not None and per_class is not None:
        raise ValueError(
            "TrainingConfig.per_class (sequence episodes) and pairs_per_step "
            "(pairs or triplets) shape different kinds of training batches: set "
            "one of them."
        )
    return next(iter(given.values()), None)


def _sampler(
    sampler: Mapping[str, Any] | None, per_class: int | None, labels: str | None
) -> Mapping[str, Any]:
    """``sampler`` as a dict of its own, with the old ``per_class`` and ``labels`` keywords
    (sequence episodes, ``labels`` one-hot unless said otherwise) mapped into it."""
    if sampler is not None and not (
        isinstance(sampler, Mapping) and all(isinstance(key, str) for key in sampler)
    ):
        raise ValueError(
            f"TrainingConfig.sampler must be a mapping of setting names to values, got {sampler!r}"
        )
    settings = dict(sampler or {})
    shadowing = sorted(settings.keys() & {f.name for f in fields(TrainingConfig)})
    if shadowing:
        raise ValueError(
            f"TrainingConfig.sampler holds the sampler's own settings, but "
            f"{', '.join(shadowing)} {'is a' if len(shadowing) == 1 else 'are'} "
            f"TrainingConfig field{'s' * (len(shadowing) > 1)}: give "
            f"{'it' if len(shadowing) == 1 else 'them'} as such."
        )
    if per_class is None and labels is None:
        return settings
    if sampler is not None:
        raise ValueError(
            "TrainingConfig.per_class and labels are settings of the sampler: give "
            "them in sampler only."
        )
    _check_positive("per_class", per_class, none=True)
    if labels is not None and labels not in LABEL_KINDS:
        raise ValueError(
            f"TrainingConfig.labels must be one of {', '.join(LABEL_KINDS)}, got {labels!r}"
        )
    if per_class is None:
        if labels != "one_hot":  # the old default, which meant nothing without per_class
            raise ValueError(
                f"TrainingConfig.labels={labels!r} is for sequence episodes: set per_class too."
            )
        return settings
    return {"per_class": per_class, "labels": labels or "one_hot"}


def config_from_record(values: Mapping[str, Any]) -> TrainingConfig:
    """The :class:`TrainingConfig` of a checkpoint record's ``"config"``, of any age.

    A field the record lacks (saved before it existed) takes its default. A record saved before
    ``sampler`` existed has a field for each kind of batch, all but one of them None: its
    ``batch_size`` (the images of a labelled mini-batch), else its ``pairs_per_step``, else its
    ``tasks`` is the new ``batch_size``; its ``per_class`` and ``labels`` (sequence episodes)
    go into ``sampler``.

    Raises:
        ValueError: a key that no TrainingConfig, old or new, had.
    """
    values = dict(values)
    unknown = set(values) - {f.name for f in fields(TrainingConfig)} - set(OLD_FIELDS)
    if unknown:
        raise ValueError(
            f"Unknown training config keys {sorted(unknown)}: not a record of "
            f"TrainingConfig.to_dict()."
        )
    if not set(OLD_FIELDS) & values.keys():
        return TrainingConfig(**values)
    old = {name: values.pop(name, None) for name in OLD_FIELDS}
    sizes = (values.pop("batch_size", None), old["pairs_per_step"], old["tasks"])
    per_class, labels = old["per_class"], old["labels"]
    return TrainingConfig(
        **values,
        batch_size=next((size for size in sizes if size is not None), None),
        sampler=(
            {} if per_class is None else {"per_class": per_class, "labels": labels or "one_hot"}
        ),
    )
