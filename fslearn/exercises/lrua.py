r"""Exercise 6.1, the LRUA write weights of a memory-augmented network (Santoro et al. 2016):
``update_usage``, ``least_used`` and ``lrua_write_weights``.

The references are the package's pure functions of :mod:`fslearn.methods.mann`, with its shapes:
``usage`` and the least-used weights are ``[batch, slots]``, read and write weights
``[batch, heads, slots]``, the gate ``[batch, heads]`` (already squashed, :math:`\sigma(\alpha_t)`).
Every case is small enough to read in a message (3 to 6 slots, 1 or 2 heads, 1 or 2 sequences)
and in float64, with numbers of few digits; the first case of each function is the 3-slot example
the notebook works out by hand (binary fractions such as 0.8125, so that it is exact).

* ``update_usage(usage, read_weights, write_weights, gamma)``,
  :math:`w^u_t = \gamma w^u_{t-1} + \sum_\text{heads} (w^r_t + w^w_t)`. The cases have two heads
  (a mean over the heads differs from the sum), ``gamma`` other than 0 and 1, and one case starts
  from the model's initial usage (one-hot at slot 0). Wrong answers are recognised as
  combinations of three wrong choices: the decay (forgotten, or applied to the new weights too),
  the terms (reads or writes forgotten) and the heads (averaged, or not summed at all, which
  leaves a heads axis).
* ``least_used(usage, n)``: 1.0 at the ``n`` smallest usages, ties to the lowest slot index (a
  stable sort). The cases have ``n`` from 1 to 3, rows in different orders, and ties: three slots
  that share the smallest usage where only two are taken, and the model's initial usage, where
  five slots tie at 0. Recognised: the most used slots (several ways of sorting), one slot only,
  ``n + 1`` slots, ties taken from the highest index or as ``torch.topk`` takes them (it promises
  no order among ties; the variant runs it on the same machine as the student's code), every
  tied slot marked (a threshold at the ``n``-th smallest
  usage), the complement of the mask, and the indices returned instead of the mask.
* ``lrua_write_weights(gate, prev_read_weights, prev_least_used)``,
  :math:`w^w_t = \sigma(\alpha_t) w^r_{t-1} + (1 - \sigma(\alpha_t)) w^{lu}_{t-1}`. No gate is 0.5
  (where swapping the roles changes nothing); one case has as many sequences as heads, where
  ``prev_least_used`` without a heads axis broadcasts silently against the wrong axis.
  Recognised: the gate's roles swapped, the sigmoid applied again, ``1 - gate`` forgotten, that
  broadcasting mix-up, and the heads axis summed or averaged away (or squeezed away when there
  is one head). A missing axis that makes broadcasting fail is an error with a hint that names
  the axes to add.

For all three, a result with the right values must also be a float tensor (the model computes
on with it: ``1 - w^lu`` fails on a bool mask), and the inputs must not be modified in place.
Using the *current* read weights instead of the previous ones cannot be seen from these pure
functions: the notebook says so in its text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_given
from fslearn.exercises.checker.combinations import combined_mistakes
from fslearn.methods.mann import least_used as _reference_least_used
from fslearn.methods.mann import lrua_write_weights as _reference_write_weights
from fslearn.methods.mann import update_usage as _reference_update_usage

__all__ = [
    "check_lrua",
    "least_used_spec",
    "update_usage_spec",
    "write_weights_spec",
]

_USAGE_NAMES = ("usage", "read_weights", "write_weights", "gamma")
_LEAST_USED_NAMES = ("usage", "n")
_WRITE_NAMES = ("gate", "prev_read_weights", "prev_least_used")


def _t(values: Any) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _kind(value: Any) -> str:
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} `{name}`"


def _float_tensor_check(what: str, not_float: str) -> Callable[[Any], tuple[str, str] | None]:
    """An ``output_check``: the result must be a float tensor (``what`` names it)."""

    def check(raw: Any) -> tuple[str, str] | None:
        if not isinstance(raw, Tensor):
            return ("not_a_tensor",
                    f"the values are right, but it returned {_kind(raw)}: return a torch tensor "
                    f"({what}); the model goes on computing with it.")
        if not raw.is_floating_point():
            dtype = str(raw.dtype).removeprefix("torch.")
            return ("not_float", f"the values are right, but the tensor is {dtype}. {not_float}")
        return None

    return check


def _common_error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "Boolean value of Tensor" in text:
        return ("`if` (or `and`/`or`, `max`, `min`) got a tensor of several values: compare "
                "tensors element-wise and use the result as a mask, or use the torch functions "
                "that work along an axis (`dim=`).")
    return None


# --------------------------------------------------------------------------------------------
# update_usage

_DECAYS = {
    "right": None,
    "no_decay": (
        "the old usage is not decayed: multiply it by gamma, `gamma * usage`. Without the decay "
        "a slot used long ago stays \"used\" for ever, and LRUA could never find the least "
        "*recently* used slot."),
    "decayed_new_weights": (
        "you multiplied the new read and write weights by gamma as well; gamma decays only the "
        "old usage, w^u_{t-1}: this step's weights are added in full."),
}
_TERMS = {
    "both": None,
    "no_reads": (
        "the read weights are missing: reading a slot uses it too, so w^u_t adds this step's "
        "read weights *and* its write weights."),
    "no_writes": (
        "the write weights are missing: a slot that was just written is used, so w^u_t adds "
        "this step's write weights *and* its read weights."),
}
_HEADS = {
    "sum": None,
    "mean": (
        "you averaged the weights over the heads; usage adds them up, `.sum(dim=1)`: each head "
        "that reads or writes a slot uses it (the test cases with one head cannot tell the "
        "two apart, those with two can)."),
    "keep": (
        "your result still has a heads axis, [batch, heads, slots]: usage is one number per "
        "slot, so sum the read and write weights over the heads (`.sum(dim=1)`) and return "
        "[batch, slots]."),
}


def _usage_formula(decay: str, terms: str, heads: str) -> Callable[..., Tensor]:
    """A variant of the reference: each argument is one choice in the formula."""

    def variant(usage: Tensor, read_weights: Tensor, write_weights: Tensor,
                gamma: float) -> Tensor:
        parts = {"both": read_weights + write_weights, "no_reads": write_weights,
                 "no_writes": read_weights}[terms]
        if heads == "sum":
            new = parts.sum(dim=1)
        elif heads == "mean":
            new = parts.mean(dim=1)
        else:
            usage = usage.unsqueeze(1)
            new = parts
        if decay == "right":
            return gamma * usage + new
        if decay == "no_decay":
            return usage + new
        return gamma * (usage + new)

    return variant


def _usage_unsqueeze_forgotten(usage: Tensor, read_weights: Tensor, write_weights: Tensor,
                               gamma: float) -> Tensor:
    """The heads kept, and usage broadcast without its axis (works for batch 1 or = heads)."""
    return gamma * usage + read_weights + write_weights


def _usage_mistakes() -> tuple[Mistake, ...]:
    """Every combination of wrong choices, the fewest wrong choices first."""
    keys = {"mean": "heads_averaged", "keep": "heads_not_summed"}
    dimensions = [[(keys.get(value, value) if text else None, text or "", value)
                   for value, text in options.items()] for options in (_DECAYS, _TERMS, _HEADS)]
    # the heads kept without `usage.unsqueeze(1)`: it broadcasts for 1 sequence or as many
    # sequences as heads (the cases), and errs otherwise
    forgotten = Mistake("heads_not_summed", _HEADS["keep"] or "", _usage_unsqueeze_forgotten)
    return combined_mistakes(dimensions, _usage_formula, extra=[(1, forgotten)])


USAGE_MISTAKES = _usage_mistakes()


def _usage_cases() -> tuple[Case, ...]:
    return (
        Case("the 3-slot example worked out in the notebook: 1 sequence, 1 head, gamma 0.5",
             (_t([[0.5, 0.25, 1.0]]), _t([[[0.125, 0.75, 0.125]]]),
              _t([[[0.125, 0.8125, 0.0625]]]), 0.5), _USAGE_NAMES),
        Case("1 sequence, 2 heads, 4 slots, gamma 0.95",
             (_t([[0.2, 1.5, 0.0, 0.7]]),
              _t([[[0.1, 0.6, 0.2, 0.1], [0.3, 0.3, 0.3, 0.1]]]),
              _t([[[0.0, 0.9, 0.1, 0.0], [0.2, 0.1, 0.6, 0.1]]]), 0.95), _USAGE_NAMES),
        Case("2 sequences, 2 heads, 5 slots, gamma 0.9",
             (_t([[0.5, 0.0, 1.2, 0.3, 2.0], [1.0, 0.4, 0.0, 0.0, 0.6]]),
              _t([[[0.1, 0.1, 0.6, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]],
                  [[0.0, 0.5, 0.3, 0.1, 0.1], [0.7, 0.1, 0.0, 0.1, 0.1]]]),
              _t([[[0.0, 0.8, 0.1, 0.1, 0.0], [0.1, 0.1, 0.1, 0.6, 0.1]],
                  [[0.3, 0.0, 0.6, 0.1, 0.0], [0.0, 0.2, 0.1, 0.7, 0.0]]]), 0.9),
             _USAGE_NAMES),
        Case("the model's first step, from usage one-hot at slot 0: 2 sequences, 1 head, "
             "6 slots, gamma 0.95",
             (_t([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]),
              _t([[[0.1, 0.5, 0.1, 0.1, 0.1, 0.1]], [[0.2, 0.2, 0.1, 0.1, 0.2, 0.2]]]),
              _t([[[0.05, 0.95, 0.0, 0.0, 0.0, 0.0]], [[0.0, 0.8, 0.2, 0.0, 0.0, 0.0]]]), 0.95),
             _USAGE_NAMES),
    )


def _usage_error_hint(error: BaseException) -> str | None:
    if "must match the size of tensor" in str(error):
        return ("`usage` is [batch, slots], the weights are [batch, heads, slots]: sum the "
                "weights over the heads (`read_weights.sum(dim=1)`, which is [batch, slots]) "
                "before adding them to the decayed usage.")
    return _common_error_hint(error)


def update_usage_spec() -> FunctionSpec:
    """The spec of ``update_usage`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="update_usage",
        reference=_reference_update_usage,
        cases=_usage_cases(),
        mistakes=USAGE_MISTAKES,
        returns="a float tensor [batch, slots]",
        output_axes=("batch", "slots"),
        error_hint=_usage_error_hint,
        output_check=_float_tensor_check(
            "[batch, slots]", "Usage is a float: keep the dtype of `usage`."),
    )


# --------------------------------------------------------------------------------------------
# least_used


def _mask(usage: Tensor, order: Tensor) -> Tensor:
    return torch.zeros_like(usage).scatter(1, order, 1.0)


def _most_used(usage: Tensor, n: int) -> Tensor:
    return _mask(usage, torch.argsort(usage, dim=1, descending=True, stable=True)[:, :n])


def _most_used_last(usage: Tensor, n: int) -> Tensor:
    return _mask(usage, torch.argsort(usage, dim=1, stable=True)[:, usage.shape[1] - n:])


def _most_used_topk(usage: Tensor, n: int) -> Tensor:
    return _mask(usage, torch.topk(usage, n, dim=1).indices)


def _ties_to_highest(usage: Tensor, n: int) -> Tensor:
    # the last n of a stable descending sort: among equal usages, the highest indices
    return _mask(usage, torch.argsort(usage, dim=1, descending=True, stable=True)
                 [:, usage.shape[1] - n:])


def _ties_topk(usage: Tensor, n: int) -> Tensor:
    return _mask(usage, torch.topk(usage, n, dim=1, largest=False).indices)


def _all_ties(usage: Tensor, n: int) -> Tensor:
    threshold = torch.kthvalue(usage, n, dim=1, keepdim=True).values
    return (usage <= threshold).to(usage.dtype)


def _indices(usage: Tensor, n: int) -> Tensor:
    return torch.argsort(usage, dim=1, stable=True)[:, :n]


_MOST_USED_HINT = (
    "you marked the *most* used slots. LRUA writes new information where it destroys the least: "
    "mark the n slots with the *smallest* usage (an ascending sort, `torch.argsort(usage, "
    "dim=1, stable=True)[:, :n]`).")
