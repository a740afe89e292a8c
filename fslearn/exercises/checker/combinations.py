"""Typical mistakes as combinations of wrong choices in a formula.

An exercise describes its formula as dimensions, the places where a student can go wrong, each
a sequence of :data:`Choice` s: the right one (key None) and the usual wrong ones. Every
combination of choices but the all-right one is a :class:`~fslearn.exercises.checker.Mistake`
whose variant is the formula built from those choices, and whose hint lists what is wrong."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from fslearn.exercises.checker import Mistake

__all__ = ["Choice", "combined_mistakes"]

#: One choice in one place of the formula: its key (None for the right choice; the keys of a
#: combination are ``+``-joined into the mistake's), what to tell the student when it is made,
#: and what the formula is built from (passed to ``variant``).
Choice = tuple[str | None, str, Any]


def combined_mistakes(
    dimensions: Sequence[Sequence[Choice]],
    variant: Callable[..., Callable[..., Any]],
    *,
    max_wrong: int | None = None,
    several: str = "your answer differs from the formula in several ways:",
    extra: Sequence[tuple[int, Mistake]] = (),
) -> tuple[Mistake, ...]:
    """Every combination of wrong choices, one choice per dimension, the fewest wrong first.

    Args:
        dimensions: the places of the formula, each a sequence of choices.
        variant: ``variant(*values)``, the values of one choice per dimension, gives the wrong
            implementation (with the reference's signature).
        max_wrong: leave out combinations of more wrong choices than this (None: keep all).
        several: the first line of the hint of a combination of several wrong choices, above
            one line per wrong choice.
        extra: further mistakes, each with its number of wrong choices, placed after the
            combinations of as many.

    Within a number of wrong choices, mistakes keep the order of :func:`itertools.product`
    over the dimensions (the first matching mistake is the one a student is told about).
    """
    found: list[tuple[int, Mistake]] = []
    for combination in itertools.product(*dimensions):
        wrong = [(key, hint) for key, hint, _ in combination if key is not None]
        if not wrong or (max_wrong is not None and len(wrong) > max_wrong):
            continue
        hint = wrong[0][1] if len(wrong) == 1 else several + "\n" + "\n".join(
            f"  - {text}" for _, text in wrong)
        found.append((len(wrong), Mistake("+".join(key for key, _ in wrong), hint,
                                          variant(*(value for _, _, value in combination)))))
    found.extend(extra)
    found.sort(key=lambda entry: entry[0])  # stable: the product's order within a count
    return tuple(mistake for _, mistake in found)
