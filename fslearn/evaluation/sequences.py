"""Sequence tests (the methods that declare ``episode_kind = "sequences"``): accuracy on sequence
episodes by presentation of a class, with the 95% confidence interval of each figure over test
episodes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fslearn._modes import evaluation_mode
from fslearn.data.dataset import FewShotDataset
from fslearn.data.sequences import SequenceSampler, SequenceTasks
from fslearn.evaluation.common import (
    PerEpisodeResult,
    check_interval_episodes,
    confidence_interval95,
)
from fslearn.methods.base import FewShotMethod
from fslearn.methods.sequence import correct_steps

__all__ = ["SHOT_EQUIVALENTS", "SHOT_EQUIVALENT_NOTE", "SequenceResult", "evaluate_sequences",
           "report_rows", "shot_equivalents"]

#: the figures a sequence model's test is summed up by: (k_shot, presentation) equivalents
SHOT_EQUIVALENTS = ((1, 2), (5, 6))


#: why a presentation's accuracy is only *like* a k-shot figure (printed beside it)
SHOT_EQUIVALENT_NOTE = (
    "Presentation k+1 of a class follows k labelled drawings of it, hence 'k-shot', but the "
    "protocol differs from a k-shot episode: the drawings arrive one at a time with the label "
    "one step late, the other classes have been seen a varying number of times, and the model "
    "is scored on every step rather than on held-out queries after a complete support set. "
    "Finn et al. (2017, Table 1) quote the MANN's 2nd and 5th presentations as 5-way 1-shot "
    "and 5-shot."
)


@dataclass(frozen=True)
class SequenceResult(PerEpisodeResult):
    """Accuracy on sequence episodes, by presentation, over test episodes (fractions).

    Attributes:
        accuracy, ci95: over every step of an episode (all presentations), the figure that
            picks the best checkpoint in training.
        by_presentation, by_presentation_ci95: ``[per_class]`` accuracy on the 1st, 2nd, ...
            presentation of a class, and the 95% CI over episodes of each.
        per_episode: ``[episodes][per_class]`` each episode's accuracy on each presentation
            (the mean over its ``n_way`` classes).
    """

    accuracy: float
    ci95: float
    by_presentation: list[float]
    by_presentation_ci95: list[float]
    episodes: int
    n_way: int
    per_class: int
    labels: str
    seed: int
    dataset: str
    per_episode: list[list[float]] = field(repr=False)

    def presentation(self, k: int) -> tuple[float, float]:
        """``(accuracy, ci95)`` on the ``k``-th presentation (1-based)."""
        if not 1 <= k <= self.per_class:
            raise ValueError(f"presentation must be in 1..{self.per_class}, got {k}")
        return self.by_presentation[k - 1], self.by_presentation_ci95[k - 1]

    def shot_equivalent(self, k_shot: int) -> tuple[float, float]:
        """``(accuracy, ci95)`` on presentation ``k_shot + 1``, the step after ``k_shot``
        labelled drawings of the class: the ``n_way``-way ``k_shot``-shot equivalent (see
        :data:`SHOT_EQUIVALENT_NOTE` for how the protocols differ)."""
        return self.presentation(k_shot + 1)

    def __str__(self) -> str:
        lines = [f"{self.n_way}-way sequences, {self.per_class} drawings per class, "
                 f"{self.labels} labels ({self.episodes} episodes of {self.dataset}):"]
        lines += [f"  presentation {k:>2}: {100 * a:6.2f}% +/- {100 * c:.2f}%"
                  for k, (a, c) in enumerate(zip(self.by_presentation, self.by_presentation_ci95,
                                                 strict=True), 1)]
        lines.append(f"  all steps      : {100 * self.accuracy:6.2f}% +/- {100 * self.ci95:.2f}%")
        return "\n".join(lines)


@torch.no_grad()
def evaluate_sequences(
    method: FewShotMethod,
    tasks: SequenceTasks | FewShotDataset,
    n_way: int = 5,
    per_class: int = 10,
    labels: str = "one_hot",
    episodes: int = 1000,
    seed: int = 0,
    device: torch.device | str | None = None,
    episodes_per_batch: int = 50,
    augment: bool = False,
    progress: bool = False,
) -> SequenceResult:
    """Accuracy of a sequence model by presentation over ``episodes`` test sequence episodes.

    Episodes come ``episodes_per_batch`` at a time, batch ``j`` of a :class:`SequenceSampler`
    seeded with ``seed``, so every method evaluated with the same arguments sees the same
    episodes. Each episode's accuracy on presentation ``k`` is the mean over its ``n_way``
    classes; the figures are the means over episodes with their 95% CIs.

    Args:
        method: a sequence model (:class:`~fslearn.methods.sequence.SequenceMethod`); put in
            evaluation mode while this runs, and restored after.
        tasks: the test classes, with how their images are presented (a plain dataset is
            presented as :class:`SequenceTasks` does by default).
        n_way, per_class, labels: the episodes' shape; ``n_way`` and ``labels`` must be those
            the model was built for.
        episodes: number of test episodes (at least 2; the paper's table needs many: 1000).
        seed: which episodes.
        device: where to compute; defaults to the method's device.
        episodes_per_batch: episodes scored together.
        augment: rotate and shift the test drawings as in training (default: the drawings as
            they are).
        progress: show a progress bar.

    Raises:
        ValueError: a method that does not read sequences, episodes the model was not built for,
            or a request the classes cannot meet (one line saying what to change).
    """
    check_interval_episodes(episodes)
    if method.episode_kind != "sequences":  # declared by the method's class
        raise ValueError(f"{type(method).__name__} does not read sequence episodes; evaluate it "
                         f"with evaluate().")
    if not isinstance(tasks, SequenceTasks):
        tasks = SequenceTasks(tasks)
    sampler = tasks.sampler(n_way, per_class, min(episodes_per_batch, episodes), seed, labels,
                            augment=augment)
    _check_built_for(method, tasks, n_way, labels)
    if device is None:
        device = next(iter(method.parameters())).device
    with evaluation_mode(method):
        per_episode = _accuracy_by_episode(method, sampler, episodes, device, progress)
    overall = per_episode.mean(1)
    return SequenceResult(
        accuracy=float(overall.mean()),
        ci95=confidence_interval95(overall),
        by_presentation=per_episode.mean(0).tolist(),
        by_presentation_ci95=[confidence_interval95(column) for column in per_episode.T],
        episodes=episodes,
        n_way=n_way,
        per_class=per_class,
        labels=labels,
        seed=seed,
        dataset=tasks.name,
        per_episode=per_episode.tolist(),
    )


def _accuracy_by_episode(method: FewShotMethod, sampler: SequenceSampler, episodes: int,
                         device: torch.device | str, progress: bool) -> Tensor:
    """``[episodes, per_class]``: each of the first ``episodes`` episodes of ``sampler`` (its
    batches in order), the accuracy on each presentation, the mean over its ``n_way`` classes."""
    chunks = []
    for batch in tqdm(range(math.ceil(episodes / sampler.batch)), disable=not progress,
                      desc="sequences", leave=False):
        episode = sampler.episode(batch).to(device)
        hits = correct_steps(method(episode), episode)
        # each presentation of each class happens once per episode, so every cell of
        # [episode, presentation] averages exactly n_way steps
        which = episode.presentation - 1
        right = torch.zeros(episode.batch, sampler.per_class, dtype=torch.float64, device=device)
        right.scatter_add_(1, which, hits.double())
        chunks.append((right / sampler.n_way).cpu())
    return torch.cat(chunks)[:episodes]


def _check_built_for(method: FewShotMethod, tasks: SequenceTasks, n_way: int, labels: str
                     ) -> None:
    """Refuse episodes whose inputs or outputs are not the size the model was built for."""
    inputs, outputs = tasks.model_shape(n_way, labels)
    built = (method.hparams.get("input_features"), method.hparams.get("num_outputs"))
    if built != (inputs, outputs):
        raise ValueError(
            f"{method.name} was built for {built[0]} input features and {built[1]} outputs, but "
            f"{n_way}-way episodes with {labels} labels of {tasks.image_size}x"
            f"{tasks.image_size} images need {inputs} and {outputs}: evaluate on the episodes "
            f"it was trained on (its n_way, labels and image size).")


def report_rows(result: SequenceResult, paper: Mapping[int, float]) -> list[dict[str, Any]]:
    """The rows of ``fslearn report`` for a sequence model: the accuracy on each presentation
    with its 95% CI, beside ``paper_accuracy``, the published figure for that presentation
    (``paper[k]``; None where there is none)."""
    return [{"presentation": k, "accuracy": accuracy, "ci95": ci95,
             "paper_accuracy": paper.get(k)}
            for k, (accuracy, ci95) in enumerate(zip(result.by_presentation,
                                                     result.by_presentation_ci95,
                                                     strict=True), 1)]


def shot_equivalents(result: SequenceResult) -> list[dict[str, Any]]:
    """The presentations that stand in for the standard k-shot settings, where the episodes
    are long enough."""
    rows = []
    for k_shot, presentation in SHOT_EQUIVALENTS:
        if presentation <= result.per_class:
            accuracy, ci95 = result.presentation(presentation)
            rows.append({"n_way": result.n_way, "k_shot": k_shot, "presentation": presentation,
                         "accuracy": accuracy, "ci95": ci95})
    return rows
