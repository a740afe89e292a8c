r"""Exercise 4.1, the distance losses of Siamese networks: the contrastive loss (Hadsell, Chopra and
LeCun, 2006) and the triplet loss (Schroff, Kalenichenko and Philbin, 2015).

The references are :func:`fslearn.methods.siamese.contrastive_loss` and
:func:`fslearn.methods.siamese.triplet_loss`, with their conventions:

* ``contrastive_loss(distance, same, margin)`` gets the *Euclidean* (not squared) distances
  :math:`D` of a batch of pairs and ``same`` (1.0 for a same pair, 0.0 for a different one) and
  returns the mean over the pairs of
  :math:`y\,\tfrac12 D^2 + (1 - y)\,\tfrac12 \max(0, m - D)^2`.
* ``triplet_loss(positive_distance, negative_distance, margin)`` gets *squared* distances from
  each anchor to its positive and to its negative and returns the mean over the triplets of
  :math:`\max(0, d(a, p) - d(a, n) + m)`.

Every case is in float64 with numbers of few digits, small enough to read in a message. The
contrastive cases have margins other than 1 (where :math:`(m - D)^2` and :math:`m - D` could
agree), different pairs on both sides of the margin, and batches with more same than different
pairs and in mixed order (where a mean per group differs from the mean over the batch). The
triplet cases have triplets on both sides of the hinge.

Wrong answers are recognised as combinations of at most two wrong choices, the fewest first:

* contrastive: the roles of same and different pairs swapped; the pull term not squared; the
  push term not squared, without its hinge (no clamp at 0), with the distance squared inside the
  margin, or with the margin on the wrong side; the factor 1/2 forgotten; a sum instead of the
  mean, or a mean per group (same pairs, different pairs) instead of over the batch;
* triplet: the hinge missing; positive and negative swapped; the margin subtracted, or added
  outside the hinge; the distances squared again, or their square roots taken; a sum instead of
  the mean, or a mean over the active triplets only; and the loss not reduced at all (one number
  per triplet or pair).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_given
from fslearn.exercises.checker.combinations import combined_mistakes
from fslearn.methods.siamese import contrastive_loss as _reference_contrastive
from fslearn.methods.siamese import triplet_loss as _reference_triplet

__all__ = [
    "CONTRASTIVE_MISTAKES",
    "TRIPLET_MISTAKES",
    "check_siamese_losses",
    "contrastive_spec",
    "triplet_spec",
]

_CONTRASTIVE_NAMES = ("distance", "same", "margin")
_TRIPLET_NAMES = ("positive_distance", "negative_distance", "margin")


def _t(values: Any) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


# A choice in a formula: its key (None for the right choice), its hint, and the piece of the
# formula it computes.
_Choice = tuple[str | None, str, Callable[..., Tensor]]


def _combinations(dimensions: Sequence[Sequence[_Choice]], assemble: Callable[..., Tensor],
                  max_wrong: int = 2) -> tuple[Mistake, ...]:
    """Every combination of at most ``max_wrong`` wrong choices, one per dimension, the fewest
    wrong choices first; a combination's formula is ``assemble`` with its pieces."""
    return combined_mistakes(dimensions, lambda *pieces: _assembled(assemble, pieces),
                             max_wrong=max_wrong)


def _assembled(assemble: Callable[..., Tensor], pieces: tuple[Callable[..., Tensor], ...]
               ) -> Callable[..., Tensor]:
    return lambda *args: assemble(pieces, *args)


# --------------------------------------------------------------------------------------------
# contrastive_loss


def _pull(distance: Tensor, margin: float) -> Tensor:
    return distance.pow(2)


def _push(distance: Tensor, margin: float) -> Tensor:
    return (margin - distance).clamp_min(0).pow(2)