_TIES_HINT = (
    "the right number of slots, but not the right ones where usages tie: take the lowest slot "
    "index first, as a stable sort does, `torch.argsort(usage, dim=1, stable=True)`. "
    "`torch.topk` does not promise any order among equal values (it may change from one device "
    "or version to another), and ties are common: at the start every slot but slot 0 has "
    "usage 0.")

LEAST_USED_MISTAKES = (
    Mistake("most_used", _MOST_USED_HINT, _most_used),
    Mistake("most_used", _MOST_USED_HINT, _most_used_last),
    Mistake("most_used", _MOST_USED_HINT, _most_used_topk),
    Mistake("only_one",
            "you marked a single slot; mark the n least-used slots (n is the number of read "
            "heads: one slot for each head's new memory), e.g. the first n of an ascending sort.",
            lambda usage, n: _reference_least_used(usage, 1)),
    Mistake("n_plus_one",
            "you marked n + 1 slots; mark exactly n (an off-by-one in a slice or a `<=`?): "
            "`order[:, :n]` keeps n entries.",
            lambda usage, n: _reference_least_used(usage, n + 1)),
    Mistake("ties_all_marked",
            "where usages tie you marked every tied slot, so more than n slots: a threshold "
            "such as `usage <= (n-th smallest usage)` (the paper's way of writing w^lu) takes "
            "them all. Mark exactly n slots, the lowest indices first among ties: "
            "`torch.argsort(usage, dim=1, stable=True)[:, :n]`.", _all_ties),
    Mistake("ties_not_lowest_index", _TIES_HINT, _ties_to_highest),
    Mistake("ties_not_lowest_index", _TIES_HINT, _ties_topk),
    Mistake("inverted",
            "your mask is the wrong way round: 1.0 at the n least-used slots and 0 everywhere "
            "else.", lambda usage, n: 1 - _reference_least_used(usage, n)),
    Mistake("returned_indices",
            "you returned the indices of the least-used slots, [batch, n]; return the mask "
            "[batch, slots] with 1.0 at those slots, e.g. "
            "`torch.zeros_like(usage).scatter(1, indices, 1.0)`.", _indices),
)


