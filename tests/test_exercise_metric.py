"""Exercises 4.1, 6 and 7 (metric methods): the checkers ``check_siamese_losses``,
``check_matching_attention`` and ``check_cosine_classifier``, and their notebooks.

Each checker must accept the solution notebook's functions and other right answers, say "not
done yet" for the stub, give every typical wrong answer its specific hint (both the checker's own
wrong variants and wrong answers written as a student would write them), and report exceptions.
The hand-worked examples of the notebooks must be the checkers' first test cases. (That the
student notebooks are what ``tools/make_exercises.py`` makes of the solutions, and nbval's run of
both, are covered by ``tests/test_exercises.py`` and ``pytest --nbval exercises/``.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.exercises import (
    CheckResult,
    check_cosine_classifier,
    check_matching_attention,
    check_siamese_losses,
)
from fslearn.exercises.checker import FunctionSpec
from fslearn.exercises.cosine_classifier import cosine_logits_spec
from fslearn.exercises.matching_attention import (
    attention_spec,
    predict_spec,
    reference_attention,
    reference_predict,
)
from fslearn.exercises.siamese_losses import contrastive_spec, triplet_spec
from fslearn.methods.baseline import cosine_logits as ref_cosine_logits
from fslearn.methods.matching import cosine_similarity, matching_log_probabilities
from fslearn.methods.siamese import contrastive_loss as ref_contrastive
from fslearn.methods.siamese import triplet_loss as ref_triplet

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {"siamese": "04_1_siamese_losses.ipynb", "matching": "04_2_matching_attention.ipynb",
             "cosine": "03_1_cosine_classifier.ipynb"}
SPECS: dict[str, Callable[[], FunctionSpec]] = {
    "contrastive_loss": contrastive_spec, "triplet_loss": triplet_spec,
    "attention": attention_spec, "predict": predict_spec, "cosine_logits": cosine_logits_spec}


def _cells(path: Path) -> dict[str, Any]:
    return {cell.id: cell for cell in nbformat.read(path, as_version=4).cells}


def solution_namespace(exercise: str) -> dict[str, Any]:
    """The solution notebook's namespace after its setup cell and its gap cells."""
    name = NOTEBOOKS[exercise]
    namespace: dict[str, Any] = {}
    for cell_id, cell in _cells(ROOT / "exercises" / "solutions" / name).items():
        if cell_id == "setup" or "solution" in cell.metadata.get("tags", []):
            exec(compile(cell.source, f"{name}:{cell_id}", "exec"), namespace)
    return namespace


def _check(name: str, function: Any) -> CheckResult:
    if name == "cosine_logits":
        return check_cosine_classifier(function, quiet=True)
    if name in ("attention", "predict"):
        return check_matching_attention(**{name: function}, quiet=True)
    return check_siamese_losses(**{name: function}, quiet=True)


# --------------------------------------------------------------------------------------------
# Right answers pass


def test_solution_notebook_functions_pass(capsys: pytest.CaptureFixture[str]) -> None:
    siamese = solution_namespace("siamese")
    capsys.readouterr()
    result = check_siamese_losses(siamese["contrastive_loss"], siamese["triplet_loss"])
    assert result.passed and "well done" in result.message, result.message
    assert capsys.readouterr().out == result.message + "\n"  # printed outside Jupyter
    matching = solution_namespace("matching")
    result = check_matching_attention(matching["attention"], matching["predict"], quiet=True)
    assert result.passed and [v.name for v in result.verdicts] == ["attention", "predict"]
    cosine = solution_namespace("cosine")
    result = check_cosine_classifier(cosine["cosine_logits"], quiet=True)
    assert result.passed and result.message == (
        "Correct: `cosine_logits` agrees with the reference on all 4 test cases.\n\n"
        "[exercise 3.1, Baseline++'s cosine classifier]")
    for exercise, names in [("siamese", ["contrastive_loss", "triplet_loss"]),
                            ("matching", ["attention", "predict"])]:
        for name in names:  # one at a time, as the notebooks' checker cells do
            single = _check(name, solution_namespace(exercise)[name])
            assert single.passed and len(single.verdicts) == 1


