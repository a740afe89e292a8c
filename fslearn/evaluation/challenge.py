"""Scoring Lake et al.'s one-shot challenge (:mod:`fslearn.data.lake`): each run is one 20-way
1-shot episode with one query per class; its error is the fraction of its 20 test items
classified wrong, and the score is the mean error over the runs with its 95% confidence interval
over the runs (:func:`~fslearn.evaluation.confidence_interval95`, the package's ``1.96 s /
sqrt(n)``; with 20 runs, Student's t would widen it by 7%).

Any method that scores N-way 1-shot episodes of any ``n_way`` (or of exactly 20) takes the
challenge, through its declarations: ``episode_kind == "episodes"`` and ``fixed_way`` None or 20.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from fslearn._modes import evaluation_mode
from fslearn.data.lake import LakeRun
from fslearn.evaluation.common import PerEpisodeResult, confidence_interval95
from fslearn.methods.base import FewShotMethod

__all__ = ["ChallengeResult", "check_takes_challenge", "score_challenge"]


@dataclass(frozen=True)
class ChallengeResult(PerEpisodeResult):
    """A model's error on the challenge (fractions, not percentages).

    Attributes:
        error, ci95: the mean error over the runs and the half-width of its 95% CI.
        runs, items: runs scored and test items in all (20 and 400 for the whole challenge).
        run_names: ``["run01", ...]``.
        predictions: ``[runs][20]`` the class (0 for ``class01``) predicted for each test item,
            in file order (``item01`` first).
        per_episode: ``[runs]`` each run's error.
    """

    error: float
    ci95: float
    runs: int
    items: int
    run_names: list[str]
    predictions: list[list[int]]
    per_episode: list[float] = field(repr=False)

    def __str__(self) -> str:
        return (
            f"Lake's one-shot challenge: {100 * self.error:.2f}% error +/- "
            f"{100 * self.ci95:.2f}% (95% CI over {self.runs} runs, {self.items} test items)"
        )


def check_takes_challenge(method: FewShotMethod, where: str = "") -> None:
    """Refuse, in one line, a method that cannot score a 20-way 1-shot episode of greyscale
    images: one tested on sequences, one whose head has another number of classes, or one
    that takes colour images. ``where`` names the checkpoint in the message."""
    what = where or method.name
    if method.episode_kind != "episodes":
        raise ValueError(
            f"{what} is tested on {method.episode_kind}, not on N-way K-shot "
            f"episodes: it cannot take the 20-way one-shot challenge."
        )
    if method.fixed_way not in (None, 20):
        raise ValueError(
            f"{what} has a head of {method.fixed_way} classes and scores only "
            f"{method.fixed_way}-way episodes; the challenge's runs are 20-way: "
            f"use a model that scores any number of classes, or a 20-way one."
        )
    channels = method.hparams.get("in_channels", 1)
    if channels != 1:
        raise ValueError(
            f"{what} takes {channels}-channel images; the challenge's drawings are "
            f"greyscale (1 channel)."
        )


@torch.no_grad()
def score_challenge(
    method: FewShotMethod, runs: Sequence[LakeRun], device: torch.device | str | None = None
) -> ChallengeResult:
    """The error of ``method`` on each run (one episode each, one task per call) and their mean.

    Args:
        method: a method that takes the challenge (:func:`check_takes_challenge`); it is put in
            evaluation mode while this runs, and restored after.
        runs: the runs, from :func:`~fslearn.data.lake.load_lake_runs` (at least 2, for an
            interval).
        device: where to compute; defaults to the method's.

    Raises:
        ValueError: the method cannot take the challenge, or fewer than 2 runs.
    """
    check_takes_challenge(method)
    if len(runs) < 2:
        raise ValueError(f"a 95% CI over runs needs at least 2 runs, got {len(runs)}")
    if device is None:
        device = next(iter(method.parameters()), torch.empty(0)).device
    errors, predictions = [], []
    with evaluation_mode(method):
        for run in runs:
            episode = run.episode().to(device)
            by_class = method(episode).argmax(dim=-1)[0].cpu()  # [20]: query j is of class j
            predicted = by_class[run.answers]  # back to file order: item i is of class answers[i]
            errors.append(float((predicted != run.answers).double().mean()))
            predictions.append(predicted.tolist())
    return ChallengeResult(
        error=sum(errors) / len(errors),
        ci95=confidence_interval95(errors),
        runs=len(runs),
        items=sum(len(run.answers) for run in runs),
        run_names=[run.name for run in runs],
        predictions=predictions,
        per_episode=errors,
    )
