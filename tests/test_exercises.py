"""The exercises: the checkers of ``fslearn.exercises`` and the notebooks of ``exercises/``.

The checkers must accept the solutions, give each typical wrong answer its specific hint, turn
exceptions into verdicts, and reject wrong values of the right shape. The student notebooks must
be what ``tools/make_exercises.py`` makes of the solution notebooks. (Running the notebooks is
nbval's job: ``pytest --nbval exercises/``, see ``exercises/README.md``.)
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import load_tool
from torch import Tensor

from fslearn.evaluation import confidence_interval95 as reference_ci
from fslearn.exercises import (
    CheckResult,
    check_confidence_interval,
    check_maml_inner_step,
    check_prototypes,
)
from fslearn.exercises.maml import _package_step as package_inner_step
from fslearn.exercises.maml import first_order_meta_gradient_spec
from fslearn.methods.protonet import prototypes as reference_prototypes
from fslearn.methods.protonet import squared_euclidean_distance as reference_distances

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "exercises" / "solutions"
TOOL = ROOT / "tools" / "make_exercises.py"


make_exercises = load_tool("make_exercises")


def solution_functions(name: str) -> dict[str, Any]:
    """The namespace of a solution notebook after its setup cells and its gap cells."""
    notebook = nbformat.read(SOLUTIONS / name, as_version=4)
    namespace: dict[str, Any] = {}
    seen_gap = False
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        is_gap = "solution" in cell.metadata.get("tags", [])
        if is_gap or not seen_gap:
            exec(compile(cell.source, f"{name}:{cell.id}", "exec"), namespace)
        seen_gap = seen_gap or is_gap
    return namespace


# --------------------------------------------------------------------------------------------
# The solutions pass


def test_solution_of_exercise_1_passes(capsys: pytest.CaptureFixture[str]) -> None:
    functions = solution_functions("01_1_confidence_interval.ipynb")
    capsys.readouterr()
    result = check_confidence_interval(functions["confidence_interval95"])
    assert result.passed and result.status == "passed"
    assert capsys.readouterr().out == result.message + "\n"  # printed outside Jupyter
    assert result.message.startswith("Correct:")


def test_solution_of_exercise_2_passes() -> None:
    functions = solution_functions("02_1_prototypes.ipynb")
    result = check_prototypes(functions["prototypes"], functions["squared_distances"],
                              quiet=True)
    assert result.passed, result.message
    assert "well done" in result.message


def test_the_package_functions_pass() -> None:
    assert check_confidence_interval(reference_ci, quiet=True).passed
    assert check_prototypes(reference_prototypes, reference_distances, quiet=True).passed


def test_other_right_answers_pass() -> None:
    def numpy_ci(accuracies: Tensor) -> float:
        x = accuracies.numpy()
        return 1.96 * np.std(x, ddof=1) / np.sqrt(len(x))  # a numpy float is fine

    def loop_prototypes(support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
        return torch.stack([torch.stack([z[y == n].mean(0) for n in range(n_way)])
                            for z, y in zip(support_z, support_y, strict=True)])

    def cdist_squared(query_z: Tensor, centres: Tensor) -> Tensor:
        return torch.cdist(query_z, centres) ** 2

    assert check_confidence_interval(numpy_ci, quiet=True).passed
    assert check_confidence_interval(lambda a: torch.tensor([reference_ci(a)]),
                                     quiet=True).passed  # a one-element tensor is one number
    assert check_prototypes(loop_prototypes, cdist_squared, quiet=True).passed


# --------------------------------------------------------------------------------------------
# Typical wrong answers get their hints


def _ci(spread: Callable[[Tensor], Tensor], z: float = 1.96) -> Callable[[Tensor], float]:
    return lambda a: float(z * spread(a) / math.sqrt(a.numel()))


def _in_place(accuracies: Tensor) -> float:
    accuracies -= accuracies.mean()
    return float(1.96 * accuracies.norm() / math.sqrt(accuracies.numel() - 1)
                 / math.sqrt(accuracies.numel()))


CI_MISTAKES: list[tuple[str, Callable[[Tensor], Any], tuple[str, ...], str]] = [
    ("numpy default ddof", lambda a: 1.96 * np.std(a.numpy()) / math.sqrt(a.numel()),
     ("population_std",), "ddof=1"),
    ("torch correction=0", _ci(lambda a: a.std(correction=0)), ("population_std",), "E - 1"),
    ("forgot sqrt(E)", lambda a: float(1.96 * a.std()), ("std_not_sem",), "s / sqrt(E)"),
    ("divided by E", lambda a: float(1.96 * a.std() / a.numel()), ("divided_by_e",), "sqrt(E)"),
    ("90% factor", _ci(torch.std, 1.645), ("z_1.645",), "90%"),
    ("99% factor", _ci(torch.std, 2.576), ("z_2.576",), "99%"),
    ("factor 2", _ci(torch.std, 2.0), ("z_2",), "1.96"),
    ("no factor", _ci(torch.std, 1.0), ("no_z",), "multiply it by 1.96"),
    ("variance", _ci(torch.var), ("variance",), "square root"),
    ("percentage", lambda a: 100 * reference_ci(a), ("percentage",), "percent"),
    ("interval", lambda a: (float(a.mean()) - reference_ci(a), float(a.mean()) + reference_ci(a)),
     ("interval",), "half-width"),
    ("mean and half-width", lambda a: torch.stack([a.mean(), torch.tensor(reference_ci(a))]),
     ("mean_and_half_width",), "half-width"),
    ("two mistakes", lambda a: 100 * 1.645 * np.std(a.numpy()) / math.sqrt(a.numel()),
     ("population_std", "z_1.645", "percentage"), "several ways"),
    ("no return", lambda a: None, ("returned_none",), "`return`"),
    ("in place", _in_place, ("modified_input",), "in place"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"),
                         [case[1:] for case in CI_MISTAKES], ids=[c[0] for c in CI_MISTAKES])
def test_confidence_interval_mistakes(function: Callable[[Tensor], Any], keys: tuple[str, ...],
                                      fragment: str) -> None:
    result = check_confidence_interval(function, quiet=True)
    assert not result.passed and result.status == "wrong"
    assert result.mistakes == keys, result.message
    assert fragment in result.message
    assert "Hint:" in result.message


def _class_major(z: Tensor, y: Tensor, n: int) -> Tensor:
    return z.reshape(z.shape[0], n, -1, z.shape[-1]).mean(2)


def _one_hot(z: Tensor, y: Tensor, n: int) -> Tensor:
    return F.one_hot(y, n).to(z.dtype)


PROTOTYPE_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("assumes class-major order", _class_major, ("sorted_labels",), "any order"),
    ("assumes interleaved order",
     lambda z, y, n: z.reshape(z.shape[0], -1, n, z.shape[-1]).mean(1), ("sorted_labels",),
     "any order"),
    ("sum", lambda z, y, n: _one_hot(z, y, n).transpose(1, 2) @ z, ("sum_not_mean",),
     "divide"),
    ("divided by N*K", lambda z, y, n: _one_hot(z, y, n).transpose(1, 2) @ z / z.shape[1],
     ("wrong_count",), "(K)"),
    ("mean over the wrong axis",
     lambda z, y, n: z.reshape(z.shape[0], n, -1, z.shape[-1]).mean(1), ("wrong_axis",),
     "wrong axis"),
    ("ignores labels", lambda z, y, n: z.mean(1), ("ignored_labels",), "its label"),
    ("mean over D", lambda z, y, n: z.mean(-1), ("mean_over_embedding",), "embedding"),
    ("first task's labels",
     lambda z, y, n: reference_prototypes(z, y[:1].expand_as(y), n),
     ("same_labels_every_task",), "`support_y[t]`"),
    ("transposed", lambda z, y, n: reference_prototypes(z, y, n).transpose(1, 2),
     ("transposed_output",), "[tasks, n_way, D]"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"),
                         [case[1:] for case in PROTOTYPE_MISTAKES],
                         ids=[c[0] for c in PROTOTYPE_MISTAKES])
def test_prototype_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                            fragment: str) -> None:
    result = check_prototypes(function, reference_distances, quiet=True)
    prototypes_verdict, distances_verdict = result.verdicts
    assert prototypes_verdict.status == "wrong" and distances_verdict.passed
    assert prototypes_verdict.mistakes == keys, prototypes_verdict.message
    assert fragment in prototypes_verdict.message


def test_class_major_answer_fails_on_shuffled_labels() -> None:
    verdict = check_prototypes(_class_major, reference_distances, quiet=True).verdicts[0]
    # it is right on test case 1 (class-major) and shown failing on case 2 (shuffled)
    assert "test case 2 of 5" in verdict.message and "shuffled" in verdict.message


def _differences(q: Tensor, c: Tensor) -> Tensor:
    return q.unsqueeze(2) - c.unsqueeze(1)


DISTANCE_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("plain Euclidean (cdist)", torch.cdist, ("not_squared",), "square root"),
    ("negative", lambda q, c: -reference_distances(q, c), ("negative",), "sign"),
    ("swapped unsqueeze", lambda q, c: (q.unsqueeze(1) - c.unsqueeze(2)).pow(2).sum(-1),
     ("transposed_output",), "[tasks, n_query, n_way]"),
    ("sum over the wrong axis", lambda q, c: _differences(q, c).pow(2).sum(1),
     ("summed_wrong_axis",), "last axis"),
    ("mean over D", lambda q, c: _differences(q, c).pow(2).mean(-1), ("mean_not_sum",), "sum"),
    ("no square", lambda q, c: _differences(q, c).sum(-1), ("missing_square",), "square"),
    ("L1", lambda q, c: _differences(q, c).abs().sum(-1), ("manhattan",), "Manhattan"),
    ("cosine similarity",
     lambda q, c: F.cosine_similarity(q.unsqueeze(2), c.unsqueeze(1), dim=-1), ("cosine",),
     "angle"),
    ("cosine distance",
     lambda q, c: 1 - F.cosine_similarity(q.unsqueeze(2), c.unsqueeze(1), dim=-1),
     ("cosine",), "angle"),
    ("dot product", lambda q, c: q @ c.transpose(1, 2), ("dot_product",), "inner product"),
    ("expansion without ||q||^2",
     lambda q, c: c.pow(2).sum(-1).unsqueeze(1) - 2 * q @ c.transpose(1, 2),
     ("dropped_query_norm",), "||q||**2"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"),
                         [case[1:] for case in DISTANCE_MISTAKES],
                         ids=[c[0] for c in DISTANCE_MISTAKES])
def test_distance_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                           fragment: str) -> None:
    result = check_prototypes(reference_prototypes, function, quiet=True)
    prototypes_verdict, distances_verdict = result.verdicts
    assert prototypes_verdict.passed and distances_verdict.status == "wrong"
    assert distances_verdict.mistakes == keys, distances_verdict.message
    assert fragment in distances_verdict.message
    assert result.mistakes == keys


def test_a_dropped_tasks_axis_gets_a_shape_hint() -> None:
    verdict = check_prototypes(reference_prototypes,
                               lambda q, c: reference_distances(q, c)[0], quiet=True).verdicts[1]
    assert verdict.status == "wrong" and verdict.mistakes == ()
    assert "shape [1, 3, 2] (tasks, n_query, n_way)" in verdict.message
    assert "got:      shape [3, 2]" in verdict.message
    assert "tasks axis" in verdict.message


# --------------------------------------------------------------------------------------------
# Exercise 5.1: MAML's inner step

Params = dict[str, Tensor]


def _step(params: Params, loss_fn: Any, alpha: float, create_graph: bool,
          update: Callable[[Tensor, Tensor], Tensor]) -> Params:
    gradients = torch.autograd.grad(loss_fn(params), list(params.values()),
                                    create_graph=create_graph)
    return {name: update(p, g) for (name, p), g in zip(params.items(), gradients, strict=True)}


def right_step(params: Params, loss_fn: Any, alpha: float, first_order: bool) -> Params:
    return _step(params, loss_fn, alpha, not first_order, lambda p, g: p - alpha * g)


def right_meta_gradient(params: Params, adapted: Params, query_loss: Any) -> Params:
    gradients = torch.autograd.grad(query_loss(adapted), list(adapted.values()))
    return dict(zip(adapted, gradients, strict=True))


def right_reptile(theta: Tensor, phis: Tensor, epsilon: float) -> Tensor:
    return theta + epsilon * (phis - theta).mean(0)


def _check_maml(step: Any = right_step, meta: Any = right_meta_gradient,
                reptile: Any = right_reptile) -> CheckResult:
    return check_maml_inner_step(step, meta, reptile, quiet=True)


def test_solution_of_exercise_3_passes() -> None:
    functions = solution_functions("05_1_maml_inner_step.ipynb")
    result = check_maml_inner_step(functions["inner_step"],
                                   functions["first_order_meta_gradient"],
                                   functions["reptile_update"], quiet=True)
    assert result.passed, result.message
    assert "well done" in result.message


def test_other_right_answers_of_exercise_3_pass() -> None:
    def func_grad_step(params: Params, loss_fn: Any, alpha: float, first_order: bool) -> Params:
        gradients = torch.func.grad(loss_fn)(params)
        return {name: p - alpha * (gradients[name].detach() if first_order else gradients[name])
                for name, p in params.items()}

    def loop_reptile(theta: Tensor, phis: Tensor, epsilon: float) -> Tensor:
        return (1 - epsilon) * theta + epsilon * sum(phis) / len(phis)

    assert _check_maml(right_step, right_meta_gradient, right_reptile).passed
    assert _check_maml(func_grad_step, right_meta_gradient, loop_reptile).passed


def test_first_order_reference_is_the_package_first_order_meta_gradient() -> None:
    # the reference of task 2 equals the meta-gradient of the package's first-order inner loop
    spec = first_order_meta_gradient_spec()
    for case in spec.cases:
        params, _, query_loss, support_loss, alpha = case.args
        leaves = {name: value.clone().requires_grad_() for name, value in params.items()}
        adapted = package_inner_step(leaves, support_loss, alpha, first_order=True)
        package = torch.autograd.grad(query_loss(adapted), list(leaves.values()))
        theirs = spec.run(spec.reference, (dict(params), *case.args[1:]))
        torch.testing.assert_close(theirs, torch.cat([g.flatten() for g in package]))


def _detached_gradient(params: Params, loss_fn: Any, alpha: float, first_order: bool) -> Params:
    gradients = torch.autograd.grad(loss_fn(params), list(params.values()), create_graph=True)
    return {name: p - alpha * g.detach()
            for (name, p), g in zip(params.items(), gradients, strict=True)}


def _backward_and_grad(params: Params, loss_fn: Any, alpha: float, first_order: bool) -> Params:
    loss_fn(params).backward()
    return {name: p - alpha * p.grad for name, p in params.items()}


def _no_grad_in_place(params: Params, loss_fn: Any, alpha: float, first_order: bool) -> Params:
    gradients = torch.autograd.grad(loss_fn(params), list(params.values()))
    with torch.no_grad():
        for p, g in zip(params.values(), gradients, strict=True):
            p -= alpha * g
    return params


INNER_STEP_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("create_graph=False", lambda p, f, a, fo: _step(p, f, a, False, lambda v, g: v - a * g),
     ("no_second_order",), "pass create_graph=True"),
    ("detached gradient", _detached_gradient, ("no_second_order",), "Hessian term is missing"),
    (".backward() and .grad", _backward_and_grad, ("no_second_order",), "`.detach()`"),
    ("create_graph=True always", lambda p, f, a, fo: _step(p, f, a, True, lambda v, g: v - a * g),
     ("ignored_first_order",), "first_order=True"),
    ("gradient ascent", lambda p, f, a, fo: _step(p, f, a, not fo, lambda v, g: v + a * g),
     ("gradient_ascent",), "gradient ascent"),
    ("no alpha", lambda p, f, a, fo: _step(p, f, a, not fo, lambda v, g: v - g), ("no_alpha",),
     "`alpha`"),
    ("returned the gradient", lambda p, f, a, fo: _step(p, f, a, not fo, lambda v, g: g),
     ("returned_gradient",), "return the adapted parameters"),
    ("in place under no_grad", _no_grad_in_place, ("modified_input",), "in place"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"),
                         [case[1:] for case in INNER_STEP_MISTAKES],
                         ids=[c[0] for c in INNER_STEP_MISTAKES])
def test_inner_step_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                             fragment: str) -> None:
    result = _check_maml(step=function)
    step, meta, reptile = result.verdicts
    assert step.status == "wrong" and meta.passed and reptile.passed
    assert step.mistakes == keys, step.message
    assert fragment in step.message and "Hint:" in step.message


def test_the_hessian_hint_shows_both_rows() -> None:
    verdict = _check_maml(step=INNER_STEP_MISTAKES[0][1]).verdicts[0]
    assert "test case 1 of 5 (linear model, 4 support points, second order)" in verdict.message
    assert "params = {weight: [[" in verdict.message
    assert "loss_fn = <support loss: cross-entropy of a 2-class linear model" in verdict.message
    assert verdict.message.count("[[") >= 3  # expected and got: two rows each


def test_an_in_place_update_of_a_leaf_is_an_error_with_a_hint() -> None:
    def in_place(params: Params, loss_fn: Any, alpha: float, first_order: bool) -> Params:
        gradients = torch.autograd.grad(loss_fn(params), list(params.values()))
        for p, g in zip(params.values(), gradients, strict=True):
            p -= alpha * g
        return params

    verdict = _check_maml(step=in_place).verdicts[0]
    assert verdict.status == "error"
    assert "raised RuntimeError on test case 1 of 5" in verdict.message
    assert "p -= alpha * g" in verdict.message  # the student's line
    assert "params: {weight: float64 tensor of shape [2, 2], bias: float64 tensor of shape " \
           "[2]}" in verdict.message
    assert "in place" in verdict.message and "{name: p - alpha * g" in verdict.message


def test_inner_step_returning_a_list_is_an_error_with_a_hint() -> None:
    def as_list(params: Params, loss_fn: Any, alpha: float, first_order: bool) -> Any:
        return list(right_step(params, loss_fn, alpha, first_order).values())

    verdict = _check_maml(step=as_list).verdicts[0]
    assert verdict.status == "error" and "must be a dict" in verdict.message
    assert "same keys as `params`" in verdict.message


META_GRADIENT_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("gradient at theta",
     lambda p, a, q: dict(zip(p, torch.autograd.grad(q(p), list(p.values())), strict=True)),
     ("gradient_at_theta",), "*adapted*"),
    ("second order",
     lambda p, a, q: dict(zip(p, torch.autograd.grad(q(a), list(p.values())), strict=True)),
     ("second_order",), "second-order"),
    ("negative", lambda p, a, q: {k: -g for k, g in right_meta_gradient(p, a, q).items()},
     ("wrong_sign",), "sign"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"),
                         [case[1:] for case in META_GRADIENT_MISTAKES],
                         ids=[c[0] for c in META_GRADIENT_MISTAKES])
def test_first_order_meta_gradient_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                                            fragment: str) -> None:
    step, meta, reptile = _check_maml(meta=function).verdicts
    assert step.passed and meta.status == "wrong" and reptile.passed
    assert meta.mistakes == keys, meta.message
    assert fragment in meta.message


def test_differentiating_the_wrong_tensors_gets_a_hint() -> None:
    def unused(params: Params, adapted: Params, query_loss: Any) -> Params:
        return dict(zip(params, torch.autograd.grad(query_loss(params),
                                                    list(adapted.values())), strict=True))

    verdict = _check_maml(meta=unused).verdicts[1]
    assert verdict.status == "error" and "`query_loss(adapted)`" in verdict.message


def _reptile_in_place(theta: Tensor, phis: Tensor, epsilon: float) -> Tensor:
    theta += epsilon * (phis - theta).mean(0)
    return theta


REPTILE_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("wrong sign", lambda t, p, e: t - e * (p - t).mean(0), ("wrong_sign",), "towards them"),
    ("sum", lambda t, p, e: t + e * (p - t).sum(0), ("sum_not_mean",), "averages"),
    ("no epsilon", lambda t, p, e: p.mean(0), ("no_epsilon",), "epsilon"),
    ("step only", lambda t, p, e: e * (p - t).mean(0), ("returned_step",), "add it to theta"),
    ("mean of phi", lambda t, p, e: t + e * p.mean(0), ("forgot_theta",), "phi - theta"),
    ("in place", _reptile_in_place, ("modified_input",), "in place"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"),
                         [case[1:] for case in REPTILE_MISTAKES],
                         ids=[c[0] for c in REPTILE_MISTAKES])
def test_reptile_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                          fragment: str) -> None:
    step, meta, reptile = _check_maml(reptile=function).verdicts
    assert step.passed and meta.passed and reptile.status == "wrong"
    assert reptile.mistakes == keys, reptile.message
    assert fragment in reptile.message


def test_exercise_3_exceptions_and_stubs_are_verdicts() -> None:
    def broken(*args: Any) -> Any:
        raise ValueError("something odd")

    def stub(*args: Any) -> Any:
        raise NotImplementedError("Write your code here")

    result = _check_maml(broken, broken, stub)
    assert [verdict.status for verdict in result.verdicts] == ["error", "error", "not_done"]
    assert result.status == "error" and not result.passed
    assert "Error: `inner_step` raised ValueError" in result.message
    assert "Error: `first_order_meta_gradient` raised ValueError" in result.message
    assert "Not done yet: fill in `reptile_update`" in result.message


# --------------------------------------------------------------------------------------------
# Right shape, wrong values


def test_right_shape_wrong_values_is_rejected() -> None:
    ci = check_confidence_interval(lambda a: 0.1, quiet=True)
    assert ci.status == "wrong" and ci.mistakes == ()
    assert "expected: 0.1265\n  got:      0.1" in ci.message
    assert "shape is right but not the values" in ci.message

    generator = torch.Generator().manual_seed(0)

    def noisy(z: Tensor, y: Tensor, n: int) -> Tensor:
        right = reference_prototypes(z, y, n)
        return right + 0.01 * torch.randn(right.shape, generator=generator)

    verdict = check_prototypes(noisy, torch.cdist, quiet=True).verdicts[0]
    assert verdict.status == "wrong" and verdict.mistakes == ()
    assert "gives wrong values on test case 1 of 5" in verdict.message
    assert "expected: [[[1, 0], [1, 4]]]" in verdict.message

    zeros = check_prototypes(reference_prototypes,
                             lambda q, c: torch.zeros(q.shape[0], q.shape[1], c.shape[1]),
                             quiet=True).verdicts[1]
    assert zeros.status == "wrong" and zeros.mistakes == ()
    assert "got:      [[[0, 0], [0, 0], [0, 0]]]" in zeros.message


def test_large_outputs_show_the_first_wrong_entry() -> None:
    def wrong_on_big_cases(q: Tensor, c: Tensor) -> Tensor:
        d = reference_distances(q, c)
        if d.shape[1] > 3:
            d[0, 1, 2] += 1
        return d

    verdict = check_prototypes(reference_prototypes, wrong_on_big_cases, quiet=True).verdicts[1]
    assert "test case 2 of 4" in verdict.message
    assert "output shape [2, 5, 3] (tasks, n_query, n_way) is right; first wrong entry at " \
           "[0, 1, 2]" in verdict.message


def test_nan_gets_a_hint() -> None:
    result = check_confidence_interval(lambda a: float("nan"), quiet=True)
    assert result.status == "wrong" and "NaN" in result.message


# --------------------------------------------------------------------------------------------
# Exceptions become verdicts


def test_numpy_ddof_on_a_tensor_is_reported_not_raised() -> None:
    def uses_ddof(accuracies: Tensor) -> float:
        spread = accuracies.std(ddof=1)
        return float(1.96 * spread / math.sqrt(accuracies.numel()))

    result = check_confidence_interval(uses_ddof, quiet=True)
    assert result.status == "error" and not result.passed
    message = result.message
    assert "raised TypeError on test case 1 of 5 (four episodes)" in message
    assert "spread = accuracies.std(ddof=1)" in message  # the student's line
    assert "accuracies: float64 tensor of shape [4]" in message
    assert "torch's `std` has no `ddof`" in message


def test_broadcasting_error_is_reported_with_shapes() -> None:
    result = check_prototypes(reference_prototypes, lambda q, c: (q - c).pow(2).sum(-1),
                              quiet=True)
    verdict = result.verdicts[1]
    assert verdict.status == "error"
    assert "RuntimeError" in verdict.message and "must match the size" in verdict.message
    assert "query_z: float32 tensor of shape [1, 3, 2]; centres: float32 tensor of shape " \
           "[1, 2, 2]" in verdict.message
    assert "unsqueeze" in verdict.message


def test_one_hot_dtype_error_gets_its_hint() -> None:
    result = check_prototypes(lambda z, y, n: F.one_hot(y, n).transpose(1, 2) @ z,
                              reference_distances, quiet=True)
    verdict = result.verdicts[0]
    assert verdict.status == "error" and "RuntimeError" in verdict.message
    assert "support_y: int64 tensor of shape [1, 4]; n_way: 2" in verdict.message
    assert ".to(support_z.dtype)" in verdict.message


def test_any_exception_is_a_verdict() -> None:
    def broken(*args: Any) -> Tensor:
        raise ValueError("something odd\nover two lines")

    result = check_prototypes(broken, broken, quiet=True)
    assert [verdict.status for verdict in result.verdicts] == ["error", "error"]
    assert "raised ValueError" in result.message and "something odd" in result.message
    assert "over two lines" in result.message and "Hint:" in result.message


def test_not_implemented_is_not_done_yet() -> None:
    def stub(*args: Any) -> Any:
        raise NotImplementedError("Write your code here")

    ci = check_confidence_interval(stub, quiet=True)
    assert ci.status == "not_done" and not ci.passed
    assert ci.message.startswith("Not done yet: fill in `confidence_interval95` above")

    half = check_prototypes(reference_prototypes, stub, quiet=True)
    assert [verdict.status for verdict in half.verdicts] == ["passed", "not_done"]
    assert half.status == "not_done"


def test_something_that_is_not_a_function() -> None:
    result = check_confidence_interval(0.05, quiet=True)  # type: ignore[arg-type]
    assert result.status == "error" and "not a function" in result.message


# --------------------------------------------------------------------------------------------
# The result object


def test_messages_are_deterministic() -> None:
    def wrong(q: Tensor, c: Tensor) -> Tensor:
        return torch.cdist(q, c)

    first = check_prototypes(_class_major, wrong, quiet=True).message
    assert first == check_prototypes(_class_major, wrong, quiet=True).message
    assert "0x" not in first


def test_use_gives_the_student_function_only_once_it_passes(
        capsys: pytest.CaptureFixture[str]) -> None:
    def confidence_interval95(accuracies: Tensor) -> float:
        return reference_ci(accuracies)

    mine = confidence_interval95
    assert check_confidence_interval(mine, quiet=True).use(mine) is mine
    assert capsys.readouterr().out == ""

    def confidence_interval95(accuracies: Tensor) -> float:
        return 100 * reference_ci(accuracies)

    not_yet = confidence_interval95
    result = check_confidence_interval(not_yet, quiet=True)
    assert result.use(not_yet) is reference_ci
    assert "has not passed the check yet" in capsys.readouterr().out

    def confidence_interval95(accuracies: Tensor) -> float:
        return reference_ci(accuracies)  # fixed, but not checked again

    assert result.use(confidence_interval95) is reference_ci
    assert "has changed since it was checked" in capsys.readouterr().out
    with pytest.raises(ValueError, match="not one of the functions"):
        result.use(print)


def test_html_display() -> None:
    result = check_confidence_interval(lambda a: (a.mean() - 0.1, a.mean() + 0.1), quiet=True)
    assert isinstance(result, CheckResult) and result.mistakes == ()
    assert "must return one number (one number, the half-width), not 2 numbers" in result.message
    html = result._repr_html_()
    assert "#ef6c00" in html and "not 2 numbers" in html
    assert repr(result) == str(result) == result.message


# --------------------------------------------------------------------------------------------
# The notebooks


def test_student_notebooks_are_up_to_date() -> None:
    process = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True,
                             text=True, timeout=120)
    assert process.returncode == 0, process.stderr


@pytest.mark.parametrize("name", sorted(path.name for path in SOLUTIONS.glob("*.ipynb")))
def test_student_notebook_is_the_solution_without_answers(name: str) -> None:
    solution = nbformat.read(SOLUTIONS / name, as_version=4)
    student = nbformat.read(ROOT / "exercises" / name, as_version=4)
    kept = [cell for cell in solution.cells
            if "solution-only" not in cell.metadata.get("tags", [])]
    assert [cell.id for cell in kept] == [cell.id for cell in student.cells]
    gaps = 0
    for theirs, ours in zip(kept, student.cells, strict=True):
        if "solution" in theirs.metadata.get("tags", []):
            gaps += 1
            assert "BEGIN SOLUTION" in theirs.source
            assert 'raise NotImplementedError("Write your code here")' in ours.source
            assert "SOLUTION" not in ours.source
        else:
            assert theirs.source == ours.source
    assert gaps >= 1
    # the stored outputs: a friendly verdict, no error
    outputs = [output for cell in student.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("Not done yet" in output.get("data", {}).get("text/plain", "")
               for output in outputs)


def test_strip_solution_keeps_the_rest_and_the_indentation() -> None:
    source = ("def f(x):\n    \"\"\"Doc.\"\"\"\n    # BEGIN SOLUTION\n    y = x + 1\n"
              "    return y\n    # END SOLUTION\n\n\nprint('after')")
    assert make_exercises.strip_solution(source, "test") == (
        "def f(x):\n    \"\"\"Doc.\"\"\"\n    # Your code here: replace the line below.\n"
        "    raise NotImplementedError(\"Write your code here\")\n\n\nprint('after')")


@pytest.mark.parametrize(("source", "error"), [
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION", "top level"),
    ("def f():\n    # BEGIN SOLUTION\n    return 1", "without # END"),
    ("def f():\n    return 1\n    # END SOLUTION", "without # BEGIN"),
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    # END SOLUTION", "inside"),
    ("def f():\n    return 1", "no # BEGIN SOLUTION region"),
])
def test_strip_solution_rejects_bad_markers(source: str, error: str) -> None:
    with pytest.raises(make_exercises.ExerciseError, match=error):
        make_exercises.strip_solution(source, "test")


def test_student_notebook_drops_solution_only_cells_and_checks_tags() -> None:
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    gap = new_code_cell("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION")
    gap.metadata["tags"] = ["solution"]
    banner = new_markdown_cell("Solution notebook")
    banner.metadata["tags"] = ["solution-only"]
    notebook = new_notebook(cells=[banner, gap, new_code_cell("f")])
    student = make_exercises.student_notebook(notebook, "x.ipynb")
    assert [cell.cell_type for cell in student.cells] == ["code", "code"]
    assert "NotImplementedError" in student.cells[0].source
    assert "return 1" in notebook.cells[1].source  # the solution is left untouched

    untagged = new_notebook(cells=[new_code_cell("def f():\n    # BEGIN SOLUTION\n    "
                                                 "return 1\n    # END SOLUTION")])
    with pytest.raises(make_exercises.ExerciseError, match="not tagged"):
        make_exercises.student_notebook(untagged, "x.ipynb")


def test_check_notices_an_edited_solution(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    exercises = tmp_path / "exercises"
    shutil.copytree(ROOT / "exercises", exercises,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    monkeypatch.setattr(make_exercises, "EXERCISES", exercises)
    monkeypatch.setattr(make_exercises, "SOLUTIONS", exercises / "solutions")
    names = ["01_1_confidence_interval.ipynb"]
    assert make_exercises.check(names) == []

    path = exercises / "solutions" / names[0]
    notebook = nbformat.read(path, as_version=4)
    markdown = next(cell for cell in notebook.cells if cell.cell_type == "markdown")
    markdown.source += "\n\nA new sentence."
    nbformat.write(notebook, path)
    problems = make_exercises.check(names)
    assert any("outputs do not belong to its current sources" in p for p in problems)
    assert any("differs from what the solution gives" in p for p in problems)
