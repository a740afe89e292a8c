"""Exercise 5.2, R2-D2's ridge-regression head: the checker ``fslearn.exercises.check_ridge_head``
and its notebooks.

The checker must accept the solution notebook's functions and other right answers (the primal
form too), say "not done yet" for the stub, give every typical wrong answer its specific hint
(its own wrong variants and wrong answers written as a student would write them), and report
exceptions with a hint that names the mistake (an identity of the wrong size, ``.T`` on a
batch). The notebooks' hand-worked examples must be the checker's first test cases. (That the
student notebook is what ``tools/make_exercises.py`` makes of the solution, and nbval's run of
both, are covered by ``tests/test_exercises.py`` and ``pytest --nbval exercises/``.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.exercises import CheckResult, check_ridge_head
from fslearn.exercises.ridge_head import (
    LOGIT_MISTAKES,
    WOODBURY_MISTAKES,
    ridge_logits_spec,
    ridge_woodbury_spec,
)
from fslearn.methods.r2d2 import ridge_head_logits, ridge_regression

ROOT = Path(__file__).resolve().parents[1]
NAME = "05_2_ridge_head.ipynb"
SOLUTION = ROOT / "exercises" / "solutions" / NAME
STUDENT = ROOT / "exercises" / NAME


def _cells(path: Path) -> dict[str, Any]:
    return {cell.id: cell for cell in nbformat.read(path, as_version=4).cells}


def solution_namespace() -> dict[str, Any]:
    """The solution notebook's namespace after its setup, example and gap cells."""
    cells = _cells(SOLUTION)
    namespace: dict[str, Any] = {}
    for cell_id in ("setup", "example", "gap-woodbury", "gap-logits"):
        exec(compile(cells[cell_id].source, f"{NAME}:{cell_id}", "exec"), namespace)
    return namespace


def _woodbury(function: Callable[..., Any]) -> CheckResult:
    return check_ridge_head(ridge_woodbury=function, quiet=True)


def _logits(function: Callable[..., Any]) -> CheckResult:
    return check_ridge_head(ridge_logits=function, quiet=True)


def _ones(z: Tensor) -> Tensor:
    return torch.cat([z, torch.ones(*z.shape[:-1], 1, dtype=z.dtype)], dim=-1)


# --------------------------------------------------------------------------------------------
# Right answers pass


def test_solution_notebook_functions_pass(capsys: pytest.CaptureFixture[str]) -> None:
    functions = solution_namespace()
    capsys.readouterr()
    result = check_ridge_head(functions["ridge_woodbury"], functions["ridge_logits"])
    assert result.passed and result.status == "passed", result.message
    assert [verdict.name for verdict in result.verdicts] == ["ridge_woodbury", "ridge_logits"]
    assert "well done" in result.message
    assert result.message.endswith("[exercise 5.2, R2-D2's ridge-regression head]")
    assert capsys.readouterr().out == result.message + "\n"  # printed outside Jupyter
    single = _logits(functions["ridge_logits"])
    assert single.passed and len(single.verdicts) == 1


def test_package_functions_and_other_right_answers_pass() -> None:
    assert check_ridge_head(lambda x, y, lam: ridge_regression(x, y, lam, "woodbury"),
                            ridge_head_logits, quiet=True).passed

    def primal(x: Tensor, y: Tensor, lam: float) -> Tensor:  # the same weights
        eye = torch.eye(x.shape[-1], dtype=x.dtype)
        return torch.linalg.solve(x.mT @ x + lam * eye, x.mT @ y)

    def with_inverse(x: Tensor, y: Tensor, lam: float) -> Tensor:
        return x.mT @ torch.linalg.inv(x @ x.mT + lam * torch.eye(x.shape[-2])) @ y

    def augmented_least_squares(x: Tensor, y: Tensor, lam: float) -> Tensor:
        tasks, _, p = x.shape
        stacked = torch.cat([x, lam**0.5 * torch.eye(p, dtype=x.dtype).expand(tasks, p, p)], 1)
        zeros = torch.zeros(tasks, p, y.shape[-1], dtype=y.dtype)
        return torch.linalg.lstsq(stacked, torch.cat([y, zeros], 1)).solution

    def authors_scaling(support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int,
                        lam: float, scale: float, bias: float) -> Tensor:
        root_n = support_z.shape[1] ** 0.5  # their code: x and y divided by sqrt(n)
        x = _ones(support_z) / root_n
        y = F.one_hot(support_y, n_way).double() / root_n
        weights = x.mT @ torch.linalg.solve(x @ x.mT + lam * torch.eye(x.shape[1]), y)
        return scale * (_ones(query_z) @ weights) + bias

    for right in (primal, with_inverse, augmented_least_squares):
        assert _woodbury(right).passed, right.__name__
    assert _logits(authors_scaling).passed