def test_package_functions_and_other_right_answers_pass() -> None:
    assert check_siamese_losses(ref_contrastive, ref_triplet, quiet=True).passed
    assert check_matching_attention(reference_attention, reference_predict, quiet=True).passed
    assert check_cosine_classifier(ref_cosine_logits, quiet=True).passed

    def masked_contrastive(distance: Tensor, same: Tensor, margin: float) -> Tensor:
        is_same = same.bool()
        losses = torch.where(is_same, 0.5 * distance**2,
                             0.5 * torch.relu(margin - distance) ** 2)
        return losses.sum() / len(distance)

    def relu_triplet(positive: Tensor, negative: Tensor, margin: float) -> Tensor:
        return F.relu(positive - negative + margin).mean()

    def broadcast_cosine(query_z: Tensor, support_z: Tensor) -> Tensor:
        cosines = F.cosine_similarity(query_z.unsqueeze(2), support_z.unsqueeze(1), dim=-1)
        return torch.softmax(cosines, dim=2)

    def loop_predict(attention: Tensor, support_y: Tensor, n_way: int) -> Tensor:
        return torch.stack([(attention * (support_y == n).unsqueeze(1)).sum(-1)
                            for n in range(n_way)], dim=-1)

    def manual_cosine(z: Tensor, weight: Tensor, scale: float) -> Tensor:
        dots = torch.einsum("...nd,...cd->...nc", z, weight)
        norms = z.norm(dim=-1).unsqueeze(-1) * weight.norm(dim=-1).unsqueeze(-2)
        return scale * dots / norms

    assert check_siamese_losses(masked_contrastive, relu_triplet, quiet=True).passed
    assert check_matching_attention(broadcast_cosine, loop_predict, quiet=True).passed
    assert check_cosine_classifier(manual_cosine, quiet=True).passed


def test_references_are_the_packages() -> None:
    """The attention and prediction references agree with the package's Matching Network."""
    for case in attention_spec().cases:
        query_z, support_z = case.args
        torch.testing.assert_close(reference_attention(query_z, support_z),
                                   cosine_similarity(query_z, support_z).softmax(dim=-1))
    for case in predict_spec().cases:
        attention, support_y, n_way = case.args
        one_hot = F.one_hot(support_y, n_way).to(attention.dtype)
        torch.testing.assert_close(reference_predict(attention, support_y, n_way),
                                   attention @ one_hot)
    similarities = torch.randn(2, 3, 6, dtype=torch.float64)
    support_y = torch.tensor([[0, 1, 2, 0, 1, 2], [2, 2, 1, 1, 0, 0]])
    torch.testing.assert_close(
        reference_predict(similarities.softmax(-1), support_y, 3),
        matching_log_probabilities(similarities, support_y, 3).exp())


def test_stubs_are_not_done_yet() -> None:
    def stub(*args: Any) -> Any:
        raise NotImplementedError("Write your code here")

    for result in (check_siamese_losses(stub, stub, quiet=True),
                   check_matching_attention(stub, stub, quiet=True),
                   check_cosine_classifier(stub, quiet=True)):
        assert result.status == "not_done" and not result.passed
        assert all(verdict.status == "not_done" for verdict in result.verdicts)
        for verdict in result.verdicts:
            assert verdict.message.startswith(f"Not done yet: fill in `{verdict.name}` above")
    half = check_siamese_losses(ref_contrastive, stub, quiet=True)
    assert [verdict.status for verdict in half.verdicts] == ["passed", "not_done"]


def test_checkers_need_a_function() -> None:
    with pytest.raises(TypeError, match="at least one function"):
        check_siamese_losses()
    with pytest.raises(TypeError, match="at least one function"):
        check_matching_attention()


# --------------------------------------------------------------------------------------------
# Typical wrong answers get their hints


@pytest.mark.parametrize("name", list(SPECS))
def test_every_listed_mistake_is_recognised_with_its_own_keys(name: str) -> None:
    """Each variant differs from the reference, and a student who writes it gets its keys."""
    built = SPECS[name]()
    assert built.mistakes
    for mistake in built.mistakes:
        verdict = _check(name, mistake.variant).verdicts[0]
        assert verdict.status == "wrong", mistake.key
        assert verdict.mistakes == tuple(mistake.key.split("+")), (mistake.key, verdict.message)
        assert "Hint:" in verdict.message


def _contrastive(pull: Callable[[Tensor], Tensor], push: Callable[[Tensor, float], Tensor],
                 reduce: Callable[[Tensor], Tensor] = torch.mean, swapped: bool = False
                 ) -> Callable[[Tensor, Tensor, float], Tensor]:
    def loss(distance: Tensor, same: Tensor, margin: float) -> Tensor:
        weight = 1 - same if swapped else same
        return reduce(weight * pull(distance) + (1 - weight) * push(distance, margin))

    return loss


