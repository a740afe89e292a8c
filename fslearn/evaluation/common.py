"""What every kind of test shares: the 95% confidence interval of a mean over test episodes,
the fewest episodes a reported figure may rest on, and the base of the result types."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

import torch
from torch import Tensor

__all__ = ["MIN_REPORTED_EPISODES", "PerEpisodeResult", "check_interval_episodes",
           "confidence_interval95"]

#: the standard minimum number of test episodes for a reported figure
MIN_REPORTED_EPISODES = 600


def confidence_interval95(accuracies: Sequence[float] | Tensor) -> float:
    """Half-width of the 95% confidence interval of the mean: ``1.96 * s / sqrt(n)``.

    ``s`` is the sample standard deviation (``n - 1`` in the denominator) of the per-episode
    accuracies and ``n`` their number. The interval is ``mean +/- this value``.
    """
    values = torch.as_tensor(accuracies, dtype=torch.float64).flatten()
    if values.numel() < 2:
        raise ValueError(
            f"A confidence interval needs at least 2 episode accuracies, got {values.numel()}."
        )
    return float(1.96 * values.std(correction=1) / math.sqrt(values.numel()))


def check_interval_episodes(episodes: int) -> None:
    """Refuse fewer than 2 test episodes: no confidence interval can be computed from them."""
    if episodes < 2:
        raise ValueError(f"episodes must be at least 2 to give a confidence interval, got "
                         f"{episodes}; report figures over at least {MIN_REPORTED_EPISODES}.")


class PerEpisodeResult:
    """What the result types share: a JSON-ready dict, per-episode figures only on request.

    A result type is a frozen dataclass with a ``per_episode`` field (left out of ``to_dict``
    unless asked for) and a ``__str__`` that is its summary, as ``fslearn evaluate`` prints it.
    """

    def to_dict(self, per_episode: bool = False) -> dict[str, object]:
        result = asdict(self)  # type: ignore[call-overload]
        if not per_episode:
            result.pop("per_episode")
        return result

