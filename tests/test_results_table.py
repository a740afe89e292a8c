"""``fslearn results`` and :mod:`fslearn.results_table`: every figure of the table is the one in
the shipped files; comparisons on the same episodes; ``fslearn report --write-episodes``."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import torch

from fslearn.checkpoints import load_checkpoint, shipped_checkpoints
from fslearn.cli import main
from fslearn.evaluation import confidence_interval95
from fslearn.results import PAPER_DATASET
from fslearn.results_table import (
    EPISODES_FILE,
    checkpoint_summary,
    core_hours,
    episode_accuracies,
    paired_difference,
    read_episodes,
)


@pytest.fixture(scope="module")
def table() -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["results", "--json"]) == 0
    return json.loads(out.getvalue())


def _files(folder):
    record = json.loads((folder / "checkpoint.json").read_text())
    results = json.loads((folder / "results.json").read_text())
    return record, results


def test_every_shipped_checkpoint_has_a_row(table):
    assert [row["name"] for row in table["checkpoints"]] == list(shipped_checkpoints())
    keys = {
        "name",
        "method",
        "kind",
        "dataset",
        "protocol",
        "train_split",
        "seen_evaluation_alphabets",
        "command",
        "hardware",
        "training_seconds",
        "core_hours",
        "steps",
        "parameters",
        "paper",
        "results",
        "has_episodes",
        "test_time",
    }
    for row in table["checkpoints"]:
        assert keys <= set(row), row["name"]


def test_json_values_are_the_files(table):
    """Each figure, CI, paper figure, gap, cost and time equals what the files say (the
    parameters: what the checkpoint's model holds)."""
    for row in table["checkpoints"]:
        folder = shipped_checkpoints()[row["name"]]
        record, results = _files(folder)
        assert row["method"] == record["method"] and row["command"] == record["command"]
        assert row["training_seconds"] == record["training_seconds"]
        threads = int(re.search(r"(\d+) threads?$", record["hardware"]).group(1))
        assert row["core_hours"] == pytest.approx(record["training_seconds"] * threads / 3600)
        assert row["steps"] == record["episode"] and row["paper"] == results["paper"]
        method, _ = load_checkpoint(folder)
        assert row["parameters"] == sum(p.numel() for p in method.parameters())
        assert row["seen_evaluation_alphabets"] == (
            None
            if record["data"]["dataset"] != "omniglot"
            else record["data"]["protocol"] == "vinyals"
        )
        assert len(row["results"]) == len(results["results"])
        episodes = read_episodes(folder)
        assert row["has_episodes"] == (episodes is not None)
        for ours, stored in zip(row["results"], results["results"], strict=True):
            figure = "mse" if row["kind"] == "regression" else "accuracy"
            paper_key = "paper_mse" if row["kind"] == "regression" else "paper_accuracy"
            assert ours[figure] == stored[figure] and ours["ci95"] == stored["ci95"]
            paper = stored.get(paper_key)
            if row["kind"] == "episodes" and stored["dataset"] != PAPER_DATASET:
                paper = None
            assert ours[paper_key] == paper
            assert ours["gap"] == (None if paper is None else stored[figure] - paper)
            if row["kind"] == "episodes":
                timed = episodes and episode_accuracies(episodes, ours["n_way"], ours["k_shot"])
                assert ours["seconds_per_episode"] == (
                    timed[1]["seconds_per_episode"] if timed else None
                )


def test_stored_episodes_are_the_reported_episodes():
    """Where a shipped checkpoint has episodes.json, its per-episode right answers average to
    the figure of results.json: the same 1000 episodes, re-evaluated."""
    for folder in shipped_checkpoints().values():
        episodes = read_episodes(folder)
        if episodes is None:
            continue
        _, results = _files(folder)
        for row in results["results"]:
            if "k_shot" not in row:
                continue
            accuracies, entry = episode_accuracies(episodes, row["n_way"], row["k_shot"])
            assert (entry["episodes"], entry["seed"], entry["n_query"], entry["dataset"]) == (
                row["episodes"],
                row["seed"],
                row["n_query"],
                row["dataset"],
            )
            assert len(accuracies) == row["episodes"]
            assert float(accuracies.mean()) == pytest.approx(row["accuracy"], abs=1e-6)
            assert confidence_interval95(accuracies) == pytest.approx(row["ci95"], abs=1e-6)
            assert entry["seconds_per_episode"] > 0


def test_text_table(capsys):
    assert main(["results"]) == 0
    out = capsys.readouterr().out
    for name in shipped_checkpoints():
        assert name in out
    assert "N-way K-shot test accuracy" in out and "core-h" in out
    assert "paper (gap)" in out and "mann-omniglot as 5-way 1-shot" in out
    protonet = next(line for line in out.splitlines() if line.startswith("protonet-omniglot"))
    _, results = _files(shipped_checkpoints()["protonet-omniglot"])
    assert f"{100 * results['results'][0]['accuracy']:.2f} ± " in protonet


def test_paired_difference_by_hand():
    a, b = [1.0, 0.5, 0.75], [0.5, 0.5, 0.25]
    mean, ci95 = paired_difference(a, b)
    d = [0.5, 0.0, 0.5]
    sd = math.sqrt(sum((x - 1 / 3) ** 2 for x in d) / 2)
    assert mean == pytest.approx(1 / 3)
    assert ci95 == pytest.approx(1.96 * sd / math.sqrt(3))
    with pytest.raises(ValueError, match="same episodes"):
        paired_difference([1.0, 0.5], b)


def test_pairing_narrows_the_interval_of_correlated_methods():
    """Two methods that share each episode's difficulty: their difference is known far more
    precisely than the two separate intervals suggest."""
    generator = torch.Generator().manual_seed(0)
    difficulty = torch.rand(600, generator=generator, dtype=torch.float64)
    a = 0.9 - 0.3 * difficulty + 0.02 * torch.rand(600, generator=generator, dtype=torch.float64)
    b = a - 0.01
    _, paired = paired_difference(a, b)
    unpaired = math.hypot(confidence_interval95(a), confidence_interval95(b))
    assert paired < unpaired / 5


def test_core_hours_only_where_the_record_says():
    assert core_hours({"training_seconds": 7200, "hardware": "AMD EPYC, 2 threads"}) == 4.0
    assert core_hours({"training_seconds": 3600, "hardware": "Xeon, 1 thread"}) == 1.0
    assert (
        core_hours({"training_seconds": 3600, "hardware": "NVIDIA H100", "device": "cuda"}) is None
    )
    assert core_hours({"hardware": "Xeon, 1 thread"}) is None


def test_report_write_episodes(tmp_path, capsys):
    """A tiny Lake-protocol run: report --write-episodes stores per-episode right answers whose
    means are the figures it prints, and test times; results.json only with --write; and no
    paper figure beside a test set that is not the papers'."""
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "protonet",
                "--protocol",
                "lake",
                "--way",
                "5",
                "--shot",
                "1",
                "--query",
                "2",
                "--episodes",
                "2",
                "--val-every",
                "0",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    copy = tmp_path / "tiny-lake"
    shutil.copytree(out / "best", copy)
    capsys.readouterr()
    assert main(["report", str(copy), "--episodes", "20", "--write-episodes", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert not (copy / "results.json").exists()
    episodes = read_episodes(copy)
    assert episodes["command"].endswith("--episodes 20 --write-episodes --json")
    timing = episodes["timing"]
    assert timing["command"] == episodes["command"] and "CPU time" in timing["how"]
    assert timing["load_average"] is None or timing["load_average"] >= 0
    for row in printed["results"]:
        assert row["paper_accuracy"] is None and row["dataset"] == "omniglot/lake/test"
        accuracies, entry = episode_accuracies(episodes, row["n_way"], row["k_shot"])
        assert entry["queries"] == row["n_way"] * row["n_query"]
        assert all(isinstance(c, int) for c in entry["correct"])
        assert float(accuracies.mean()) == pytest.approx(row["accuracy"], abs=1e-6)
        assert entry["seconds_per_episode"] > 0
    assert main(["report", str(copy), "--episodes", "20", "--write"]) == 0
    summary = checkpoint_summary(copy)
    assert summary["seen_evaluation_alphabets"] is False and summary["has_episodes"]
    assert all(
        r["paper_accuracy"] is None and r["seconds_per_episode"] > 0 for r in summary["results"]
    )


def test_write_episodes_is_refused_for_sinusoids(tmp_path, capsys):
    copy = tmp_path / "sin"
    shutil.copytree(shipped_checkpoints()["maml-sinusoid"], copy)
    assert main(["report", str(copy), "--episodes", "10", "--write-episodes"]) == 2
    assert "sinusoid regression model" in capsys.readouterr().err
    assert not (copy / "episodes.json").exists()


def test_test_time_leaves_the_model_as_it_was():
    """The timing runs in evaluation mode and puts the model back in training mode; a larger
    episode costs more CPU time."""
    from fslearn.data import load_omniglot
    from fslearn.evaluation.timing import seconds_per_episode
    from fslearn.methods import PrototypicalNetwork

    test = load_omniglot("test", "vinyals")
    model = PrototypicalNetwork().train()
    small = seconds_per_episode(model, test, 5, 1, 1, repeats=3)
    large = seconds_per_episode(model, test, 20, 5, 15, repeats=3)
    assert model.training and 0 < small < large


def test_report_write_episodes_of_a_sequence_model(tmp_path, capsys):
    """A sequence model's episodes.json: right answers per episode and presentation (out of
    n_way), whose means are the printed accuracies by presentation."""
    copy = tmp_path / "lstm"
    shutil.copytree(shipped_checkpoints()["lstm-omniglot"], copy)
    (copy / EPISODES_FILE).unlink(missing_ok=True)
    capsys.readouterr()
    assert main(["report", str(copy), "--episodes", "20", "--write-episodes", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    (entry,) = read_episodes(copy)["settings"]
    correct = torch.tensor(entry["correct"], dtype=torch.float64)  # [episodes, presentations]
    assert correct.shape == (20, entry["per_class"]) and entry["queries"] == entry["n_way"]
    by_presentation = (correct / entry["queries"]).mean(0)
    assert by_presentation.tolist() == pytest.approx([r["accuracy"] for r in printed["results"]])
    assert entry["seconds_per_episode"] > 0
