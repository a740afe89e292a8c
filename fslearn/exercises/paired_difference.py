"""Exercise 8.1: comparing two methods on the same test episodes, ``paired_difference``.

The student writes ``paired_difference(a, b)``: ``a`` and ``b`` are two methods' accuracies on
the same ``E`` test episodes (``a[i]`` and ``b[i]`` from episode ``i``), 1-D float64 tensors;
it returns ``(mean difference, half-width of its 95% confidence interval)``, the mean of the
per-episode differences ``d_i = a_i - b_i`` and ``1.96 * s_d / sqrt(E)``, as fractions. The
reference is :func:`fslearn.results_table.paired_difference`.

Recognised: the difference of the two means with the two intervals combined as if the episodes
were independent (``sqrt(ci_a**2 + ci_b**2)``) or simply added; the difference taken the other
way round (``b - a``); the population standard deviation of the differences; no division by
``sqrt(E)``; a percentage instead of a fraction; and the interval of one method's accuracies
instead of the differences'. The cases have episodes whose difficulty both methods share, so
that the paired and unpaired intervals differ clearly, a case where the methods differ by
exactly one right answer per episode (a zero-width interval), and a negative difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from fslearn.evaluation import confidence_interval95 as _ci
from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_functions
from fslearn.results_table import paired_difference as _reference

__all__ = ["PAIRED_MISTAKES", "check_paired_difference", "paired_difference_spec"]

_NAMES = ("a", "b")


def _pair(mean: Tensor, half: Tensor | float) -> tuple[float, float]:
    return float(mean), float(half)


def _unpaired(a: Tensor, b: Tensor) -> tuple[float, float]:
    return _pair(a.mean() - b.mean(), math.hypot(_ci(a), _ci(b)))


def _added(a: Tensor, b: Tensor) -> tuple[float, float]:
    return _pair(a.mean() - b.mean(), _ci(a) + _ci(b))


def _half_width(d: Tensor, correction: int = 1, divisor: float | None = None) -> float:
    n = d.numel()
    return float(
        1.96 * d.std(correction=correction) / (math.sqrt(n) if divisor is None else divisor)
    )


PAIRED_MISTAKES = (
    Mistake(
        "unpaired",
        "you combined the two methods' own intervals, sqrt(ci_a**2 + ci_b**2): that is the "
        "interval of a difference between two *independent* sets of episodes. Here both "
        "methods faced the same episodes, and an episode that is hard for one is hard for the "
        "other; that shared difficulty cancels in each episode's difference d_i = a_i - b_i. "
        "Take the differences first, then the interval of their mean: 1.96 * s_d / sqrt(E).",
        _unpaired,
    ),
    Mistake(
        "added_intervals",
        "you added the two half-widths, ci_a + ci_b, which is wider still than combining "
        "independent intervals; and the episodes are the same for both methods. Take each "
        "episode's difference d_i = a_i - b_i, then 1.96 * s_d / sqrt(E) of those.",
        _added,
    ),
    Mistake(
        "reversed",
        "the sign is reversed: the difference is a - b (the first method minus the second), "
        "positive when `a` is the better one.",
        lambda a, b: _pair((b - a).mean(), _ci(b - a)),
    ),
    Mistake(
        "population_std",
        "you used the population standard deviation of the differences (dividing by E); the "
        "package and the course use the sample standard deviation, dividing by E - 1: "
        "`d.std()` in torch (its default), `np.std(d, ddof=1)` in numpy.",
        lambda a, b: _pair((a - b).mean(), _half_width(a - b, correction=0)),
    ),
    Mistake(
        "std_not_sem",
        "you stopped at 1.96 times the standard deviation of the differences, the spread of "
        "single episodes; the interval is about their *mean*: divide by sqrt(E).",
        lambda a, b: _pair((a - b).mean(), _half_width(a - b, divisor=1.0)),
    ),
    Mistake(
        "percentage",
        "your answer is in percent (100 times too large): return fractions, on the scale of "
        "the accuracies.",
        lambda a, b: _pair(100 * (a - b).mean(), 100 * _ci(a - b)),
    ),
    Mistake(
        "interval_of_a",
        "the half-width is that of the first method's accuracies, not of the differences: "
        "compute d = a - b, then 1.96 * s_d / sqrt(E).",
        lambda a, b: _pair((a - b).mean(), _ci(a)),
    ),
)


def _cases() -> tuple[Case, ...]:
    generator = torch.Generator().manual_seed(808)
    # 600 episodes of 75 queries: a shared difficulty, and method b a little worse
    difficulty = torch.rand(600, generator=generator, dtype=torch.float64)
    a = (75 * (0.95 - 0.3 * difficulty)).round() / 75
    b = (a - torch.randint(0, 3, (600,), generator=generator) / 75).clamp(min=0)
    ten_a = torch.tensor(
        [k / 75 for k in (70, 66, 72, 60, 68, 74, 63, 71, 65, 69)], dtype=torch.float64
    )
    shift = torch.tensor([1, 0, 2, 1, 1, 0, 3, 1, 2, 1], dtype=torch.float64) / 75
    return (
        Case(
            "three episodes",
            (
                torch.tensor([1.0, 0.5, 0.75], dtype=torch.float64),
                torch.tensor([0.5, 0.5, 0.25], dtype=torch.float64),
            ),
            _NAMES,
        ),
        Case(
            "ten episodes of 75 queries, b a little worse on each", (ten_a, ten_a - shift), _NAMES
        ),
        Case("b better than a", (ten_a - shift, ten_a), _NAMES),
        Case(
            "b one right answer fewer on every episode (differences all equal)",
            (ten_a, ten_a - 1 / 75),
            _NAMES,
        ),
        Case("600 simulated episodes whose difficulty both methods share", (a, b), _NAMES),
    )


def _error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "ddof" in text:
        return (
            "torch's `std` has no `ddof`: `d.std()` already divides by E - 1 (or write "
            "`correction=1`)."
        )
    if "must be Tensor, not" in text:
        return "for a plain number use `math.sqrt(E)` (or `E ** 0.5`), not `torch.sqrt`."
    if "cannot unpack" in text or "not iterable" in text:
        return "return two numbers, `(mean, half_width)`."
    return None


def _two_numbers(t: Tensor) -> Tensor:
    return t.flatten()


def paired_difference_spec() -> FunctionSpec:
    """The spec of ``paired_difference`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="paired_difference",
        reference=_reference,
        cases=_cases(),
        mistakes=PAIRED_MISTAKES,
        returns="two numbers, (mean difference, half-width)",
        normalise=_two_numbers,
        error_hint=_error_hint,
        atol=1e-9,
    )


def check_paired_difference(
    paired_difference: Callable[[Tensor, Tensor], tuple[float, float]], *, quiet: bool = False
) -> CheckResult:
    """Check a student's ``paired_difference(a, b)`` and display the verdict.

    It is called on five cases (1-D float64 tensors of 3 to 600 accuracies in ``[0, 1]``, the
    same length each) and must return ``(mean of a - b, 1.96 * s_d / sqrt(E))`` as two numbers
    (a tuple or list of floats or one-element tensors), within a relative tolerance of 1e-4.

    Args:
        paired_difference: the student's function.
        quiet: return the result without displaying it.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`.
    """
    return check_functions(
        "exercise 8.1, comparing on the same episodes",
        [paired_difference_spec()],
        [paired_difference],
        quiet=quiet,
    )
