"""The shipped semi-supervised Prototypical Network (section 7.2): made by Ren et al.'s
protocol as their code runs it, it holds its figures on their test episodes beside their
Table 1, and reproduces them."""

from __future__ import annotations

import json

import pytest

from fslearn.checkpoints import load_checkpoint, shipped_checkpoints
from fslearn.data import load_omniglot
from fslearn.evaluation import evaluate
from fslearn.results import STANDARD_SETTINGS


def test_shipped_semiproto_records_and_reproduces_its_figures():
    """The first 40 of the stored 1000 test episodes with distractors, re-evaluated, agree with
    the stored mean within a margin that a model trained without the protocol's unlabelled
    images or scored without refinement (about 3 points lower here) would exceed."""
    folder = shipped_checkpoints()["semiproto-omniglot"]
    method, record = load_checkpoint(folder)
    assert method.name == "semiproto" and method.refinement == "masked"
    assert record["command"].startswith("fslearn train semiproto --refinement masked ")
    config = record["config"]
    assert config["sampler"] == {"unlabelled": 5, "distractors": 5, "labelled_fraction": 0.1}
    assert (config["n_way"], config["k_shot"], config["n_query"]) == (5, 1, 1)
    assert record["episode"] == config["episodes"] == 20000 and config["val_every"] == 0
    assert {"seed", "hardware", "training_seconds", "device"} <= set(record)
    stored = json.loads((folder / "results.json").read_text())
    assert {(r["n_way"], r["k_shot"]) for r in stored["results"]} == set(STANDARD_SETTINGS)
    extra = stored["extra_results"]
    assert [(r["n_query"], r["unlabelled"], r.get("distractors", 0)) for r in extra] == [
        (14, 5, 0), (14, 5, 5)]
    assert extra[0]["paper_accuracy"] is None  # trained with distractors: that column only
    assert extra[1]["paper_accuracy"] == pytest.approx(1 - 0.0262)
    assert all(r["episodes"] == 1000 and r["seed"] == 0 for r in extra)
    assert len(json.loads((folder / "history.json").read_text())) > 0
    again = evaluate(method, load_omniglot("test", protocol="vinyals"), 5, 1, n_query=14,
                     episodes=40, seed=0, unlabelled=5, distractors=5)
    assert abs(again.accuracy - extra[1]["accuracy"]) < 0.02
