"""Exercise 6.1, LRUA: the checker ``fslearn.exercises.check_lrua`` and its notebooks.

The checker must accept the solution notebook's functions and other right answers, say "not done
yet" for the stub, give every typical wrong answer its specific hint, and report exceptions. The
notebooks' hand-worked example must be the checker's first test case. (That the student notebook
is what ``tools/make_exercises.py`` makes of the solution, and nbval's run of both, are covered by
``tests/test_exercises.py`` and ``pytest --nbval exercises/``, which find every exercise.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import torch
from torch import Tensor

from fslearn.exercises import CheckResult, check_lrua
from fslearn.exercises.lrua import least_used_spec, update_usage_spec, write_weights_spec
from fslearn.methods.mann import least_used as ref_least_used
from fslearn.methods.mann import lrua_write_weights as ref_write
from fslearn.methods.mann import update_usage as ref_usage

ROOT = Path(__file__).resolve().parents[1]
NAME = "06_1_lrua_write_weights.ipynb"
SOLUTION = ROOT / "exercises" / "solutions" / NAME
STUDENT = ROOT / "exercises" / NAME
SPECS = {"update_usage": update_usage_spec, "least_used": least_used_spec,
         "lrua_write_weights": write_weights_spec}


def _cells(path: Path) -> dict[str, Any]:
    return {cell.id: cell for cell in nbformat.read(path, as_version=4).cells}


def solution_namespace() -> dict[str, Any]:
    """The solution notebook's namespace after its setup, example and gap cells."""
    cells = _cells(SOLUTION)
    namespace: dict[str, Any] = {}
    for cell_id in ("setup", "example", "gap-update-usage", "gap-least-used",
                    "gap-write-weights"):
        exec(compile(cells[cell_id].source, f"{NAME}:{cell_id}", "exec"), namespace)
    return namespace


def _check(name: str, function: Any) -> CheckResult:
    return check_lrua(**{name: function}, quiet=True)


# --------------------------------------------------------------------------------------------
# Right answers pass


def test_solution_notebook_functions_pass(capsys: pytest.CaptureFixture[str]) -> None:
    functions = solution_namespace()
    capsys.readouterr()
    result = check_lrua(functions["update_usage"], functions["least_used"],
                        functions["lrua_write_weights"])
    assert result.passed and result.status == "passed", result.message
    assert [verdict.name for verdict in result.verdicts] == list(SPECS)
    assert "well done" in result.message
    assert capsys.readouterr().out == result.message + "\n"  # printed outside Jupyter
    for name in SPECS:  # and one at a time, as the notebook's checker cells do
        single = _check(name, functions[name])
        assert single.passed and len(single.verdicts) == 1
        assert single.message.startswith(f"Correct: `{name}` agrees with the reference")


def test_package_functions_and_other_right_answers_pass() -> None:
    assert check_lrua(ref_usage, ref_least_used, ref_write, quiet=True).passed

    def einsum_usage(usage: Tensor, reads: Tensor, writes: Tensor, gamma: float) -> Tensor:
        return gamma * usage + torch.einsum("bhs->bs", reads + writes)

    def loop_least_used(usage: Tensor, n: int) -> Tensor:
        mask = torch.zeros_like(usage)
        for row, values in enumerate(usage.tolist()):
            for slot in sorted(range(len(values)), key=lambda i: values[i])[:n]:  # stable
                mask[row, slot] = 1.0
        return mask

    def bool_then_float(usage: Tensor, n: int) -> Tensor:
        order = torch.sort(usage, dim=1, stable=True).indices[:, :n]
        return torch.zeros_like(usage, dtype=torch.bool).scatter(1, order, True).float()

    def none_indexing(gate: Tensor, reads: Tensor, least: Tensor) -> Tensor:
        return torch.lerp(least[:, None, :].expand_as(reads), reads, gate[:, :, None])

    assert check_lrua(einsum_usage, loop_least_used, none_indexing, quiet=True).passed
    assert _check("least_used", bool_then_float).passed  # float32 from float64: fine