def test_the_notebooks_examples_are_the_first_cases() -> None:
    woodbury_case = ridge_woodbury_spec().cases[0]
    x, y, lam = woodbury_case.args
    assert torch.equal(x, torch.tensor([[[1.0, 1.0], [-1.0, 1.0]]], dtype=torch.float64))
    assert torch.equal(y[0], torch.eye(2, dtype=torch.float64)) and lam == 1.0
    assert torch.allclose(ridge_regression(x, y, lam), x.mT / 3)
    logits_case = ridge_logits_spec().cases[0]
    assert torch.allclose(ridge_head_logits(*logits_case.args),
                          torch.tensor([[[3.5, -0.5]]], dtype=torch.float64))
    sources = {cell_id: cell.source for cell_id, cell in _cells(SOLUTION).items()}
    assert "x = torch.tensor([[[1.0, 1.0], [-1.0, 1.0]]]" in sources["example"]
    assert "the logits $[3.5, -0.5]$: the checker's first case" in sources["task2"]


# --------------------------------------------------------------------------------------------
# Typical mistakes get their hint


@pytest.mark.parametrize("mistake", WOODBURY_MISTAKES, ids=lambda m: m.key)
def test_each_woodbury_variant_is_named(mistake) -> None:
    result = _woodbury(mistake.variant)
    assert result.status == "wrong" and result.mistakes == (mistake.key,)
    assert mistake.hint in result.message


@pytest.mark.parametrize("mistake", LOGIT_MISTAKES, ids=lambda m: m.key)
def test_each_logits_variant_is_named(mistake) -> None:
    result = _logits(mistake.variant)
    assert result.status == "wrong" and result.mistakes == (mistake.key,)
    assert mistake.hint in result.message


def _student_no_lambda(x: Tensor, y: Tensor, lam: float) -> Tensor:
    return x.transpose(1, 2) @ torch.inverse(x @ x.transpose(1, 2)) @ y


def _student_lambda_everywhere(x: Tensor, y: Tensor, lam: float) -> Tensor:
    return x.mT @ torch.linalg.solve(x @ x.mT + lam, y)


def _student_lambda_after(x: Tensor, y: Tensor, lam: float) -> Tensor:
    n = x.shape[1]
    return x.mT @ (torch.inverse(x @ x.mT) + lam * torch.eye(n)) @ y


def _student_returns_rows(x: Tensor, y: Tensor, lam: float) -> Tensor:
    return torch.linalg.solve(x @ x.mT + lam * torch.eye(x.shape[1]), y)


def _student_transposed(x: Tensor, y: Tensor, lam: float) -> Tensor:
    return (x.mT @ torch.linalg.solve(x @ x.mT + lam * torch.eye(x.shape[1]), y)).mT


@pytest.mark.parametrize(("function", "key"), [
    (_student_no_lambda, "no_regulariser"),
    (_student_lambda_everywhere, "regulariser_every_entry"),
    (_student_lambda_after, "regulariser_outside_inverse"),
    (_student_returns_rows, "missing_x_transpose"),
    (_student_transposed, "transposed_output"),
])
def test_woodbury_mistakes_as_a_student_writes_them(function, key) -> None:
    result = _woodbury(function)
    assert result.mistakes == (key,), result.message


def _head(support_z: Tensor, targets: Tensor, query_z: Tensor, lam: float) -> Tensor:
    x = _ones(support_z)
    weights = x.mT @ torch.linalg.solve(x @ x.mT + lam * torch.eye(x.shape[1]), targets)
    return _ones(query_z) @ weights


def _student_lambda_not_times_n(sz, sy, qz, n_way, lam, scale, bias):
    return scale * _head(sz, F.one_hot(sy, n_way).double(), qz, lam) + bias


def _student_integer_labels(sz, sy, qz, n_way, lam, scale, bias):
    return scale * _head(sz, sy.double()[..., None], qz, lam * sz.shape[1]) + bias