def _half_square(d: Tensor) -> Tensor:
    return d**2 / 2


def _half_hinge(d: Tensor, m: float) -> Tensor:
    return torch.clamp(m - d, min=0) ** 2 / 2


def _group_means(distance: Tensor, same: Tensor, margin: float) -> Tensor:
    is_same = same == 1
    return (_half_square(distance[is_same]).mean()
            + _half_hinge(distance[~is_same], margin).mean())


CONTRASTIVE_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("same/different swapped", _contrastive(_half_square, _half_hinge, swapped=True),
     ("roles_swapped",), "the roles of the pairs are swapped"),
    ("margin term not squared",
     _contrastive(_half_square, lambda d, m: torch.relu(m - d) / 2), ("push_not_squared",),
     "forgot to square the hinge"),
    ("hinge missing", _contrastive(_half_square, lambda d, m: (m - d) ** 2 / 2),
     ("push_no_hinge",), "the push has no hinge"),
    ("hinge missing, not squared", _contrastive(_half_square, lambda d, m: (m - d) / 2),
     ("push_no_hinge", "push_not_squared"), "neither the hinge"),
    ("distance squared inside the margin",
     _contrastive(_half_square, lambda d, m: torch.relu(m - d * d) ** 2 / 2),
     ("distance_squared_in_push",), "not its square"),
    ("pull not squared", _contrastive(lambda d: d / 2, _half_hinge), ("pull_not_squared",),
     "the square of the distance"),
    ("sum instead of mean", _contrastive(_half_square, _half_hinge, reduce=torch.sum),
     ("sum_not_mean",), "averages them over the batch"),
    ("1/2 forgotten", _contrastive(lambda d: d**2, lambda d, m: torch.relu(m - d) ** 2),
     ("no_half",), "the factor 1/2 is missing"),
    ("margin on the wrong side",
     _contrastive(_half_square, lambda d, m: torch.relu(d - m) ** 2 / 2),
     ("margin_wrong_side",), "the hinge is the wrong way round"),
    ("a mean per group", _group_means, ("mean_per_group",), "averaged the same pairs and the"),
    ("swapped and no 1/2", _contrastive(lambda d: d**2, lambda d, m: torch.relu(m - d) ** 2,
                                        swapped=True),
     ("roles_swapped", "no_half"), "differs from the formula in several ways"),
    ("not reduced", _contrastive(_half_square, _half_hinge, reduce=lambda x: x),
     ("not_reduced",), "one loss per pair"),
]

TRIPLET_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("hinge missing", lambda p, n, m: (p - n + m).mean(), ("no_hinge",), "the hinge is missing"),
    ("positive and negative swapped", lambda p, n, m: F.relu(n - p + m).mean(), ("swapped",),
     "positive and negative are swapped"),
    ("margin subtracted", lambda p, n, m: F.relu(p - n - m).mean(), ("margin_subtracted",),
     "the margin is on the wrong side"),
    ("margin outside the hinge", lambda p, n, m: F.relu(p - n).mean() + m,
     ("margin_outside_hinge",), "the margin belongs inside the hinge"),
    ("squared again", lambda p, n, m: F.relu(p**2 - n**2 + m).mean(), ("squared_again",),
     "already squared"),
    ("square roots", lambda p, n, m: F.relu(p.sqrt() - n.sqrt() + m).mean(), ("square_root",),
     "square roots"),
    ("sum instead of mean", lambda p, n, m: F.relu(p - n + m).sum(), ("sum_not_mean",),
     "averages them over the batch"),
    ("mean of the active triplets", lambda p, n, m: F.relu(p - n + m)[p - n + m > 0].mean(),
     ("mean_of_active",), "that violate the margin only"),
    ("swapped, no hinge", lambda p, n, m: (n - p + m).mean(), ("no_hinge", "swapped"),
     "several ways"),
    ("not reduced", lambda p, n, m: F.relu(p - n + m), ("not_reduced",), "one loss per triplet"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"),
                         [c[1:] for c in CONTRASTIVE_MISTAKES],
                         ids=[c[0] for c in CONTRASTIVE_MISTAKES])
def test_contrastive_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                              fragment: str) -> None:
    verdict = _check("contrastive_loss", function).verdicts[0]
    assert verdict.status == "wrong"
    assert verdict.mistakes == keys, verdict.message
    assert fragment in verdict.message and "Hint:" in verdict.message