def test_stub_is_not_done_yet() -> None:
    def stub(*args: Any) -> Any:
        raise NotImplementedError("Write your code here")

    result = check_lrua(stub, stub, stub, quiet=True)
    assert [verdict.status for verdict in result.verdicts] == ["not_done"] * 3
    assert result.status == "not_done" and not result.passed
    for name in SPECS:
        assert f"Not done yet: fill in `{name}` above" in result.message
    half = check_lrua(ref_usage, stub, quiet=True)
    assert [verdict.status for verdict in half.verdicts] == ["passed", "not_done"]


def test_check_lrua_needs_a_function() -> None:
    with pytest.raises(TypeError, match="at least one function"):
        check_lrua()


# --------------------------------------------------------------------------------------------
# Typical wrong answers get their hints


def _usage_in_place(usage: Tensor, reads: Tensor, writes: Tensor, gamma: float) -> Tensor:
    usage *= gamma
    return usage + reads.sum(1) + writes.sum(1)


USAGE_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("gamma forgotten", lambda u, r, w, g: u + r.sum(1) + w.sum(1), ("no_decay",),
     "multiply it by gamma"),
    ("decay on the new weights too", lambda u, r, w, g: g * (u + r.sum(1) + w.sum(1)),
     ("decayed_new_weights",), "only the old usage"),
    ("decay on the new weights, written out", lambda u, r, w, g: g * u + g * (r + w).sum(1),
     ("decayed_new_weights",), "only the old usage"),
    ("reads forgotten", lambda u, r, w, g: g * u + w.sum(1), ("no_reads",),
     "the read weights are missing"),
    ("writes forgotten", lambda u, r, w, g: g * u + r.sum(1), ("no_writes",),
     "the write weights are missing"),
    ("heads averaged", lambda u, r, w, g: g * u + r.mean(1) + w.mean(1), ("heads_averaged",),
     "averaged the weights over the heads"),
    ("heads not summed", lambda u, r, w, g: g * u.unsqueeze(1) + r + w, ("heads_not_summed",),
     "still has a heads axis"),
    ("heads not summed, usage not unsqueezed", lambda u, r, w, g: g * u + r + w,
     ("heads_not_summed",), "still has a heads axis"),
    ("no gamma and heads averaged", lambda u, r, w, g: u + (r + w).mean(1),
     ("no_decay", "heads_averaged"), "several ways"),
    ("only the decayed writes", lambda u, r, w, g: g * (u + w.sum(1)),
     ("decayed_new_weights", "no_reads"), "several ways"),
    ("no return", lambda u, r, w, g: None, ("returned_none",), "`return`"),
    ("in place", _usage_in_place, ("modified_input",), "in place"),
    ("a list", lambda u, r, w, g: ref_usage(u, r, w, g).tolist(), ("not_a_tensor",),
     "return a torch tensor"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"), [c[1:] for c in USAGE_MISTAKES],
                         ids=[c[0] for c in USAGE_MISTAKES])
def test_update_usage_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                               fragment: str) -> None:
    verdict = _check("update_usage", function).verdicts[0]
    assert verdict.status == "wrong"
    assert verdict.mistakes == keys, verdict.message
    assert fragment in verdict.message and "Hint:" in verdict.message


