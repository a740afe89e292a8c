"""Test time per episode: what scoring one new task costs, measured on the method itself.

:func:`~fslearn.evaluation.evaluate` is not the right clock for this: it scores many episodes at
once and, for a method that sees images only through their embeddings, embeds the whole test set
once and shares that cost between all episodes. A reader with one new task pays for embedding its
own support and query images and for whatever the method does on them (a new head fine-tuned on
the support set, inner gradient steps), once. So this module times ``method(episode)`` on single
episodes built from raw images, in evaluation mode and without gradient tracking (the inner loop
of a gradient-based method turns gradients back on for itself), after one warm-up episode.

The clock, on a CPU, is the **CPU time** of the process (``time.process_time``: the seconds of
every thread that ran it, so core-seconds, the unit of the training core-hours), not the wall
time: on a machine shared with other work the wall time of the same computation grows by a
factor of two or three, its CPU time hardly moves. On a GPU it is the wall time, after
synchronising. Of several episodes the fastest is kept (Python's ``timeit`` reports the minimum
for the same reason: whatever else happens can only slow a run down).
"""

from __future__ import annotations

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
    "fastest CPU time (core-seconds; wall time on a GPU) of scoring one test episode from its "
    "raw images (method(episode) on one task, evaluation mode, no gradient tracking), over "
    "{repeats} episodes after one warm-up"
)


def _fastest_seconds(run: Callable[[int], object], repeats: int, device: torch.device) -> float:
    """Fastest time of ``run(i)`` for ``i = 1..repeats``, after ``run(0)`` as a warm-up: CPU
    time on a CPU, wall time (synchronised) on a GPU."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    on_gpu = device.type == "cuda"
    clock = time.perf_counter if on_gpu else time.process_time
    run(0)  # first call: lazy initialisation, memory allocation, caches
    times = []
    for index in range(1, repeats + 1):
        start = clock()
        run(index)
        if on_gpu:
            torch.cuda.synchronize(device)
        times.append(clock() - start)
    return min(times)


def _device(method: FewShotMethod, device: torch.device | str | None) -> torch.device:
    if device is None:
        return next(iter(method.parameters()), torch.empty(0)).device
    return torch.device(device)


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
    """Fastest seconds (CPU time on a CPU) to score one ``n_way``-way ``k_shot``-shot episode.

    The episodes are the first ``repeats + 1`` of ``EpisodeSampler(dataset, n_way, k_shot,
    n_query, seed=seed)``, the same as :func:`~fslearn.evaluation.evaluate`'s, one task each
    (``support_x: [1, n_way*k_shot, C, H, W]``); the first is a warm-up.
    """
    device = _device(method, device)
    sampler = EpisodeSampler(dataset, n_way, k_shot, n_query, tasks=1, seed=seed)
    episodes = [sampler.episode(i).to(device) for i in range(repeats + 1)]
    with evaluation_mode(method):
        return _fastest_seconds(lambda index: method(episodes[index]), repeats, device)


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
    """Fastest seconds (CPU time on a CPU) to run a sequence model over one test sequence
    episode (``n_way`` classes x ``per_class`` drawings, one answer per step): batches of one
    episode of the sampler of :func:`~fslearn.evaluation.evaluate_sequences` (unaugmented)."""
    device = _device(method, device)
    sampler = tasks.sampler(n_way, per_class, 1, seed, labels, augment=False)
    episodes = [sampler.episode(i).to(device) for i in range(repeats + 1)]
    with evaluation_mode(method):
        return _fastest_seconds(lambda index: method(episodes[index]), repeats, device)