@pytest.mark.parametrize(("function", "keys", "fragment"), [c[1:] for c in TRIPLET_MISTAKES],
                         ids=[c[0] for c in TRIPLET_MISTAKES])
def test_triplet_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                          fragment: str) -> None:
    verdict = _check("triplet_loss", function).verdicts[0]
    assert verdict.status == "wrong"
    assert verdict.mistakes == keys, verdict.message
    assert fragment in verdict.message and "Hint:" in verdict.message


def test_a_loss_returned_as_a_float_is_rejected() -> None:
    verdict = _check("triplet_loss", lambda p, n, m: F.relu(p - n + m).mean().item()).verdicts[0]
    assert verdict.status == "wrong" and verdict.mistakes == ("not_a_tensor",)
    assert "`loss.backward()`" in verdict.message


def _unit(t: Tensor) -> Tensor:
    return t / t.norm(dim=-1, keepdim=True)


ATTENTION_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("softmax over the queries", lambda q, s: (_unit(q) @ _unit(s).transpose(1, 2)).softmax(1),
     ("softmax_wrong_axis",), "runs over the queries"),
    ("dot product", lambda q, s: torch.softmax(q @ s.transpose(1, 2), dim=-1), ("dot_product",),
     "plain dot products"),
    ("only the query normalised", lambda q, s: (_unit(q) @ s.transpose(1, 2)).softmax(-1),
     ("only_query_normalised",), "but not the support embeddings"),
    ("only the support normalised", lambda q, s: (q @ _unit(s).transpose(1, 2)).softmax(-1),
     ("only_support_normalised",), "but not the queries"),
    ("Euclidean", lambda q, s: (-torch.cdist(q, s)).softmax(-1), ("euclidean",),
     "minus the Euclidean distances"),
    ("squared Euclidean", lambda q, s: (-torch.cdist(q, s) ** 2).softmax(-1), ("euclidean",),
     "minus the Euclidean distances"),
    ("normalised over the wrong axis",
     lambda q, s: (F.normalize(q, dim=1) @ F.normalize(s, dim=1).transpose(1, 2)).softmax(-1),
     ("normalised_wrong_axis",), "over the wrong axis"),
    ("softmax forgotten", lambda q, s: _unit(q) @ _unit(s).transpose(1, 2), ("no_softmax",),
     "cosine similarities themselves"),
    ("transposed", lambda q, s: (_unit(s) @ _unit(q).transpose(1, 2)).softmax(1),
     ("transposed_output",), "axes of the result are swapped"),
]


def _hard_neighbour(attention: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    best = attention.argmax(dim=-1)  # [tasks, n_query]
    labels = torch.stack([y[b] for y, b in zip(support_y, best, strict=True)])
    return F.one_hot(labels, n_way).float()


def _mean_per_class(attention: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    return torch.stack([attention[:, :, None, :].mul((support_y == n)[:, None, None, :])
                        .sum(-1).squeeze(-1) / (support_y == n).sum(-1, keepdim=True)
                        for n in range(n_way)], dim=-1)


PREDICT_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("hard nearest neighbour", _hard_neighbour, ("nearest_neighbour",), "hard nearest neighbour"),
    ("mean per class", _mean_per_class, ("mean_per_class",), "*sums* them"),
    ("sorted labels", lambda a, y, n: a.reshape(*a.shape[:2], n, -1).sum(-1), ("sorted_labels",),
     "one fixed order"),
    ("softmax again",
     lambda a, y, n: torch.softmax(a @ F.one_hot(y, n).to(a.dtype), dim=-1), ("softmax_again",),
     "already a probability distribution"),
    ("label numbers", lambda a, y, n: (a * y.unsqueeze(1)).sum(-1), ("label_values",),
     "label *numbers*"),
    ("log-probabilities", lambda a, y, n: torch.log(a @ F.one_hot(y, n).to(a.dtype)),
     ("log_probabilities",), "log-probabilities"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"), [c[1:] for c in ATTENTION_MISTAKES],
                         ids=[c[0] for c in ATTENTION_MISTAKES])
def test_attention_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                            fragment: str) -> None:
    verdict = _check("attention", function).verdicts[0]
    assert verdict.status == "wrong"
    assert verdict.mistakes == keys, verdict.message
    assert fragment in verdict.message and "Hint:" in verdict.message


@pytest.mark.parametrize(("function", "keys", "fragment"), [c[1:] for c in PREDICT_MISTAKES],
                         ids=[c[0] for c in PREDICT_MISTAKES])
def test_predict_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                          fragment: str) -> None:
    verdict = _check("predict", function).verdicts[0]
    assert verdict.status == "wrong"
    assert verdict.mistakes == keys, verdict.message
    assert fragment in verdict.message and "Hint:" in verdict.message