def _least_used_cases() -> tuple[Case, ...]:
    return (
        Case("the 3-slot example worked out in the notebook: 1 sequence, n = 1",
             (_t([[0.5, 0.25, 1.0]]), 1), _LEAST_USED_NAMES),
        Case("2 sequences, 5 slots, n = 2, no ties",
             (_t([[0.9, 0.1, 0.4, 1.2, 0.3], [0.2, 0.8, 0.05, 0.6, 1.0]]), 2),
             _LEAST_USED_NAMES),
        Case("ties: slots 1, 2 and 4 share the smallest usage, n = 2",
             (_t([[0.5, 0.25, 0.25, 1.0, 0.25]]), 2), _LEAST_USED_NAMES),
        Case("ties, n = 3: the model's initial usage (one-hot at slot 0) and a row with two "
             "pairs of equal usages",
             (_t([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.5, 1.5, 0.0, 0.5, 0.0, 2.0]]), 3),
             _LEAST_USED_NAMES),
        Case("ties, n = 1: three slots share the smallest usage",
             (_t([[0.75, 0.5, 0.5, 0.5]]), 1), _LEAST_USED_NAMES),
    )


def _least_used_error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "invalid combination of arguments" in text and "stable" in text:
        return ("with `stable=True`, `torch.argsort` and `torch.sort` take the axis as a "
                "keyword only: `torch.argsort(usage, dim=1, stable=True)`.")
    if "scatter" in text and ("int64" in text or "Long" in text):
        return ("the index of `scatter` must be an int64 tensor of slot indices (what "
                "`torch.argsort` returns), with the same number of axes as `usage`: "
                "`torch.zeros_like(usage).scatter(1, indices, 1.0)`.")
    if "out of bounds" in text or "out of range" in text:
        return ("an index is out of range: the indices of `argsort(usage, dim=1)` are slot "
                "numbers of each row, so use them along axis 1 (`scatter(1, ...)`) or row by "
                "row (`mask[b, indices[b]] = 1.0`), not as rows.")
    return _common_error_hint(error)