_ROLES: tuple[_Choice, ...] = (
    (None, "", lambda same: same),
    ("roles_swapped",
     "the roles of the pairs are swapped: `same` is 1.0 for a *same* pair, which the loss pulls "
     "together (D**2 / 2), and 0.0 for a different pair, which it pushes apart "
     "(max(0, m - D)**2 / 2). Weigh the pull by `same` and the push by `1 - same`.",
     lambda same: 1 - same),
)
_PULLS: tuple[_Choice, ...] = (
    (None, "", _pull),
    ("pull_not_squared",
     "the pull of a same pair is D**2 / 2, the square of the distance: you used D itself. The "
     "square makes the gradient shrink as the pair comes together.",
     lambda d, m: d),
)
_PUSHES: tuple[_Choice, ...] = (
    (None, "", _push),
    ("push_not_squared",
     "the push of a different pair is max(0, m - D)**2 / 2: you forgot to square the hinge "
     "`(margin - distance).clamp(min=0)`.",
     lambda d, m: (m - d).clamp_min(0)),
    ("push_no_hinge",
     "the push has no hinge: a different pair farther apart than the margin (D > m) must cost "
     "nothing, max(0, m - D) = 0, but (m - D)**2 grows again with D and would pull it back. Clamp "
     "`margin - distance` at 0 (`.clamp(min=0)` or `torch.relu`) before squaring.",
     lambda d, m: (m - d).pow(2)),
    ("push_no_hinge+push_not_squared",
     "the push of a different pair is max(0, m - D)**2 / 2: you used m - D, with neither the hinge "
     "(a pair farther apart than the margin must cost nothing: clamp `margin - distance` at 0) "
     "nor the square.",
     lambda d, m: m - d),
    ("distance_squared_in_push",
     "`distance` is the Euclidean distance D itself, not its square: the push is "
     "max(0, m - D)**2 / 2, with D, not D**2, compared with the margin.",
     lambda d, m: (m - d.pow(2)).clamp_min(0).pow(2)),
    ("margin_wrong_side",
     "the hinge is the wrong way round: a different pair costs something while it is *closer* "
     "than the margin, max(0, m - D), not max(0, D - m).",
     lambda d, m: (d - m).clamp_min(0).pow(2)),
)
_HALVES: tuple[_Choice, ...] = (
    (None, "", lambda loss: loss / 2),
    ("no_half",
     "the factor 1/2 is missing: the package (after Hadsell et al.) uses D**2 / 2 and "
     "max(0, m - D)**2 / 2. It only scales the gradient, but it is part of the loss asked for.",
     lambda loss: loss),
)


def _contrastive_mean(per_pair: Tensor, same: Tensor, pull: Tensor, push: Tensor) -> Tensor:
    return per_pair.mean()


def _contrastive_sum(per_pair: Tensor, same: Tensor, pull: Tensor, push: Tensor) -> Tensor:
    return per_pair.sum()


def _group_means(per_pair: Tensor, same: Tensor, pull: Tensor, push: Tensor) -> Tensor:
    return (same * pull).sum() / same.sum() + ((1 - same) * push).sum() / (1 - same).sum()


_CONTRASTIVE_REDUCTIONS: tuple[_Choice, ...] = (
    (None, "", _contrastive_mean),
    ("sum_not_mean",
     "you summed the losses of the pairs; the package averages them over the batch (`.mean()`), "
     "so that the loss does not grow with the batch size.",
     _contrastive_sum),
    ("mean_per_group",
     "you averaged the same pairs and the different pairs separately and added the two means; "
     "the loss is one mean over all the pairs of the batch, each pair counting once "
     "(`(same * pull + (1 - same) * push).mean()`).",
     _group_means),
)


def _contrastive_formula(pieces: tuple[Callable[..., Tensor], ...], distance: Tensor,
                         same: Tensor, margin: float) -> Tensor:
    roles, pull_of, push_of, halve, reduce = pieces
    weight = roles(same)
    pull, push = halve(pull_of(distance, margin)), halve(push_of(distance, margin))
    return reduce(weight * pull + (1 - weight) * push, weight, pull, push)


CONTRASTIVE_MISTAKES = (
    *_combinations((_ROLES, _PULLS, _PUSHES, _HALVES, _CONTRASTIVE_REDUCTIONS),
                   _contrastive_formula),
    Mistake("not_reduced",
            "you returned one loss per pair; the loss is one number, their mean over the batch "
            "(`.mean()`).",
            lambda d, s, m: s * d.pow(2) / 2 + (1 - s) * (m - d).clamp_min(0).pow(2) / 2),
)


