"""Regression tests (sinusoids): mean squared error on the query points of test tasks after
each number of inner steps, with its 95% confidence interval."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from fslearn._modes import evaluation_mode
from fslearn.data.episodes import Episode
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.evaluation.common import (
    PerEpisodeResult,
    check_interval_episodes,
    confidence_interval95,
)
from fslearn.methods.base import FewShotMethod

__all__ = ["REPORT_QUERY", "REPORT_STEPS", "RegressionResult", "evaluate_regression",
           "report_rows"]

#: the settings of Finn et al.'s Table 2: inner steps, and query points per task
REPORT_STEPS, REPORT_QUERY = (1, 5, 10), 100


@dataclass(frozen=True)
class RegressionResult(PerEpisodeResult):
    """Mean squared error over test tasks after ``steps`` inner steps, with its 95% CI."""

    mse: float
    ci95: float
    steps: int
    episodes: int
    k_shot: int
    n_query: int
    seed: int
    per_episode: list[float] = field(repr=False)

    def __str__(self) -> str:
        return (f"K={self.k_shot}, {self.steps} step{'s' if self.steps != 1 else ''}: MSE "
                f"{self.mse:.3f} +/- {self.ci95:.3f} (95% CI over {self.episodes} tasks)")



@torch.no_grad()
def evaluate_regression(
    method: FewShotMethod,
    tasks: SinusoidRegression,
    k_shot: int,
    steps: Sequence[int] = (1, 5, 10),
    n_query: int = 100,
    episodes: int = 600,
    seed: int = 0,
    episodes_per_batch: int = 100,
) -> list[RegressionResult]:
    """Mean squared error on the query points of ``episodes`` test tasks, after each number of
    inner steps in ``steps`` on ``k_shot`` support points (the method's ``test_inner_steps`` is
    set to each in turn, and restored). The same tasks for every method and number of steps,
    drawn from the sampler's ``"test"`` stream, which training never uses."""
    check_interval_episodes(episodes)
    if not hasattr(method, "test_inner_steps"):
        raise ValueError(f"{type(method).__name__} does not adapt by inner steps.")
    sampler = tasks.sampler(k_shot, n_query, tasks=1, seed=seed, split="test")
    device = next(iter(method.parameters())).device
    results = []
    # test_inner_steps is set to each count in turn below; the block puts back the method's own
    with evaluation_mode(method, test_inner_steps=method.test_inner_steps):
        for count in steps:
            method.test_inner_steps = count
            errors = []
            for start in range(0, episodes, episodes_per_batch):
                batch = [sampler.episode(i) for i in range(start, min(start + episodes_per_batch,
                                                                      episodes))]
                episode = Episode(*(torch.cat([getattr(e, name) for e in batch]) for name in (
                    "support_x", "support_y", "query_x", "query_y", "classes")), n_way=1)
                predictions = method(episode.to(device)).cpu()
                errors.append((predictions - episode.query_y).pow(2).mean(dim=(1, 2)))
            per_episode = torch.cat(errors).double()
            results.append(RegressionResult(
                mse=float(per_episode.mean()), ci95=confidence_interval95(per_episode),
                steps=count, episodes=episodes, k_shot=k_shot, n_query=n_query, seed=seed,
                per_episode=per_episode.tolist()))
    return results


def report_rows(method: FewShotMethod, tasks: SinusoidRegression, k_shot: int,
                paper: Mapping[int, float], episodes: int, seed: int) -> list[dict[str, Any]]:
    """The rows of ``fslearn report`` for a regression model: the mean squared error after each
    of :data:`REPORT_STEPS` inner steps on ``k_shot`` support points, :data:`REPORT_QUERY` query
    points per task, beside ``paper_mse``, the published figure after that many steps (None
    where there is none)."""
    results = evaluate_regression(method, tasks, k_shot, REPORT_STEPS,
                                  n_query=REPORT_QUERY, episodes=episodes, seed=seed)
    return [{**r.to_dict(), "paper_mse": paper.get(r.steps)} for r in results]