def least_used_spec() -> FunctionSpec:
    """The spec of ``least_used`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="least_used",
        reference=_reference_least_used,
        cases=_least_used_cases(),
        mistakes=LEAST_USED_MISTAKES,
        returns="a float tensor [batch, slots], 1.0 at the n least-used slots",
        output_axes=("batch", "slots"),
        error_hint=_least_used_error_hint,
        output_check=_float_tensor_check(
            "[batch, slots], 1.0 or 0.0", "The mask is used in arithmetic (the write weights "
            "mix it with floats, and the memory clears its least-used slot with `1 - w^lu`, "
            "which fails on a bool tensor): return floats, e.g. `mask.to(usage.dtype)`, or "
            "start from `torch.zeros_like(usage)`."),
    )


# --------------------------------------------------------------------------------------------
# lrua_write_weights


def _mix(gate: Tensor, first: Tensor, second: Tensor) -> Tensor:
    gate = gate.unsqueeze(2)
    return gate * first + (1 - gate) * second.unsqueeze(1)


def _swapped(gate: Tensor, reads: Tensor, least: Tensor) -> Tensor:
    gate = gate.unsqueeze(2)
    return (1 - gate) * reads + gate * least.unsqueeze(1)


def _least_used_not_unsqueezed(gate: Tensor, reads: Tensor, least: Tensor) -> Tensor:
    gate = gate.unsqueeze(2)
    return gate * reads + (1 - gate) * least  # [batch, slots] meets [batch, heads, 1]


_HEADS_AXIS_HINT = (
    "your result has no heads axis: each head writes its own key with its own gate, so the write "
    "weights are [batch, heads, slots], one row per head. Do not sum or average over the heads.")

_SQUEEZED_HINT = (
    "your result lost an axis of size 1, the heads axis with one head (and the batch axis with "
    "one sequence, if you used `squeeze()`, which removes every axis of size 1): return "
    "[batch, heads, slots] whatever the number of heads and sequences.")

WRITE_MISTAKES = (
    Mistake("gate_swapped",
            "the gate's roles are swapped: sigma(alpha) weighs the *previous read weights* "
            "(refine the memory just read) and 1 - sigma(alpha) the least-used slots (store "
            "something new): `gate * prev_read_weights + (1 - gate) * prev_least_used`.",
            _swapped),
    Mistake("sigmoid_again",
            "`gate` is already sigma(alpha), squashed into (0, 1): use it as it is, without "
            "another `torch.sigmoid`.",
            lambda g, r, lu: _mix(torch.sigmoid(g), r, lu)),
    Mistake("no_complement",
            "the least-used weights must be scaled by 1 - sigma(alpha), so that the two parts "
            "share one unit of writing: `(1 - gate) * prev_least_used`.",
            lambda g, r, lu: g.unsqueeze(2) * r + lu.unsqueeze(1)),
    Mistake("least_used_batch_axis",
            "`prev_least_used` is [batch, slots], without a heads axis. Broadcasting lines "
            "shapes up from the right, so its batch axis met the heads axis of "
            "[batch, heads, 1]: right only for one sequence. Give it the heads axis first: "
            "`prev_least_used.unsqueeze(1)`, [batch, 1, slots].",
            _least_used_not_unsqueezed),
    Mistake("dropped_heads_axis", _HEADS_AXIS_HINT,
            lambda g, r, lu: _reference_write_weights(g, r, lu).sum(dim=1)),
    Mistake("dropped_heads_axis", _HEADS_AXIS_HINT,
            lambda g, r, lu: _reference_write_weights(g, r, lu).mean(dim=1)),
    Mistake("dropped_heads_axis", _SQUEEZED_HINT,
            lambda g, r, lu: _reference_write_weights(g, r, lu).squeeze(1)),
    Mistake("dropped_heads_axis", _SQUEEZED_HINT,
            lambda g, r, lu: _reference_write_weights(g, r, lu).squeeze()),
)


def _write_cases() -> tuple[Case, ...]:
    return (
        Case("the 3-slot example worked out in the notebook: 1 sequence, 1 head",
             (_t([[0.25]]), _t([[[0.5, 0.25, 0.25]]]), _t([[0.0, 1.0, 0.0]])), _WRITE_NAMES),
        Case("1 sequence, 2 heads, 4 slots, 2 least-used slots",
             (_t([[0.75, 0.125]]), _t([[[0.1, 0.7, 0.1, 0.1], [0.4, 0.2, 0.3, 0.1]]]),
              _t([[1.0, 0.0, 0.0, 1.0]])), _WRITE_NAMES),
        Case("2 sequences, 2 heads, 5 slots, 2 least-used slots",
             (_t([[0.9, 0.2], [0.3, 0.6]]),
              _t([[[0.1, 0.6, 0.1, 0.1, 0.1], [0.0, 0.2, 0.2, 0.3, 0.3]],
                  [[0.5, 0.1, 0.2, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]]]),
              _t([[0.0, 1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0]])), _WRITE_NAMES),
        Case("2 sequences, 1 head, 6 slots, 1 least-used slot",
             (_t([[0.1], [0.8]]),
              _t([[[0.3, 0.1, 0.1, 0.2, 0.2, 0.1]], [[0.0, 0.1, 0.6, 0.1, 0.1, 0.1]]]),
              _t([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])),
             _WRITE_NAMES),
    )


def _write_error_hint(error: BaseException) -> str | None:
    if "must match the size of tensor" in str(error):
        return ("`gate` is [batch, heads] and `prev_least_used` is [batch, slots], while "
                "`prev_read_weights` is [batch, heads, slots]. Broadcasting lines shapes up from "
                "the right: give each the axis it lacks, `gate.unsqueeze(2)` ([batch, heads, 1]) "
                "and `prev_least_used.unsqueeze(1)` ([batch, 1, slots]).")
    return _common_error_hint(error)


def write_weights_spec() -> FunctionSpec:
    """The spec of ``lrua_write_weights`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="lrua_write_weights",
        reference=_reference_write_weights,
        cases=_write_cases(),
        mistakes=WRITE_MISTAKES,
        returns="a float tensor [batch, heads, slots]",
        output_axes=("batch", "heads", "slots"),
        error_hint=_write_error_hint,
        output_check=_float_tensor_check(
            "[batch, heads, slots]", "Write weights are floats: keep the dtype of the inputs."),
    )


# --------------------------------------------------------------------------------------------
# The exercise


def check_lrua(update_usage: Callable[..., Any] | None = None,
               least_used: Callable[..., Any] | None = None,
               lrua_write_weights: Callable[..., Any] | None = None, *,
               quiet: bool = False) -> CheckResult:
    """Check a student's LRUA functions (those given) and display the verdict.

    The notebook checks each function right after its cell, ``check_lrua(update_usage=...)``,
    and so on; the functions not given are not checked. Every input is float64 (``n`` and
    ``gamma`` are Python numbers) and nothing may be modified in place:

    * ``update_usage(usage, read_weights, write_weights, gamma)``: ``usage`` ``[batch, slots]``,
      the weights ``[batch, heads, slots]``; returns ``gamma * usage`` plus the read and write
      weights summed over the heads, ``[batch, slots]``;
    * ``least_used(usage, n)``: returns ``[batch, slots]``, 1.0 at the ``n`` smallest usages of
      each row (ties: the lowest slot index first), 0.0 elsewhere;
    * ``lrua_write_weights(gate, prev_read_weights, prev_least_used)``: ``gate`` ``[batch,
      heads]`` (already the sigmoid), ``prev_read_weights`` ``[batch, heads, slots]``,
      ``prev_least_used`` ``[batch, slots]``; returns ``gate * prev_read_weights + (1 - gate) *
      prev_least_used``, ``[batch, heads, slots]``.

    Each must return a float tensor that agrees with :mod:`fslearn.methods.mann` (to a relative
    tolerance of 1e-4).

    Args:
        update_usage: the student's usage update, or None.
        least_used: the student's least-used mask, or None.
        lrua_write_weights: the student's write weights, or None.
        quiet: return the result without displaying it.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`, one verdict per function given.

    Raises:
        TypeError: when no function is given.
    """
    return check_given("check_lrua", "exercise 6.1, the LRUA write weights", [
        ("update_usage", update_usage_spec, update_usage),
        ("least_used", least_used_spec, least_used),
        ("lrua_write_weights", write_weights_spec, lrua_write_weights)], quiet=quiet)