def _student_sorted_labels(sz, sy, qz, n_way, lam, scale, bias):
    shots = sz.shape[1] // n_way
    labels = torch.arange(n_way).repeat_interleave(shots).expand(sz.shape[0], -1)
    return scale * _head(sz, F.one_hot(labels, n_way).double(), qz, lam * sz.shape[1]) + bias


def _student_no_calibration(sz, sy, qz, n_way, lam, scale, bias):
    return _head(sz, F.one_hot(sy, n_way).double(), qz, lam * sz.shape[1])


def _student_swapped(sz, sy, qz, n_way, lam, scale, bias):
    return bias * _head(sz, F.one_hot(sy, n_way).double(), qz, lam * sz.shape[1]) + scale


def _student_no_bias_column(sz, sy, qz, n_way, lam, scale, bias):
    targets = F.one_hot(sy, n_way).double()
    weights = sz.mT @ torch.linalg.solve(sz @ sz.mT + lam * sz.shape[1] * torch.eye(sz.shape[1]),
                                         targets)
    return scale * (qz @ weights) + bias


@pytest.mark.parametrize(("function", "key"), [
    (_student_lambda_not_times_n, "regulariser_not_times_n"),
    (_student_integer_labels, "labels_not_one_hot"),
    (_student_sorted_labels, "sorted_labels"),
    (_student_no_calibration, "no_scale_bias"),
    (_student_swapped, "scale_bias_swapped"),
    (_student_no_bias_column, "no_bias_column"),
])
def test_logits_mistakes_as_a_student_writes_them(function, key) -> None:
    result = _logits(function)
    assert result.mistakes == (key,), result.message


# --------------------------------------------------------------------------------------------
# Errors, stubs, and what the checker refuses


def test_an_identity_of_the_wrong_size_is_an_error_whose_hint_names_it() -> None:
    def wrong_identity(x: Tensor, y: Tensor, lam: float) -> Tensor:
        return x.mT @ torch.linalg.solve(x @ x.mT + lam * torch.eye(x.shape[-1]), y)

    def wrong_gram(x: Tensor, y: Tensor, lam: float) -> Tensor:  # the primal matrix in the
        # Woodbury form: the regulariser on the wrong side
        return x.mT @ torch.linalg.solve(x.mT @ x + lam * torch.eye(x.shape[-1]), y)

    for function in (wrong_identity, wrong_gram):
        verdict = _woodbury(function).verdicts[0]
        assert verdict.status == "error", verdict.message
        assert "x x^T + lambda I_n: n x n" in verdict.message
        assert "belongs to the primal form" in verdict.message
        assert verdict.message.endswith("`.T` reverses every axis of a 3-D tensor.")


def test_dot_t_on_a_batch_is_an_error_with_a_hint() -> None:
    def dot_t(x: Tensor, y: Tensor, lam: float) -> Tensor:
        return x.T @ torch.linalg.solve(x @ x.T + lam * torch.eye(x.shape[-2]), y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's deprecation of .T on 3-D
        verdict = _woodbury(dot_t).verdicts[0]
    assert verdict.status == "error" and "`.transpose(-2, -1)` (or `.mT`)" in verdict.message


def test_stubs_exceptions_and_no_function() -> None:
    def stub(*args: Any) -> Tensor:
        raise NotImplementedError("Write your code here")

    result = check_ridge_head(stub, stub, quiet=True)
    assert [v.status for v in result.verdicts] == ["not_done", "not_done"]
    assert result.message.endswith("[exercise 5.2, R2-D2's ridge-regression head]")

    def float_labels(sz, sy, qz, n_way, lam, scale, bias):
        return F.one_hot(sy.double(), n_way)

    verdict = _logits(float_labels).verdicts[0]
    assert verdict.status == "error" and "`F.one_hot` needs integer (int64) labels" in (
        verdict.message)
    with pytest.raises(TypeError, match=r"check_ridge_head needs at least one function"):
        check_ridge_head()


def test_the_student_notebook_is_the_stub() -> None:
    sources = {cell_id: cell.source for cell_id, cell in _cells(STUDENT).items()}
    assert "banner" not in sources
    for gap in ("gap-woodbury", "gap-logits"):
        assert 'raise NotImplementedError("Write your code here")' in sources[gap]
        assert "BEGIN SOLUTION" not in sources[gap]
