"""The family base of sequence models, and the losses and scores they share.

A sequence model reads a whole sequence episode (at every step an image and the previous step's
label) and answers at every step; how it carries what it has seen (an LSTM's state, an external
memory) is its own business.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.data.sequences import LABEL_KINDS, SequenceEpisode, SequenceSampler, SequenceTasks
from fslearn.methods.base import FewShotMethod
from fslearn.methods.options import Family, Option

if TYPE_CHECKING:
    from fslearn.training import TrainingConfig

__all__ = [
    "SequenceMethod",
    "accuracy_by_presentation",
    "correct_steps",
    "predictions",
    "sequence_loss",
]


# --- losses and scores on sequence episodes ---------------------------------------------------


def _per_character(logits: Tensor, episode: SequenceEpisode) -> Tensor:
    """``[batch, time, outputs]`` -> ``[batch, time, string_length, symbols]`` for strings."""
    return logits.unflatten(2, (episode.string_length, episode.symbols))


def sequence_loss(logits: Tensor, episode: SequenceEpisode) -> Tensor:
    """Mean cross-entropy over every step of every episode (a scalar).

    Args:
        logits: ``[batch, time, episode.num_outputs]``.
        episode: the episodes the logits are for.
    """
    if episode.label_kind == "one_hot":
        return F.cross_entropy(logits.flatten(0, 1), episode.targets.flatten())
    per_char = _per_character(logits, episode)
    losses = F.cross_entropy(per_char.flatten(0, 2), episode.targets.flatten(), reduction="none")
    return losses.view(episode.targets.shape).sum(2).mean()


def predictions(logits: Tensor, episode: SequenceEpisode) -> Tensor:
    """The predicted targets: ``[batch, time]`` labels, or ``[batch, time, string_length]``."""
    if episode.label_kind == "one_hot":
        return logits.argmax(2)
    return _per_character(logits, episode).argmax(3)


def correct_steps(logits: Tensor, episode: SequenceEpisode) -> Tensor:
    """``[batch, time]`` bool: whether each step's prediction is right (a string label only if
    every character is)."""
    hits = predictions(logits, episode) == episode.targets
    return hits.all(2) if hits.dim() == 3 else hits


def accuracy_by_presentation(logits: Tensor, episode: SequenceEpisode, presentations: int = 10
                             ) -> Tensor:
    """Accuracy on the 1st, 2nd, ... presentation of a class, the paper's score.

    Args:
        logits: ``[batch, time, episode.num_outputs]``.
        episode: the episodes the logits are for.
        presentations: how many presentations to report.

    Returns:
        ``[presentations]`` float; entry ``k`` is the accuracy over all steps that show their
        class for the ``(k+1)``-th time; NaN where no step does (``per_class <= k``). A string
        label is right only if every character is.
    """
    correct = correct_steps(logits, episode)
    which = episode.presentation.flatten() - 1
    keep = which < presentations
    hits = torch.zeros(presentations, device=logits.device).index_add_(
        0, which[keep], correct.flatten()[keep].float())
    counts = torch.bincount(which[keep], minlength=presentations).float()
    return hits / counts  # 0 / 0 = NaN where the presentation never happens


class SequenceMethod(FewShotMethod):
    """A :class:`FewShotMethod` that reads sequence episodes.

    Contract: ``forward`` takes a :class:`SequenceEpisode` (what the training loop and
    :func:`fslearn.evaluation.evaluate_sequences` pass) or its ``inputs`` tensor
    ``[batch, time, features]`` directly, and gives ``logits [batch, time, num_outputs]``.
    Its constructor takes ``input_features`` and ``num_outputs`` (set from the episodes).
    """

    episode_kind = "sequences"
    family = Family(
        "sequence methods",
        summary="sequence episodes of --way classes, --batch episodes per step",
        refuses=("shot", "query", "val_shot", "sinusoid"),
        refused_as="support/query episodes or regression tasks",
        trains_on="learns from sequence episodes of --way classes x --per-class drawings")
    #: Santoro et al.'s episodes (5-way, 10 drawings per class, batches of 16, 20x20 images)
    #: and a constant learning rate (the step decay that suits prototypical networks stalls
    #: these runs)
    training_defaults = MappingProxyType({
        "n_way": 5, "batch_size": 16, "image_size": 20, "lr_gamma": 1.0,
        "sampler": MappingProxyType({"per_class": 10, "labels": "one_hot"})})
    #: TrainingConfig.sampler: drawings of each class per episode, and the kind of labels
    sampler_settings = ("per_class", "labels")
    cli_options = (
        Option(("--per-class", "--drawings"), "drawings of each class per episode", type=int,
               constructor=False, exclusive=True),
        Option(("--labels",), "one_hot: a one-hot label per class; string: 5-character strings "
               "over 5 symbols (Santoro et al.'s 15-way setting)",
               metavar="{" + ",".join(LABEL_KINDS) + "}", constructor=False, exclusive=True),
    )

    @classmethod
    def describe_training(cls, config: TrainingConfig, options: Mapping[str, Any]
                          ) -> tuple[str, str]:
        """Sequence episodes: ``5w10d-one_hot``, ``5-way sequences of 10 drawings per class
        (one_hot labels, 16 per step)``."""
        per_class, labels = config.sampler["per_class"], config.sampler["labels"]
        return (f"{config.n_way}w{per_class}d-{labels}",
                f"{config.n_way}-way sequences of {per_class} drawings per class "
                f"({labels} labels, {config.batch_size} per step)")

    def training_sampler(self, tasks: SequenceTasks, config: TrainingConfig) -> SequenceSampler:
        """Batches of ``config.batch_size`` sequence episodes (None: 1) of ``config.n_way``
        classes x ``per_class`` drawings, with ``labels`` labels (default one-hot), both from
        ``config.sampler``."""
        per_class = config.sampler.get("per_class")
        if per_class is None:
            raise ValueError("Sequence episodes need per_class in TrainingConfig.sampler, the "
                             "drawings of each class per episode (10 in Santoro et al.).")
        return tasks.sampler(config.n_way, per_class, config.batch_size or 1, config.seed,
                             config.sampler.get("labels", "one_hot"))

    @staticmethod
    def _inputs(episode: SequenceEpisode | Tensor) -> Tensor:
        """``[batch, time, features]`` from an episode or from the tensor itself."""
        return episode.inputs if isinstance(episode, SequenceEpisode) else episode

    def loss(self, episode: SequenceEpisode) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """``(scalar loss, logits [batch, time, outputs])`` on a batch of sequence episodes."""
        logits = self(episode.inputs)
        return sequence_loss(logits, episode), logits

    def correct(self, logits: Tensor, episode: SequenceEpisode  # type: ignore[override]
                ) -> tuple[int, int]:
        """``(right answers, steps)`` over every step of every episode (a string label is right
        only if every character is)."""
        hits = correct_steps(logits, episode)
        return int(hits.sum()), hits.numel()