COSINE_MISTAKES: list[tuple[str, Callable[..., Any], tuple[str, ...], str]] = [
    ("features not normalised", lambda z, w, s: s * z @ _unit(w).transpose(-1, -2),
     ("z_not_normalised",), "but not the embeddings"),
    ("weights not normalised", lambda z, w, s: s * _unit(z) @ w.transpose(-1, -2),
     ("weight_not_normalised",), "but not the weights"),
    ("weights normalised per feature",
     lambda z, w, s: s * _unit(z) @ F.normalize(w, dim=-2).transpose(-1, -2),
     ("weight_normalised_per_feature",), "one row per *class*"),
    ("weights normalised after the transpose",
     lambda z, w, s: s * _unit(z) @ F.normalize(w.transpose(-1, -2), dim=-1),
     ("weight_normalised_per_feature",), "one row per *class*"),
    ("scale forgotten", lambda z, w, s: _unit(z) @ _unit(w).transpose(-1, -2), ("no_scale",),
     "the scale is missing"),
    ("scale twice", lambda z, w, s: s * (s * _unit(z) @ _unit(w).transpose(-1, -2)),
     ("scale_twice",), "applied twice"),
    ("divided by the scale", lambda z, w, s: _unit(z) @ _unit(w).transpose(-1, -2) / s,
     ("divided_by_scale",), "you divided by the scale"),
    ("Euclidean", lambda z, w, s: -s * torch.cdist(z, w), ("euclidean",),
     "a Euclidean distance"),
    ("linear head times scale", lambda z, w, s: s * z @ w.transpose(-1, -2), ("not_normalised",),
     "a linear classifier without bias"),
    ("cosine distance", lambda z, w, s: s * (1 - _unit(z) @ _unit(w).transpose(-1, -2)),
     ("cosine_distance",), "that is a distance"),
]


@pytest.mark.parametrize(("function", "keys", "fragment"), [c[1:] for c in COSINE_MISTAKES],
                         ids=[c[0] for c in COSINE_MISTAKES])
def test_cosine_mistakes(function: Callable[..., Any], keys: tuple[str, ...],
                         fragment: str) -> None:
    verdict = _check("cosine_logits", function).verdicts[0]
    assert verdict.status == "wrong"
    assert verdict.mistakes == keys, verdict.message
    assert fragment in verdict.message and "Hint:" in verdict.message


def test_a_bias_is_rejected() -> None:
    """A bias (here a constant) is not part of the cosine head; no specific hint applies."""
    verdict = _check("cosine_logits",
                     lambda z, w, s: ref_cosine_logits(z, w, s) + 0.5).verdicts[0]
    assert verdict.status == "wrong" and verdict.mistakes == ()
    assert "shape is right but not the values" in verdict.message


# --------------------------------------------------------------------------------------------
# Exceptions


def test_exceptions_are_reported_with_the_students_line() -> None:
    def broken(distance: Tensor, same: Tensor, margin: float) -> Tensor:
        raise ValueError("something odd")

    verdict = _check("contrastive_loss", broken).verdicts[0]
    assert verdict.status == "error" and not verdict.passed
    assert verdict.message.startswith("Error: `contrastive_loss` raised ValueError on test case "
                                      "1 of 4 (the 4 pairs worked out in the notebook")
    assert 'raise ValueError("something odd")' in verdict.message
    assert "distance: float64 tensor of shape [4]; same: float64 tensor of shape [4]; " \
           "margin: 1.5" in verdict.message


def test_python_max_gets_a_hint() -> None:
    verdict = _check("triplet_loss", lambda p, n, m: max(0, p - n + m).mean()).verdicts[0]
    assert verdict.status == "error" and "Boolean value of Tensor" in verdict.message
    assert "`torch.clamp(x, min=0)`" in verdict.message