def _contrastive_cases() -> tuple[Case, ...]:
    return (
        Case("the 4 pairs worked out in the notebook, margin 1.5",
             (_t([0.5, 1.0, 0.5, 2.0]), _t([1.0, 1.0, 0.0, 0.0]), 1.5), _CONTRASTIVE_NAMES),
        Case("6 pairs, 4 same and 2 different, in mixed order, margin 2.0",
             (_t([0.25, 1.5, 0.75, 2.5, 3.0, 1.25]), _t([1.0, 0.0, 1.0, 1.0, 0.0, 1.0]), 2.0),
             _CONTRASTIVE_NAMES),
        Case("5 pairs, 2 same and 3 different, margin 0.75",
             (_t([0.5, 0.25, 1.0, 0.5, 0.125]), _t([0.0, 1.0, 0.0, 1.0, 0.0]), 0.75),
             _CONTRASTIVE_NAMES),
        Case("8 pairs, 3 same and 5 different, margin 1.25",
             (_t([1.75, 0.5, 0.0, 2.25, 1.0, 0.75, 1.5, 0.25]),
              _t([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), 1.25), _CONTRASTIVE_NAMES),
    )


# --------------------------------------------------------------------------------------------
# triplet_loss

_HINGES: tuple[_Choice, ...] = (
    (None, "", lambda x: x.clamp_min(0)),
    ("no_hinge",
     "the hinge is missing: a triplet whose negative is already farther than the positive by "
     "more than the margin must cost nothing, max(0, d(a, p) - d(a, n) + m) = 0; without the "
     "clamp it costs less than nothing, and the loss can be lowered without end by pushing easy "
     "negatives away. Clamp at 0 (`.clamp(min=0)` or `torch.relu`).",
     lambda x: x),
)
_ORDERS: tuple[_Choice, ...] = (
    (None, "", lambda p, n: (p, n)),
    ("swapped",
     "positive and negative are swapped: the loss is max(0, d(a, p) - d(a, n) + m), which pulls "
     "the positive closer than the negative; yours rewards a close negative.",
     lambda p, n: (n, p)),
)
_MARGINS: tuple[_Choice, ...] = (
    (None, "", lambda difference, m, hinge: hinge(difference + m)),
    ("margin_subtracted",
     "the margin is on the wrong side: the negative must be farther than the positive by *at "
     "least* m, so the loss is positive while d(a, p) + m > d(a, n): "
     "max(0, d(a, p) - d(a, n) + m), with + m.",
     lambda difference, m, hinge: hinge(difference - m)),
    ("margin_outside_hinge",
     "the margin belongs inside the hinge: max(0, d(a, p) - d(a, n) + m), not "
     "max(0, d(a, p) - d(a, n)) + m (which never reaches 0, and whose gradient ignores m).",
     lambda difference, m, hinge: hinge(difference) + m),
)
_TRANSFORMS: tuple[_Choice, ...] = (
    (None, "", lambda d: d),
    ("squared_again",
     "the distances you get are already squared (FaceNet's d(a, p) = ||f(a) - f(p)||**2): use "
     "them as they are, without squaring them again.",
     lambda d: d.pow(2)),
    ("square_root",
     "you took the square roots of the distances: the triplet loss works on the squared "
     "distances it is given, max(0, d(a, p) - d(a, n) + m).",
     lambda d: d.sqrt()),
)


def _active_mean(per_triplet: Tensor) -> Tensor:
    return per_triplet.sum() / (per_triplet > 0).sum().clamp_min(1)


_TRIPLET_REDUCTIONS: tuple[_Choice, ...] = (
    (None, "", lambda per_triplet: per_triplet.mean()),
    ("sum_not_mean",
     "you summed the losses of the triplets; the package averages them over the batch "
     "(`.mean()`), so that the loss does not grow with the batch size.",
     lambda per_triplet: per_triplet.sum()),
    ("mean_of_active",
     "you averaged over the triplets that violate the margin only; the package averages over "
     "the whole batch, the triplets that cost 0 included (`.mean()`).",
     _active_mean),
)


def _triplet_formula(pieces: tuple[Callable[..., Tensor], ...], positive: Tensor,
                     negative: Tensor, margin: float) -> Tensor:
    hinge, order, margin_of, transform, reduce = pieces
    first, second = order(transform(positive), transform(negative))
    return reduce(margin_of(first - second, margin, hinge))


TRIPLET_MISTAKES = (
    *_combinations((_HINGES, _ORDERS, _MARGINS, _TRANSFORMS, _TRIPLET_REDUCTIONS),
                   _triplet_formula),
    Mistake("not_reduced",
            "you returned one loss per triplet; the loss is one number, their mean over the batch "
            "(`.mean()`).",
            lambda p, n, m: (p - n + m).clamp_min(0)),
)


def _triplet_cases() -> tuple[Case, ...]:
    return (
        Case("the 4 triplets worked out in the notebook, margin 0.5",
             (_t([0.25, 1.0, 0.5, 0.75]), _t([1.0, 0.5, 0.75, 2.0]), 0.5), _TRIPLET_NAMES),
        Case("6 triplets of unit vectors (squared distances in [0, 4]), FaceNet's margin 0.2",
             (_t([0.5, 1.25, 0.75, 2.0, 0.25, 1.5]), _t([1.5, 1.0, 0.875, 0.5, 3.0, 1.625]),
              0.2), _TRIPLET_NAMES),
        Case("5 triplets, margin 1.0",
             (_t([2.25, 0.5, 1.0, 0.0, 1.5]), _t([1.0, 2.0, 1.5, 0.25, 3.0]), 1.0),
             _TRIPLET_NAMES),
        Case("3 triplets, margin 0.75",
             (_t([1.0, 0.25, 2.0]), _t([4.0, 0.5, 1.0]), 0.75), _TRIPLET_NAMES),
    )


# --------------------------------------------------------------------------------------------
# The exercise


def _error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "Boolean value of Tensor" in text:
        return ("`if` (or `and`/`or`, `max`, `min`) got a tensor of several values: the loss "
                "works on the whole batch at once. Use `torch.clamp(x, min=0)` (or "
                "`torch.relu(x)`) for max(0, x), and `same` as a weight: "
                "`same * pull + (1 - same) * push`.")
    if "max() received an invalid combination" in text or "clamp() received" in text:
        return ("for max(0, x) element by element, use `x.clamp(min=0)` or `torch.relu(x)` "
                "(`torch.max(x, 0)` is the largest value along axis 0).")
    return None


def _scalar_check(raw: Any) -> tuple[str, str] | None:
    """The loss must be a tensor, so that training can call ``.backward()`` on it."""
    if not isinstance(raw, Tensor):
        name = type(raw).__name__
        return ("not_a_tensor",
                f"the value is right, but it is {'an' if name[:1] in 'aeiou' else 'a'} `{name}`: "
                f"return the torch tensor (one number, shape []), so that training can call "
                f"`loss.backward()` on it (`.item()` and `float(...)` cut the gradient).")
    return None


def _distinct(mistakes: tuple[Mistake, ...], cases: tuple[Case, ...],
              reference: Callable[..., Tensor]) -> tuple[Mistake, ...]:
    """``mistakes`` without those that give the same results as the reference or as an earlier
    mistake on every case (with no hinge, the margin outside the hinge is the plain margin)."""
    kept: list[Mistake] = []
    seen = [[reference(*case.args) for case in cases]]
    for mistake in mistakes:
        outputs = [mistake.variant(*case.args) for case in cases]
        if not any(all(a.shape == b.shape and torch.allclose(a, b) for a, b in
                       zip(outputs, other, strict=True)) for other in seen):
            kept.append(mistake)
            seen.append(outputs)
    return tuple(kept)


def _loss_spec(name: str, reference: Callable[..., Tensor], cases: tuple[Case, ...],
               mistakes: tuple[Mistake, ...], over: str) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        reference=reference,
        cases=cases,
        mistakes=_distinct(mistakes, cases, reference),
        returns=f"one number, the mean loss over the {over}",
        error_hint=_error_hint,
        output_check=_scalar_check,
    )


