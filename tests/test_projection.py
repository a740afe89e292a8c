"""fslearn.projection: the power law with a floor fitted to validation curves, against curves
made from known parameters, and its inverse against hand-computed steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_tool

from fslearn.checkpoints import shipped_checkpoints
from fslearn.projection import LearningCurveFit, fit_learning_curve

ROOT = Path(__file__).resolve().parents[1]


def _curve(floor: float, scale: float, exponent: float, steps) -> list[float]:
    return [1 - (floor + scale * t ** -exponent) for t in steps]


def test_fit_recovers_a_noiseless_curve():
    steps = [500 * i for i in range(1, 21)]
    fit = fit_learning_curve(steps, _curve(0.01, 2.0, 0.6, steps))
    assert fit.floor == pytest.approx(0.01, abs=2e-4)
    assert fit.exponent == pytest.approx(0.6, rel=0.03)
    assert fit.scale == pytest.approx(2.0, rel=0.1)
    assert fit.rms < 1e-4 and fit.points == 20


def test_fit_with_noise_projects_near_the_truth():
    """Validation noise of 0.2 points (about 600 episodes' standard error): the projected step
    for an accuracy inside the curve's reach stays within a factor of 2 of the true one."""
    rng = np.random.default_rng(0)
    steps = [250 * i for i in range(1, 41)]
    noisy = [a + rng.normal(0, 0.002) for a in _curve(0.015, 1.5, 0.5, steps)]
    fit = fit_learning_curve(steps, noisy)
    truth = (1.5 / (1 - 0.975 - 0.015)) ** (1 / 0.5)  # 22,500 steps
    assert truth / 2 < fit.steps_to(0.975) < truth * 2


def test_steps_to_inverts_accuracy_at_by_hand():
    fit = LearningCurveFit(floor=0.02, scale=1.0, exponent=0.5, rms=0.0, points=3)
    # error 0.03 = 0.02 + 1 / sqrt(t)  ->  t = 10,000
    assert fit.steps_to(0.97) == pytest.approx(10_000)
    assert fit.accuracy_at(10_000) == pytest.approx(0.97)
    assert fit.ceiling == pytest.approx(0.98)


def test_a_target_beyond_the_floor_is_out_of_reach():
    fit = LearningCurveFit(floor=0.02, scale=1.0, exponent=0.5, rms=0.0, points=3)
    assert fit.steps_to(0.98) is None and fit.steps_to(0.99) is None


@pytest.mark.parametrize("steps, accuracies, message", [
    ([1, 2], [0.5, 0.6], "at least 3"),
    ([1, 3, 2], [0.5, 0.6, 0.7], "increasing"),
    ([0, 1, 2], [0.5, 0.6, 0.7], "positive"),
    ([1, 2, 3], [50, 60, 70], "fractions"),
    ([1, 2, 3], [0.7, 0.6, 0.5], "does not fall"),
    ([1, 2, 3], [0.5, 0.6], "one length"),
])
def test_bad_curves_are_refused_in_one_line(steps, accuracies, message):
    with pytest.raises(ValueError, match=message):
        fit_learning_curve(steps, accuracies)


def test_steps_to_refuses_percentages():
    fit = LearningCurveFit(floor=0.02, scale=1.0, exponent=0.5, rms=0.0, points=3)
    with pytest.raises(ValueError, match="fraction"):
        fit.steps_to(97.0)


def test_a_shipped_validation_curve_fits():
    """The 5-way MAML's 20 validation points: the fit follows them within a point, and its
    ceiling lies above its best validation figure."""
    history = json.loads((shipped_checkpoints()["maml-omniglot-5way"] / "history.json")
                         .read_text())
    points = [(h["episode"], h["val_accuracy"]) for h in history if "val_accuracy" in h]
    fit = fit_learning_curve(*zip(*points, strict=True))
    assert fit.rms < 0.01
    assert fit.ceiling > max(a for _, a in points)


def _sequence_checkpoint(folder, history: list[dict]):
    """A shipped-like folder of a 5-way sequence model whose paper reports presentations 1, 2
    and 10; one thread, 0.2 s a step."""
    folder.mkdir()
    record = {"config": {"val_way": 5, "n_way": 5}, "hardware": "Some CPU, 1 thread",
              "training_seconds": 0.2 * history[-1]["episode"], "episode": history[-1]["episode"]}
    report = {"n_way": 5, "per_class": 10, "results": [
        {"presentation": k, "accuracy": 0.9, "paper_accuracy": paper}
        for k, paper in ((1, 0.364), (2, 0.828), (5, None), (10, 0.981))]}
    for name, content in (("checkpoint.json", record), ("history.json", history),
                          ("results.json", report)):
        (folder / name).write_text(json.dumps(content))
    return folder


def test_a_sequence_model_is_projected_at_its_papers_last_presentation(tmp_path):
    """The 10th presentation's curve is fitted, not the accuracy over all steps; the steps to
    the paper's 98.1% come out of the known curve by hand: 0.5 * t**-0.5 = 1 - 0.981 - 0.01."""
    steps = [2500 * i for i in range(1, 11)]
    tenth = _curve(0.01, 0.5, 0.5, steps)
    history = [{"episode": t, "val_accuracy": a - 0.2,
                "val_by_presentation": [0.3] + [a - 0.01] * 8 + [a]}
               for t, a in zip(steps, tenth, strict=True)]
    row = load_tool("projection").project("mann-x", _sequence_checkpoint(tmp_path / "x", history))
    assert row["setting"] == [5, "presentation 10"] and row["paper_accuracy"] == 0.981
    assert row["best_validation"] == pytest.approx(max(tenth))
    assert row["steps_to_paper"] == pytest.approx((0.5 / (1 - 0.981 - 0.01)) ** 2, rel=0.02)
    assert row["core_hours_to_paper"] == pytest.approx(row["steps_to_paper"] * 0.2 / 3600)


def test_the_second_half_alone_is_fitted_past_a_plateau_at_chance(tmp_path):
    """A MANN-like curve: at chance for its first three points, then a known power law. The
    fit to the whole curve misses the plateau by points; the fit to its second half (steps after
    25,000 of 50,000) finds the known curve and projects the paper's 98.1% where it lies by
    hand: 0.01 + 5 * t**-0.5 = 1 - 0.981."""
    steps = [2500 * i for i in range(1, 21)]
    tenth = [0.3] * 3 + _curve(0.01, 5.0, 0.5, steps[3:])
    history = [{"episode": t, "val_accuracy": a, "val_by_presentation": [0.3] * 9 + [a]}
               for t, a in zip(steps, tenth, strict=True)]
    row = load_tool("projection").project("mann-x", _sequence_checkpoint(tmp_path / "x", history))
    truth = (5.0 / (1 - 0.981 - 0.01)) ** 2  # 308,642 steps
    half = row["second_half"]
    assert half["first_step"] == 27_500 and half["validation_points"] == 10
    assert half["fit"]["rms"] < 1e-3 < row["fit"]["rms"]
    assert half["steps_to_paper"] == pytest.approx(truth, rel=0.02)
    assert half["core_hours_to_paper"] == pytest.approx(half["steps_to_paper"] * 0.2 / 3600)
    assert abs(row["steps_to_paper"] - truth) > 0.1 * truth  # the plateau misled the whole fit


def test_a_second_half_of_fewer_than_five_points_is_not_fitted(tmp_path):
    steps = [2500 * i for i in range(1, 9)]  # the second half: 12,500 to 20,000, four points
    tenth = _curve(0.01, 0.5, 0.5, steps)
    history = [{"episode": t, "val_accuracy": a, "val_by_presentation": [0.3] * 9 + [a]}
               for t, a in zip(steps, tenth, strict=True)]
    row = load_tool("projection").project("mann-x", _sequence_checkpoint(tmp_path / "x", history))
    assert row["steps_to_paper"] is not None and row["second_half"] is None
    assert load_tool("projection").steps_text(row["second_half"]) == "< 5 points"


def test_a_sequence_history_without_presentations_is_not_projected(tmp_path):
    history = [{"episode": 2500 * i, "val_accuracy": 0.8 + 0.01 * i} for i in range(1, 11)]
    assert load_tool("projection").project("mann-x", _sequence_checkpoint(tmp_path / "x",
                                                                     history)) is None


def test_the_books_projections_are_the_shipped_histories():
    """book/data/projections.json is what tools/projection.py computes from the shipped files."""
    tool = load_tool("projection")
    computed = [row for name, folder in shipped_checkpoints().items()
                if (row := tool.project(name, folder)) is not None]
    stored = json.loads((ROOT / "book" / "data" / "projections.json").read_text())
    assert json.loads(json.dumps(computed)) == stored["projections"]