def test_pairwise_cosine_without_axes_gets_a_hint() -> None:
    verdict = _check("attention",
                     lambda q, s: F.cosine_similarity(q, s, dim=-1).softmax(-1)).verdicts[0]
    assert verdict.status == "error" and "must match the size" in verdict.message
    assert "`q @ s.transpose(1, 2)`" in verdict.message


def test_one_hot_dtype_error_gets_a_hint() -> None:
    verdict = _check("predict", lambda a, y, n: a @ F.one_hot(y, n)).verdicts[0]
    assert verdict.status == "error"
    assert "`F.one_hot(support_y, n_way).to(attention.dtype)`" in verdict.message


@pytest.mark.filterwarnings("ignore:The use of `x.T`:UserWarning")
def test_dot_T_on_the_batched_case_gets_a_hint() -> None:
    def with_t(z: Tensor, weight: Tensor, scale: float) -> Tensor:
        return scale * F.normalize(z, dim=-1) @ F.normalize(weight, dim=-1).T

    verdict = _check("cosine_logits", with_t).verdicts[0]
    assert verdict.status == "error" and "test case 4 of 4" in verdict.message
    assert "`z @ weight.transpose(-1, -2)`" in verdict.message


def test_use_hands_back_the_reference_until_the_function_passes(
        capsys: pytest.CaptureFixture[str]) -> None:
    def predict(attention: Tensor, support_y: Tensor, n_way: int) -> Tensor:
        return _hard_neighbour(attention, support_y, n_way)

    result = check_matching_attention(predict=predict, quiet=True)
    assert result.use(predict) is reference_predict
    assert "`predict` has not passed the check yet" in capsys.readouterr().out
    right = check_cosine_classifier(ref_cosine_logits, quiet=True)
    assert right.use(ref_cosine_logits) is ref_cosine_logits


# --------------------------------------------------------------------------------------------
# The notebooks


def test_the_worked_examples_are_the_first_test_cases() -> None:
    text = _cells(ROOT / "exercises" / "solutions" / NOTEBOOKS["siamese"])
    contrastive = contrastive_spec().cases[0]
    assert contrastive.args[0].tolist() == [0.5, 1.0, 0.5, 2.0]
    assert contrastive.args[1].tolist() == [1.0, 1.0, 0.0, 0.0] and contrastive.args[2] == 1.5
    assert float(ref_contrastive(*contrastive.args)) == 0.28125
    assert "$D = [0.5, 1, 0.5, 2]$, $y = [1, 1, 0, 0]$ and $m = 1.5$" in text["task1-md"].source
    assert "= 0.28125$" in text["task1-md"].source
    triplet = triplet_spec().cases[0]
    assert triplet.args[0].tolist() == [0.25, 1.0, 0.5, 0.75]
    assert triplet.args[1].tolist() == [1.0, 0.5, 0.75, 2.0] and triplet.args[2] == 0.5
    assert float(ref_triplet(*triplet.args)) == 0.3125
    assert "$d(a, p) = [0.25, 1, 0.5, 0.75]$, $d(a, n) = [1, 0.5, 0.75, 2]$" in \
        text["task2-md"].source
    assert "$0.3125$" in text["task2-md"].source


def _text_outputs(cell: Any) -> str:
    return "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "")
                   for output in cell.get("outputs", []))


@pytest.mark.parametrize(("exercise", "checks", "uses"), [
    ("siamese", {"check-contrastive": "contrastive_loss", "check-triplet": "triplet_loss"},
     "shape"),
    ("matching", {"check-attention": "attention", "check-predict": "predict"}, "omniglot"),
    ("cosine", {"check-cosine": "cosine_logits"}, "regions"),
])
def test_stored_outputs_of_both_notebooks(exercise: str, checks: dict[str, str],
                                          uses: str) -> None:
    solution = _cells(ROOT / "exercises" / "solutions" / NOTEBOOKS[exercise])
    student = _cells(ROOT / "exercises" / NOTEBOOKS[exercise])
    for cell_id, name in checks.items():
        assert _text_outputs(solution[cell_id]).startswith(f"Correct: `{name}`")
        assert _text_outputs(student[cell_id]).startswith(f"Not done yet: fill in `{name}`")
    # the first cell after the checkers runs on the package's functions in the student
    # notebook, and says so; the rest of its output is the solution's
    notes = _text_outputs(student[uses])
    assert notes.count("has not passed the check yet") == len(checks)
    assert notes.split("\n", len(checks))[len(checks)] == _text_outputs(solution[uses])
    assert "solution-banner" in solution and "solution-banner" not in student