def _argsort_mask(usage: Tensor, order: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    return torch.zeros_like(usage, dtype=dtype).scatter(1, order, 1)


def _least_used_in_place(usage: Tensor, n: int) -> Tensor:
    order = torch.argsort(usage, dim=1, stable=True)[:, :n]
    return usage.zero_().scatter_(1, order, 1.0)


LEAST_USED_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("largest first", lambda u, n: _argsort_mask(u, torch.argsort(u, 1, descending=True)[:, :n]),
     ("most_used",), "*most* used"),
    ("topk, largest", lambda u, n: _argsort_mask(u, torch.topk(u, n).indices), ("most_used",),
     "*smallest*"),
    ("the last n of an ascending sort",
     lambda u, n: _argsort_mask(u, torch.argsort(u, 1)[:, -n:]), ("most_used",), "*most* used"),
    ("one slot only (argmin)",
     lambda u, n: torch.nn.functional.one_hot(u.argmin(1), u.shape[1]).to(u.dtype),
     ("only_one",), "a single slot"),
    ("n + 1 slots",
     lambda u, n: _argsort_mask(u, torch.argsort(u, dim=1, stable=True)[:, :n + 1]),
     ("n_plus_one",), "exactly n"),
    ("threshold at the n-th smallest (the paper's formula)",
     lambda u, n: (u <= u.sort(1).values[:, n - 1:n]).to(u.dtype), ("ties_all_marked",),
     "every tied slot"),
    ("ties to the highest index",
     lambda u, n: _argsort_mask(u, u.shape[1] - 1 - torch.argsort(u.flip(1), dim=1,
                                                                  stable=True)[:, :n]),
     ("ties_not_lowest_index",), "stable=True"),
    ("inverted mask", lambda u, n: 1 - ref_least_used(u, n), ("inverted",), "wrong way round"),
    ("indices", lambda u, n: torch.argsort(u, dim=1, stable=True)[:, :n], ("returned_indices",),
     "returned the indices"),
    ("bool mask", lambda u, n: _argsort_mask(u, torch.argsort(u, dim=1, stable=True)[:, :n],
                                             torch.bool), ("not_float",), "tensor is bool"),
    ("int64 mask", lambda u, n: ref_least_used(u, n).long(), ("not_float",), "tensor is int64"),
    ("numpy array", lambda u, n: ref_least_used(u, n).numpy(), ("not_a_tensor",),
     "`ndarray`"),
    ("in place", _least_used_in_place, ("modified_input",), "`usage` in place"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"),
                         [c[1:] for c in LEAST_USED_MISTAKES],
                         ids=[c[0] for c in LEAST_USED_MISTAKES])
def test_least_used_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                             fragment: str) -> None:
    verdict = _check("least_used", function).verdicts[0]
    assert verdict.status == "wrong"
    assert verdict.mistakes == keys, verdict.message
    assert fragment in verdict.message and "Hint:" in verdict.message


def test_least_used_by_topk_is_caught_where_its_ties_differ() -> None:
    def topk_least_used(usage: Tensor, n: int) -> Tensor:
        return _argsort_mask(usage, torch.topk(usage, n, largest=False).indices)

    # torch.topk promises no order among ties: what it does depends on the build and device
    if all(torch.equal(topk_least_used(*case.args), ref_least_used(*case.args))
           for case in least_used_spec().cases):
        pytest.skip("torch.topk breaks these ties by the lowest index here")
    verdict = _check("least_used", topk_least_used).verdicts[0]
    assert verdict.status == "wrong" and verdict.mistakes == ("ties_not_lowest_index",)
    assert "`torch.topk` does not promise any order" in verdict.message


def test_a_wrong_dtype_is_only_reported_once_the_values_are_right() -> None:
    def most_used_bool(usage: Tensor, n: int) -> Tensor:
        return _argsort_mask(usage, torch.argsort(usage, 1, descending=True)[:, :n], torch.bool)

    verdict = _check("least_used", most_used_bool).verdicts[0]
    assert verdict.mistakes == ("most_used",), verdict.message
    assert "expected: [[0, 1, 0]]\n  got:      [[0, 0, 1]]" in verdict.message


def _write_in_place(gate: Tensor, reads: Tensor, least: Tensor) -> Tensor:
    gate = gate.unsqueeze(2)
    return reads.mul_(gate) + (1 - gate) * least.unsqueeze(1)


WRITE_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("gate roles swapped", lambda g, r, lu: (1 - g[..., None]) * r + g[..., None] * lu[:, None],
     ("gate_swapped",), "roles are swapped"),
    ("sigmoid again", lambda g, r, lu: ref_write(torch.sigmoid(g), r, lu), ("sigmoid_again",),
     "already sigma(alpha)"),
    ("1 - gate forgotten", lambda g, r, lu: g[..., None] * r + lu[:, None], ("no_complement",),
     "1 - sigma(alpha)"),
    ("least used without a heads axis", lambda g, r, lu: g[..., None] * r + (1 - g[..., None]) * lu,
     ("least_used_batch_axis",), "`prev_least_used.unsqueeze(1)`"),
    ("summed over the heads", lambda g, r, lu: ref_write(g, r, lu).sum(1), ("dropped_heads_axis",),
     "one row per head"),
    ("averaged over the heads", lambda g, r, lu: ref_write(g, r, lu).mean(1),
     ("dropped_heads_axis",), "one row per head"),
    ("squeezed", lambda g, r, lu: ref_write(g, r, lu).squeeze(), ("dropped_heads_axis",),
     "`squeeze()`"),
    ("in place", _write_in_place, ("modified_input",), "`prev_read_weights` in place"),
    ("numpy array", lambda g, r, lu: ref_write(g, r, lu).numpy(), ("not_a_tensor",),
     "return a torch tensor"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"), [c[1:] for c in WRITE_MISTAKES],
                         ids=[c[0] for c in WRITE_MISTAKES])