def contrastive_spec() -> FunctionSpec:
    """The spec of ``contrastive_loss`` (cases, reference and typical mistakes)."""
    return _loss_spec("contrastive_loss", _reference_contrastive, _contrastive_cases(),
                      CONTRASTIVE_MISTAKES, "pairs")


def triplet_spec() -> FunctionSpec:
    """The spec of ``triplet_loss`` (cases, reference and typical mistakes)."""
    return _loss_spec("triplet_loss", _reference_triplet, _triplet_cases(), TRIPLET_MISTAKES,
                      "triplets")


def check_siamese_losses(contrastive_loss: Callable[[Tensor, Tensor, float], Tensor] | None = None,
                         triplet_loss: Callable[[Tensor, Tensor, float], Tensor] | None = None, *,
                         quiet: bool = False) -> CheckResult:
    """Check a student's ``contrastive_loss`` and/or ``triplet_loss`` and display the verdict.

    ``contrastive_loss(distance, same, margin)`` gets float64 ``[batch]`` Euclidean distances and
    ``[batch]`` floats (1.0 same, 0.0 different) and a float margin; ``triplet_loss(
    positive_distance, negative_distance, margin)`` gets float64 ``[batch]`` squared distances
    and a float margin. Both must return one number (a tensor of shape ``[]``), the mean over the
    batch. Each function given is checked on its own cases (so the notebook checks them one at a
    time: ``check_siamese_losses(triplet_loss=triplet_loss)``).

    Args:
        contrastive_loss: the student's contrastive loss, or None.
        triplet_loss: the student's triplet loss, or None.
        quiet: return the result without displaying it.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`, one verdict per function given.

    Raises:
        TypeError: when no function is given.
    """
    return check_given("check_siamese_losses", "exercise 4.1, the Siamese losses", [
        ("contrastive_loss", contrastive_spec, contrastive_loss),
        ("triplet_loss", triplet_spec, triplet_loss)], quiet=quiet)
