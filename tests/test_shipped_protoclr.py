"""The shipped self-supervised ProtoCLR (section 7.3): made by ProtoTransfer's Omniglot recipe
without a single label, it holds its figures beside the papers' and reproduces them."""

from __future__ import annotations

import json

import pytest

from fslearn.checkpoints import load_checkpoint, shipped_checkpoints
from fslearn.data import load_omniglot
from fslearn.evaluation import evaluate
from fslearn.results import STANDARD_SETTINGS


def test_shipped_protoclr_records_its_recipe():
    """Trained on the training and validation characters' images, upright, with no validation
    (those images are its training set), in ProtoTransfer's 50-image episodes; the final
    weights kept."""
    folder = shipped_checkpoints()["protoclr-omniglot"]
    method, record = load_checkpoint(folder)
    assert method.name == "protoclr"
    assert record["command"].startswith("fslearn train protoclr ")
    assert record["data"]["train_split"] == "trainval" and record["data"]["val_split"] is None
    assert record["data"]["train_rotations"] is False
    config = record["config"]
    assert (config["n_way"], config["k_shot"], config["n_query"]) == (50, 1, 3)
    assert config["sampler"] == {"augment_support": False}
    assert record["episode"] == config["episodes"] and config["val_every"] == 0
    assert {"seed", "hardware", "training_seconds", "device"} <= set(record)
    assert len(json.loads((folder / "history.json").read_text())) > 0


def test_shipped_protoclr_reproduces_its_figures():
    """The first 40 of the stored 1000 5-way 1-shot test episodes, re-evaluated, agree with the
    stored mean within 4 points (their standard error is under 2 points; the same Conv4 with
    random weights scores 57% on 100 of these episodes); the stored figures sit beside
    ProtoTransfer's published ones."""
    folder = shipped_checkpoints()["protoclr-omniglot"]
    method, _ = load_checkpoint(folder)
    stored = json.loads((folder / "results.json").read_text())
    rows = {(r["n_way"], r["k_shot"]): r for r in stored["results"]}
    assert set(rows) == set(STANDARD_SETTINGS)
    assert rows[(5, 1)]["paper_accuracy"] == pytest.approx(0.88)
    assert rows[(5, 5)]["paper_accuracy"] == pytest.approx(0.9648)
    assert all(rows[s]["episodes"] == 1000 for s in rows)
    again = evaluate(method, load_omniglot("test", protocol="vinyals"), 5, 1, n_query=15,
                     episodes=40, seed=0)
    assert abs(again.accuracy - rows[(5, 1)]["accuracy"]) < 0.04
