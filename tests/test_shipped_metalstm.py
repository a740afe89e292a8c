"""The shipped Meta-LSTM (issue 24): the authors' Omniglot 5-way 1-shot configuration, its
record, and its figures reproduced."""

from __future__ import annotations

import json

from fslearn.checkpoints import load_checkpoint, shipped_checkpoints
from fslearn.data import load_omniglot
from fslearn.evaluation import evaluate


def test_shipped_metalstm_records_its_recipe():
    folder = shipped_checkpoints()["metalstm-omniglot-5way"]
    method, record = load_checkpoint(folder)
    assert method.name == "metalstm"
    hparams = record["hparams"]
    # the authors' train-omniglot-1shot-5class config: 15 updates on the 5 support images, an
    # LSTM of 20 units, the meta-gradient clipped to 0.25; MAML's Conv4 as the learner
    assert (hparams["inner_steps"], hparams["inner_batch"]) == (15, None)
    assert hparams["hidden_size"] == 20
    assert hparams["max_grad_norm"] == 0.25 and hparams["hidden_channels"] == 64
    assert record["command"].startswith("fslearn train metalstm ")
    config = record["config"]
    assert (config["n_way"], config["k_shot"], config["batch_size"]) == (5, 1, 1)
    assert config["lr"] == 1e-3 and config["lr_gamma"] == 1.0
    assert config["val_every"] > 0 and record["episode"] % config["val_every"] == 0
    assert {"seed", "hardware", "training_seconds", "device"} <= set(record)
    history = json.loads((folder / "history.json").read_text())
    assert sum("val_accuracy" in h for h in history) >= 5


def test_shipped_metalstm_reproduces_its_figures():
    """The first 20 of the stored 1000 5-way 1-shot test episodes, re-evaluated, agree with the
    stored mean within 6 points; no paper figure is set beside them (mini-ImageNet only)."""
    folder = shipped_checkpoints()["metalstm-omniglot-5way"]
    method, _ = load_checkpoint(folder)
    stored = json.loads((folder / "results.json").read_text())
    rows = {(r["n_way"], r["k_shot"]): r for r in stored["results"]}
    assert set(rows) == {(5, 1), (5, 5)}
    assert all(r["episodes"] == 1000 and r.get("paper_accuracy") is None for r in rows.values())
    again = evaluate(method, load_omniglot("test", protocol="vinyals"), 5, 1, n_query=15,
                     episodes=20, seed=0)
    assert abs(again.accuracy - rows[(5, 1)]["accuracy"]) < 0.06