def test_write_weights_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                                fragment: str) -> None:
    verdict = _check("lrua_write_weights", function).verdicts[0]
    assert verdict.status == "wrong"
    assert verdict.mistakes == keys, verdict.message
    assert fragment in verdict.message and "Hint:" in verdict.message


def test_a_result_without_the_heads_axis_shows_the_shapes() -> None:
    verdict = _check("lrua_write_weights", lambda g, r, lu: ref_write(g, r, lu).sum(1)).verdicts[0]
    assert "gives the wrong shape on test case 1 of 4" in verdict.message
    assert "expected: shape [1, 1, 3] (batch, heads, slots)" in verdict.message
    assert "got:      shape [1, 3]" in verdict.message


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
def test_every_mistake_is_recognised_as_itself(spec: Callable[[], Any]) -> None:
    """Each variant differs from the reference, and a student who writes it gets its keys."""
    built = spec()
    for mistake in built.mistakes:
        verdict = _check(built.name, mistake.variant).verdicts[0]
        assert verdict.status == "wrong", mistake.key
        assert verdict.mistakes == tuple(mistake.key.split("+")), (mistake.key, verdict.message)


# --------------------------------------------------------------------------------------------
# Exceptions and messages


def test_exceptions_are_reported_with_the_students_line() -> None:
    def broken(usage: Tensor, reads: Tensor, writes: Tensor, gamma: float) -> Tensor:
        raise ValueError("something odd")

    verdict = _check("update_usage", broken).verdicts[0]
    assert verdict.status == "error" and not verdict.passed
    assert verdict.message.startswith("Error: `update_usage` raised ValueError on test case 1 "
                                      "of 4 (the 3-slot example worked out in the notebook")
    assert "something odd" in verdict.message
    assert 'raise ValueError("something odd")' in verdict.message  # the student's line
    assert "usage: float64 tensor of shape [1, 3]; read_weights: float64 tensor of shape " \
           "[1, 1, 3]" in verdict.message
    assert "Hint:" in verdict.message


def test_broadcasting_errors_get_hints_that_name_the_axes() -> None:
    usage = _check("update_usage", lambda u, r, w, g: g * u + r.sum(2) + w.sum(2)).verdicts[0]
    assert usage.status == "error" and "raised RuntimeError on test case 2 of 4" in usage.message
    assert "`read_weights.sum(dim=1)`" in usage.message

    write = _check("lrua_write_weights", lambda g, r, lu: g * r + (1 - g) * lu).verdicts[0]
    assert write.status == "error" and "must match the size" in write.message
    assert "gate: float64 tensor of shape [1, 2]; prev_read_weights: float64 tensor of shape " \
           "[1, 2, 4]" in write.message
    assert "`gate.unsqueeze(2)`" in write.message
    assert "`prev_least_used.unsqueeze(1)`" in write.message


def test_least_used_indexing_errors_get_hints() -> None:
    def rows_indexed(usage: Tensor, n: int) -> Tensor:
        mask = torch.zeros_like(usage)
        mask[torch.argsort(usage, dim=1, stable=True)[:, :n]] = 1.0
        return mask

    def float_index(usage: Tensor, n: int) -> Tensor:
        order = torch.argsort(usage, dim=1, stable=True)[:, :n].double()
        return torch.zeros_like(usage).scatter(1, order, 1.0)

    def python_if(usage: Tensor, n: int) -> Tensor:
        if usage < 1:  # a tensor of several values
            return torch.zeros_like(usage)
        return torch.ones_like(usage)

    rows = _check("least_used", rows_indexed).verdicts[0]
    assert rows.status == "error" and "IndexError" in rows.message
    assert "`mask[b, indices[b]] = 1.0`" in rows.message
    floats = _check("least_used", float_index).verdicts[0]
    assert floats.status == "error" and "an int64 tensor of slot indices" in floats.message
    ambiguous = _check("least_used", python_if).verdicts[0]
    assert ambiguous.status == "error" and "element-wise" in ambiguous.message

    def positional_dim(usage: Tensor, n: int) -> Tensor:
        order = torch.argsort(usage, 1, stable=True)[:, :n]  # type: ignore[call-overload]
        return torch.zeros_like(usage).scatter(1, order, 1.0)

    keyword = _check("least_used", positional_dim).verdicts[0]
    assert keyword.status == "error" and "TypeError" in keyword.message
    assert "`torch.argsort(usage, dim=1, stable=True)`" in keyword.message


