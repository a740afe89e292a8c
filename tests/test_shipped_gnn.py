"""The shipped graph neural network (issue 24): one 5-way 1-shot model trained with the authors'
episodes, its record, and its figures reproduced."""

from __future__ import annotations

import json

import pytest

from fslearn.checkpoints import load_checkpoint, shipped_checkpoints
from fslearn.data import load_omniglot
from fslearn.evaluation import evaluate


def test_shipped_gnn_records_its_recipe():
    folder = shipped_checkpoints()["gnn-omniglot-5way"]
    method, record = load_checkpoint(folder)
    assert method.name == "gnn"
    assert record["hparams"]["n_way"] == 5 and record["hparams"]["query_label"] == "uniform"
    assert record["command"].startswith("fslearn train gnn ")
    config = record["config"]
    # the authors' 5-way 1-shot episodes: 60 tasks of one query per class (300 graphs), Adam 1e-3
    assert (config["n_way"], config["k_shot"], config["n_query"]) == (5, 1, 1)
    assert config["batch_size"] == 60 and config["lr"] == pytest.approx(1e-3)
    assert config["val_every"] > 0
    assert record["episode"] % config["val_every"] == 0  # chosen on validation
    assert {"seed", "hardware", "training_seconds", "device"} <= set(record)
    history = json.loads((folder / "history.json").read_text())
    assert sum("val_accuracy" in h for h in history) >= 5


def test_shipped_gnn_reproduces_its_figures():
    """The first 40 of the stored 1000 5-way 1-shot test episodes, re-evaluated, agree with the
    stored mean within 4 points; the stored figures sit beside Garcia and Bruna's."""
    folder = shipped_checkpoints()["gnn-omniglot-5way"]
    method, _ = load_checkpoint(folder)
    stored = json.loads((folder / "results.json").read_text())
    rows = {(r["n_way"], r["k_shot"]): r for r in stored["results"]}
    assert set(rows) == {(5, 1), (5, 5)}  # one model per N: no 20-way figures
    assert rows[(5, 1)]["paper_accuracy"] == pytest.approx(0.992)
    assert rows[(5, 5)]["paper_accuracy"] == pytest.approx(0.997)
    assert all(r["episodes"] == 1000 for r in rows.values())
    again = evaluate(method, load_omniglot("test", protocol="vinyals"), 5, 1, n_query=15,
                     episodes=40, seed=0)
    assert abs(again.accuracy - rows[(5, 1)]["accuracy"]) < 0.04
