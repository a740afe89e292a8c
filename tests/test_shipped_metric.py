"""The shipped checkpoints of the transfer baselines and the metric methods (chapters 3 and 4):
each says how it was made, holds its test figures in the four standard settings over 1000
episodes beside its paper's, and reproduces them."""

from __future__ import annotations

import json

import pytest

from fslearn.checkpoints import load_checkpoint, shipped_checkpoints
from fslearn.data import load_omniglot
from fslearn.evaluation import evaluate
from fslearn.results import PAPER_RESULTS, STANDARD_SETTINGS

CHECKPOINTS = ("baseline-omniglot", "baselinepp-omniglot", "siamese-omniglot",
               "matchingnet-omniglot", "relationnet-omniglot")


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_shipped_checkpoint_records_and_reproduces_its_figures(name):
    """The first episodes of the same test stream, re-evaluated, agree with the stored
    1000-episode 5-way 1-shot mean within a margin that float rounding never reaches and a wrong
    model, a broken fine-tuning or a wrong protocol (chance is 20%) exceeds."""
    method_name = name.split("-")[0]
    folder = shipped_checkpoints()[name]
    method, record = load_checkpoint(folder)
    assert method.name == method_name
    assert record["command"].startswith(f"fslearn train {method_name} ")
    assert record["data"]["protocol"] == "vinyals" and record["data"]["train_split"] == "train"
    assert {"seed", "config", "hardware", "training_seconds", "device"} <= set(record)
    # chosen on the validation classes: the best checkpoint records its validation figure
    assert record["metrics"]["val"]["episodes"] >= 600
    history = json.loads((folder / "history.json").read_text())
    assert max(e["val_accuracy"] for e in history if "val_accuracy" in e) == pytest.approx(
        record["metrics"]["val"]["accuracy"])
    stored = json.loads((folder / "results.json").read_text())
    rows = {(r["n_way"], r["k_shot"]): r for r in stored["results"]}
    assert set(rows) == set(STANDARD_SETTINGS)
    for setting, row in rows.items():
        assert row["episodes"] == 1000 and row["n_query"] == 15 and row["seed"] == 0
        assert row["dataset"] == "omniglot/vinyals/test"
        assert row["paper_accuracy"] == PAPER_RESULTS.get(method_name, {}).get(setting)
        assert 0.5 < row["accuracy"] <= 1 and 0 < row["ci95"] < 0.02
    # more shots never hurt a working model; more ways never help
    assert rows[5, 5]["accuracy"] > rows[5, 1]["accuracy"] > rows[20, 1]["accuracy"]
    again = evaluate(method, load_omniglot("test", protocol="vinyals"), 5, 1, n_query=15,
                     episodes=40, seed=0)
    assert abs(again.accuracy - rows[5, 1]["accuracy"]) < 0.06


@pytest.mark.parametrize(("name", "hparam", "value", "flag"), [
    ("matchingnet-omniglot", "scale", 10.0, "--scale 10"),
    ("relationnet-omniglot", "aggregate", "mean", "--aggregate mean"),
])
def test_shipped_departures_from_the_papers_are_recorded(name, hparam, value, flag):
    """The options that depart from a paper are in the model and in the command that made it,
    so the record says what the book says."""
    method, record = load_checkpoint(shipped_checkpoints()[name])
    assert method.hparams[hparam] == value == record["hparams"][hparam]
    assert f" {flag} " in record["command"]