def test_right_shape_wrong_values_is_rejected() -> None:
    verdict = _check("update_usage", lambda u, r, w, g: u + r.mean(1) + w.sum(1)).verdicts[0]
    assert verdict.status == "wrong" and verdict.mistakes == ()
    assert "shape is right but not the values" in verdict.message
    assert "expected: [[0.5, 1.688, 0.6875]]" in verdict.message


def test_messages_are_deterministic() -> None:
    def wrong(g: Tensor, r: Tensor, lu: Tensor) -> Tensor:
        return ref_write(1 - g, r, lu)

    first = _check("lrua_write_weights", wrong).message
    assert first == _check("lrua_write_weights", wrong).message
    assert "0x" not in first


def test_use_hands_back_the_reference_until_the_function_passes(
        capsys: pytest.CaptureFixture[str]) -> None:
    def least_used(usage: Tensor, n: int) -> Tensor:
        return 1 - ref_least_used(usage, n)

    result = check_lrua(least_used=least_used, quiet=True)
    assert result.use(least_used) is ref_least_used
    assert "`least_used` has not passed the check yet" in capsys.readouterr().out
    mine = np.asarray  # not one of the exercise's functions
    with pytest.raises(ValueError, match=r"not one of the functions of 'exercise 6\.1, the LRUA"):
        result.use(mine)


# --------------------------------------------------------------------------------------------
# The notebooks


def test_the_worked_example_is_the_first_test_case() -> None:
    namespace = solution_namespace()
    usage, read_before = namespace["usage_before"], namespace["read_before"]
    gate, read_now = namespace["gate"], namespace["read_now"]
    first = {name: spec().cases[0] for name, spec in SPECS.items()}
    assert "worked out in the notebook" in first["least_used"].description
    torch.testing.assert_close(first["least_used"].args[0], usage)
    assert first["least_used"].args[1] == 1
    least = ref_least_used(usage, 1)
    torch.testing.assert_close(first["lrua_write_weights"].args,
                               (gate, read_before, least))
    writes = ref_write(gate, read_before, least)
    torch.testing.assert_close(first["update_usage"].args, (usage, read_now, writes, 0.5))
    # the numbers of the notebook's text
    text = _cells(SOLUTION)["example-md"].source
    assert least.tolist() == [[0.0, 1.0, 0.0]] and "[0, 1, 0]" in text
    assert writes.tolist() == [[[0.125, 0.8125, 0.0625]]] and "[0.125, 0.8125, 0.0625]" in text
    assert ref_usage(usage, read_now, writes, 0.5).tolist() == [[0.5, 1.6875, 0.6875]]
    assert "[0.5, 1.6875, 0.6875]" in text
    refine = ref_write(torch.tensor([[0.75]], dtype=torch.float64), read_before, least)
    assert refine.tolist() == [[[0.375, 0.4375, 0.1875]]] and "[0.375, 0.4375, 0.1875]" in text


def _text_outputs(cell: Any) -> str:
    return "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "")
                   for output in cell.get("outputs", []))


def test_stored_outputs_of_both_notebooks() -> None:
    solution, student = _cells(SOLUTION), _cells(STUDENT)
    checks = {"check-update-usage": "update_usage", "check-least-used": "least_used",
              "check-write-weights": "lrua_write_weights"}
    for cell_id, name in checks.items():
        assert _text_outputs(solution[cell_id]).startswith(f"Correct: `{name}`")
        assert _text_outputs(student[cell_id]).startswith(f"Not done yet: fill in `{name}`")
    # the last cell runs on the package's functions in the student notebook, and says so
    steps = _text_outputs(student["steps"])
    assert steps.count("has not passed the check yet") == 3
    assert steps.split("\n", 3)[3] == _text_outputs(solution["steps"])
    assert "G A E F" in steps and "without the recall and refinement of A: D E F G" in steps
    assert "solution-banner" in solution and "solution-banner" not in student
