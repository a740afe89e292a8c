"""Exercise 1.1: the half-width of the 95% confidence interval of a mean accuracy.

The student writes ``confidence_interval95(accuracies)``, the reference being
:func:`fslearn.evaluation.confidence_interval95`: ``1.96 * s / sqrt(E)`` with ``s`` the sample
standard deviation (``E - 1`` in the denominator) of ``E`` per-episode accuracies, as a fraction.

Typical mistakes are recognised as combinations of wrong choices in that formula: the
population standard deviation (numpy's default ``ddof=0``) or the variance instead of ``s``; no
division by ``sqrt(E)``, or a division by ``E``; 1.645, 2.576, 2 or no factor instead of 1.96; a
percentage instead of a fraction; the interval ``(low, high)`` or ``(mean, half-width)`` instead
of the half-width. The population standard deviation is rejected: the package and the course use
``E - 1``, and on the few-episode test cases the two differ by up to 30%.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from fslearn.evaluation import confidence_interval95 as _reference
from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_functions
from fslearn.exercises.checker.combinations import Choice, combined_mistakes

__all__ = ["check_confidence_interval", "confidence_interval_spec"]

_SPREADS = {
    "sample": None,
    "population_std": (
        "you used the population standard deviation, which divides by E. The formula uses the "
        "sample standard deviation s, which divides by E - 1: `accuracies.std()` in torch (its "
        "default), or `np.std(x, ddof=1)` in numpy (whose default is ddof=0). With hundreds of "
        "episodes the two barely differ, but with the few episodes of these test cases they do, "
        "and the package uses E - 1."),
    "variance": (
        "you used the variance s**2 where the formula needs the standard deviation s, its "
        "square root."),
}
_DIVISORS = {
    "sqrt_e": None,
    "std_not_sem": (
        "you stopped at the standard deviation of the accuracies, the spread of single "
        "episodes. The interval is about their mean, which varies much less: its standard "
        "error is s / sqrt(E). Divide by sqrt(E)."),
    "divided_by_e": (
        "you divided by E; the standard error of the mean is the standard deviation divided by "
        "sqrt(E)."),
}
_FACTORS = {
    1.96: None,
    1.645: ("z_1.645", "1.645 gives a 90% interval (5% in each tail); a 95% interval uses 1.96."),
    2.576: ("z_2.576", "2.576 gives a 99% interval; a 95% interval uses 1.96."),
    2.0: ("z_2", "2 is the rule of thumb; the 95% interval of the normal distribution, and the "
                 "package, use 1.96."),
    1.0: ("no_z", "you returned the standard error itself: multiply it by 1.96 to get the "
                  "half-width of the 95% interval."),
}
_SCALES = {
    1.0: None,
    100.0: ("percentage", "your answer is in percent (100 times too large): return a fraction, "
                          "on the scale of the accuracies themselves."),
}
_FORMS = {
    "half_width": None,
    "interval": (
        "you returned the interval (mean - h, mean + h); return only its half-width h, one "
        "number: the interval is then mean +/- h."),
    "mean_and_half_width": (
        "you returned two numbers, the mean and the half-width; return only the half-width, one "
        "number."),
}


def _formula(spread: str, divisor: str, z: float, scale: float,
             form: str) -> Callable[[Tensor], Tensor]:
    """A variant of the reference: each argument is one choice in the formula."""

    def variant(accuracies: Tensor) -> Tensor:
        a = torch.as_tensor(accuracies, dtype=torch.float64).flatten()
        n = a.numel()
        s = {"sample": a.std(correction=1), "population_std": a.std(correction=0),
             "variance": a.var(correction=1)}[spread]
        half = z * s / {"sqrt_e": math.sqrt(n), "std_not_sem": 1.0, "divided_by_e": n}[divisor]
        mean = a.mean()
        out = {"half_width": half, "interval": torch.stack([mean - half, mean + half]),
               "mean_and_half_width": torch.stack([mean, half])}[form]
        return out * scale

    return variant


def _choices(options: dict[Any, Any], paired: bool = False) -> list[Choice]:
    """The choices of one place of the formula, from ``{value: hint or None}`` (``paired``:
    ``{value: (key, hint) or None}``); a choice's value is what :func:`_formula` takes."""
    if paired:
        return [(None, "", value) if entry is None else (*entry, value)
                for value, entry in options.items()]
    return [(None if hint is None else value, hint or "", value)
            for value, hint in options.items()]


def _mistakes() -> tuple[Mistake, ...]:
    """Every combination of wrong choices, the fewest wrong choices first."""
    return combined_mistakes(
        (_choices(_SPREADS), _choices(_DIVISORS), _choices(_FACTORS, paired=True),
         _choices(_SCALES, paired=True), _choices(_FORMS)), _formula,
        several="your answers differ from the formula in several ways:")


def _cases() -> tuple[Case, ...]:
    generator = torch.Generator().manual_seed(2024)
    # 600 episodes of 75 queries each, every query right with probability 0.6
    simulated = torch.binomial(torch.full((600,), 75.0, dtype=torch.float64),
                               torch.full((600,), 0.6, dtype=torch.float64),
                               generator=generator) / 75
    raw = [
        ("four episodes", [0.6, 0.8, 0.7, 0.9]),
        ("two episodes, the fewest that have a spread", [0.25, 0.75]),
        ("ten 5-way episodes of 75 queries",
         [k / 75 for k in (52, 60, 47, 66, 55, 58, 49, 63, 57, 61)]),
        ("every episode equally accurate", [0.8] * 5),
    ]
    cases = [Case(description, (torch.tensor(values, dtype=torch.float64),), ("accuracies",))
             for description, values in raw]
    cases.append(Case("600 simulated episodes", (simulated,), ("accuracies",)))
    return tuple(cases)


def _one_number(t: Tensor) -> Tensor:
    return t.reshape(()) if t.numel() == 1 else t


def _error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "ddof" in text:
        return ("torch's `std` has no `ddof`: `accuracies.std()` already divides by E - 1 (or "
                "write `correction=1`). For numpy, convert first: `np.std(accuracies.numpy(), "
                "ddof=1)`.")
    if "must be Tensor, not int" in text or "must be Tensor, not float" in text:
        return ("torch functions such as `torch.sqrt` take tensors; for a plain number use "
                "`math.sqrt(E)` (or `E ** 0.5`).")
    if "len() of a 0-d tensor" in text:
        return "`accuracies` is a 1-D tensor: its number of entries is `accuracies.numel()`."
    return None


def confidence_interval_spec() -> FunctionSpec:
    """The spec of ``confidence_interval95`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="confidence_interval95",
        reference=_reference,
        cases=_cases(),
        mistakes=_mistakes(),
        returns="one number, the half-width",
        normalise=_one_number,
        error_hint=_error_hint,
    )


def check_confidence_interval(confidence_interval95: Callable[[Tensor], float], *,
                              quiet: bool = False) -> CheckResult:
    """Check a student's ``confidence_interval95(accuracies)`` and display the verdict.

    It is called on five cases (1-D float64 tensors of 2 to 600 accuracies in ``[0, 1]``) and
    must return the half-width ``1.96 * s / sqrt(E)`` as a number (a float, or a one-element
    tensor or array), within a relative tolerance of 1e-4.

    Args:
        confidence_interval95: the student's function.
        quiet: return the result without displaying it.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`: ``passed``, ``message``, the keys
        of recognised ``mistakes``, and ``use(function)`` for the cells that follow.
    """
    return check_functions("exercise 1.1, the confidence interval", [confidence_interval_spec()],
                           [confidence_interval95], quiet=quiet)
