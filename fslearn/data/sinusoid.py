r"""Sinusoid regression (Finn, Abbeel and Levine 2017, section 5.1): the toy problem on which
MAML is easiest to watch.

Each task is a sine wave :math:`y = A \sin(x - \varphi)` with amplitude :math:`A` uniform in
``[0.1, 5]`` and phase :math:`\varphi` uniform in ``[0, \pi]``; its points have :math:`x` uniform
in ``[-5, 5]``. A task gives ``k_shot`` support points to adapt on and ``n_query`` query points
to be scored on.

The episodes are the package's one :class:`~fslearn.data.Episode` type, for regression: ``x`` and
``y`` are float tensors ``[tasks, points, 1]``, ``n_way`` is 1 (one output), and ``classes`` holds
each task's ``(amplitude, phase)``. Episode ``i`` is a pure function of ``(seed, i, split)``, as
for the image sampler, so training resumes and evaluations repeat exactly. Training draws from the
``"train"`` stream and evaluation from the ``"test"`` stream, so that no test task shares a random
draw with a training task, whatever the seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fslearn.data.episodes import Episode

__all__ = ["SPLITS", "SinusoidRegression", "SinusoidSampler"]

#: independent random streams of tasks: training draws from one, evaluation from the other
SPLITS = ("train", "test")


@dataclass(frozen=True)
class SinusoidRegression:
    """The distribution of sine-wave tasks; the paper's ranges by default."""

    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    name: str = "sinusoid"
    #: the episodes' float type: float64 makes a short training run nearly independent of the
    #: CPU's rounding (a book cell compares its figures across machines)
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        for label, (low, high) in (("amplitude", self.amplitude), ("phase", self.phase),
                                   ("x_range", self.x_range)):
            if not low < high:
                raise ValueError(f"SinusoidRegression.{label} must be (low, high) with low < "
                                 f"high, got {(low, high)}")

    def sampler(self, k_shot: int, n_query: int, tasks: int = 1, seed: int = 0,
                split: str = "train") -> SinusoidSampler:
        """Episodes of ``tasks`` sine waves with ``k_shot`` support and ``n_query`` query
        points each, from the ``split`` stream (``"train"`` or ``"test"``)."""
        return SinusoidSampler(self, k_shot, n_query, tasks, seed, split)


class SinusoidSampler:
    """Reproducible episodes of sine-wave tasks: episode ``i`` depends only on
    ``(seed, i, split)``."""

    def __init__(self, distribution: SinusoidRegression, k_shot: int, n_query: int,
                 tasks: int = 1, seed: int = 0, split: str = "train") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        for label, value in (("k_shot", k_shot), ("n_query", n_query), ("tasks", tasks)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.distribution = distribution
        self.k_shot, self.n_query, self.tasks, self.seed = k_shot, n_query, tasks, seed
        self.split = split

    def episode(self, episode_index: int) -> Episode:
        """Episode ``episode_index``: ``x``, ``y`` as ``[tasks, points, 1]`` in the
        distribution's ``dtype``."""
        if episode_index < 0:
            raise ValueError(f"episode_index must be non-negative, got {episode_index}")
        rng = np.random.default_rng([self.seed, episode_index, SPLITS.index(self.split)])
        amplitude = rng.uniform(*self.distribution.amplitude, size=(self.tasks, 1, 1))
        phase = rng.uniform(*self.distribution.phase, size=(self.tasks, 1, 1))
        x = rng.uniform(*self.distribution.x_range,
                        size=(self.tasks, self.k_shot + self.n_query, 1))
        y = amplitude * np.sin(x - phase)
        dtype = self.distribution.dtype
        x_t, y_t = torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)
        return Episode(
            support_x=x_t[:, : self.k_shot], support_y=y_t[:, : self.k_shot],
            query_x=x_t[:, self.k_shot :], query_y=y_t[:, self.k_shot :],
            classes=torch.from_numpy(np.concatenate([amplitude, phase], axis=2)[:, 0]).to(dtype),
            n_way=1,
        )
