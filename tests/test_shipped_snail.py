"""The shipped SNAIL (issue 24's first checkpoint of it): one 5-way model trained with K drawn
from 1 to 5, its record, and its figures reproduced."""

from __future__ import annotations

import json

import pytest

from fslearn.checkpoints import load_checkpoint, shipped_checkpoints
from fslearn.data import load_omniglot
from fslearn.evaluation import evaluate


def test_shipped_snail_records_its_recipe():
    folder = shipped_checkpoints()["snail-omniglot-5way"]
    method, record = load_checkpoint(folder)
    assert method.name == "snail"
    assert record["hparams"]["n_way"] == 5 and record["hparams"]["max_shot"] == 5
    assert record["command"].startswith("fslearn train snail ")
    config = record["config"]
    assert config["batch_size"] == 16 and config["val_every"] > 0
    assert record["episode"] % config["val_every"] == 0  # chosen on validation
    assert {"seed", "hardware", "training_seconds", "device"} <= set(record)
    history = json.loads((folder / "history.json").read_text())
    assert sum("val_accuracy" in h for h in history) >= 5


def test_shipped_snail_reproduces_its_figures():
    """The first 40 of the stored 1000 5-way 1-shot test episodes, re-evaluated, agree with the
    stored mean within 4 points; the stored figures sit beside Mishra et al.'s."""
    folder = shipped_checkpoints()["snail-omniglot-5way"]
    method, _ = load_checkpoint(folder)
    stored = json.loads((folder / "results.json").read_text())
    rows = {(r["n_way"], r["k_shot"]): r for r in stored["results"]}
    assert set(rows) == {(5, 1), (5, 5)}
    assert rows[(5, 1)]["paper_accuracy"] == pytest.approx(0.9907)
    assert rows[(5, 5)]["paper_accuracy"] == pytest.approx(0.9978)
    assert all(r["episodes"] == 1000 for r in rows.values())
    again = evaluate(method, load_omniglot("test", protocol="vinyals"), 5, 1, n_query=15,
                     episodes=40, seed=0)
    assert abs(again.accuracy - rows[(5, 1)]["accuracy"]) < 0.04
