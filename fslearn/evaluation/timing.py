"""Test time per episode: what scoring one new task costs, measured on the method itself.

:func:`~fslearn.evaluation.evaluate` is not the right clock for this: it scores many episodes at
once and, for a method that sees images only through their embeddings, embeds the whole test set
once and shares that cost between all episodes. A reader with one new task pays for embedding its
own support and query images and for whatever the method does on them (a new head fine-tuned on
the support set, inner gradient steps), once. So this module times ``method(episode)`` on single
episodes built from raw images, in evaluation mode and without gradient tracking (the inner loop
of a gradient-based method turns gradients back on for itself), after one warm-up episode, and
keeps the median, which one slow run on a shared machine does not move.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from fslearn._modes import evaluation_mode
from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import EpisodeSampler
from fslearn.data.sequences import SequenceTasks
from fslearn.methods.base import FewShotMethod

__all__ = ["TIMING_NOTE", "seconds_per_episode", "seconds_per_sequence_episode"]

#: how the figures of this module are measured, in words, for the files that store them
TIMING_NOTE = (
    "median wall time of scoring one test episode from its raw images (method(episode) "
    "on one task, evaluation mode, no gradient tracking), over {repeats} episodes "
    "after one warm-up"
)


def _median_seconds(run: Callable[[int], object], repeats: int) -> float:
    """Median wall time of ``run(i)`` for ``i = 1..repeats``, after ``run(0)`` as a warm-up."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    run(0)  # first call: lazy initialisation, memory allocation, caches
    times = []
    for index in range(1, repeats + 1):
        start = time.perf_counter()
        run(index)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def seconds_per_episode(
    method: FewShotMethod,
    dataset: FewShotDataset,
    n_way: int,
    k_shot: int,
    n_query: int = 15,
    repeats: int = 5,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> float:
    """Median seconds to score one ``n_way``-way ``k_shot``-shot episode of ``dataset``.

    The episodes are the first ``repeats + 1`` of ``EpisodeSampler(dataset, n_way, k_shot,
    n_query, seed=seed)``, the same as :func:`~fslearn.evaluation.evaluate`'s, one task each
    (``support_x: [1, n_way*k_shot, C, H, W]``); the first is a warm-up.
    """
    if device is None:
        device = next(iter(method.parameters()), torch.empty(0)).device
    sampler = EpisodeSampler(dataset, n_way, k_shot, n_query, tasks=1, seed=seed)
    episodes = [sampler.episode(i).to(device) for i in range(repeats + 1)]

    def score(index: int) -> object:
        scores = method(episodes[index])
        if scores.device.type == "cuda":
            torch.cuda.synchronize(scores.device)
        return scores

    with evaluation_mode(method):
        return _median_seconds(score, repeats)


@torch.no_grad()
def seconds_per_sequence_episode(
    method: FewShotMethod,
    tasks: SequenceTasks,
    n_way: int,
    per_class: int,
    labels: str = "one_hot",
    repeats: int = 5,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> float:
    """Median seconds to run a sequence model over one test sequence episode (``n_way`` classes
    x ``per_class`` drawings, one answer per step), batches of one episode of the sampler of
    :func:`~fslearn.evaluation.evaluate_sequences` (unaugmented)."""
    if device is None:
        device = next(iter(method.parameters()), torch.empty(0)).device
    sampler = tasks.sampler(n_way, per_class, 1, seed, labels, augment=False)
    episodes = [sampler.episode(i).to(device) for i in range(repeats + 1)]
    with evaluation_mode(method):
        return _median_seconds(lambda index: method(episodes[index]), repeats)
