"""The fslearn command, end to end on real data (tiny runs)."""

from __future__ import annotations

import json
import shutil

import pytest

from fslearn.checkpoints import read_checkpoint
from fslearn.cli import main


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    status = main(["train", "protonet", "--protocol", "vinyals", "--way", "5", "--shot", "1",
                   "--query", "2", "--episodes", "4", "--val-every", "2", "--val-episodes",
                   "10", "--checkpoint-every", "2", "--out", str(out), "--no-progress"])
    assert status == 0
    return out


def test_train_records_the_command_and_data(trained_run):
    record = json.loads((trained_run / "best" / "checkpoint.json").read_text())
    assert record["command"].startswith("fslearn train protonet --protocol vinyals --way 5")
    assert record["data"] == {"dataset": "omniglot", "protocol": "vinyals",
                              "train_split": "train", "val_split": "val", "image_size": 28}
    assert record["seed"] == 0 and record["config"]["n_way"] == 5
    assert record["config"]["lr_gamma"] == 0.5  # the step decay of Snell et al.'s recipe
    assert "hardware" in record


def test_evaluate_json(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "--way", "5", "--shot", "1", "--episodes", "20",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["ci95"] <= 1.0
    assert (result["n_way"], result["k_shot"], result["episodes"]) == (5, 1, 20)
    assert result["dataset"] == "omniglot/vinyals/test"


def test_evaluate_text_and_protocol_override(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "--way", "5", "--shot", "1", "--episodes", "10",
                 "--protocol", "lake"]) == 0
    captured = capsys.readouterr()
    assert "5-way 1-shot:" in captured.out and "omniglot/lake/test" in captured.out
    assert "at least 600" in captured.err


def test_report_writes_results(trained_run, tmp_path, capsys):
    copy = tmp_path / "ck"
    shutil.copytree(trained_run / "best", copy)
    assert main(["report", str(copy), "--episodes", "10", "--write"]) == 0
    results = json.loads((copy / "results.json").read_text())
    assert [(r["n_way"], r["k_shot"]) for r in results["results"]] == [
        (5, 1), (5, 5), (20, 1), (20, 5)]
    assert results["results"][0]["paper_accuracy"] == 0.988
    assert results["command"].startswith("fslearn report")


def test_list_checkpoints(capsys):
    assert main(["checkpoints", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert "protonet-omniglot" in [item["name"] for item in listing]
    assert main(["checkpoints"]) == 0
    assert "protonet-omniglot: protonet on omniglot" in capsys.readouterr().out


def test_unknown_checkpoint_is_a_clear_error(capsys):
    assert main(["evaluate", "no-such-model", "--way", "5", "--shot", "1"]) == 2
    assert "No checkpoint at 'no-such-model'" in capsys.readouterr().err


def test_impossible_episode_is_a_clear_error(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "--way", "5", "--shot", "10", "--query", "15",
                 "--episodes", "10"]) == 2
    assert "10 + 15 = 25 images per class" in capsys.readouterr().err


def test_too_small_images_are_a_clear_error(tmp_path, capsys):
    assert main(["train", "protonet", "--image-size", "12", "--episodes", "1", "--val-split",
                 "none", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "at least 16x16 pixels; got 12x12" in capsys.readouterr().err


def test_validating_on_training_classes_is_refused(tmp_path, capsys):
    assert main(["train", "protonet", "--train-split", "trainval", "--out", str(tmp_path)]) == 2
    assert "--val-split none" in capsys.readouterr().err


@pytest.mark.parametrize("where, words", [
    (["--protocol", "lake"], "the lake protocol has none"),
    (["--data", "."], "--no-rotations choose Omniglot data"),
])
def test_no_rotations_outside_vinyals_is_refused(tmp_path, capsys, where, words):
    assert main(["train", "protonet", "--no-rotations", *where, "--episodes", "1",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_upright_training_is_recorded_and_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "protonet", "--no-rotations", "--way", "5", "--query", "1",
                 "--episodes", "1", "--val-split", "none", "--no-progress"]) == 0
    run = tmp_path / "runs" / "protonet-vinyals-upright-5w1s-seed0"
    record = read_checkpoint(run / "last").metadata
    assert record["data"]["train_rotations"] is False
    assert "omniglot/vinyals/train-upright (1028 classes)" in capsys.readouterr().err


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "protonet", "--data-root", str(tmp_path), "--episodes", "1"]) == 2
    # no download happens in tests: the offline message is checked in test_download.py;
    # here the data root is empty and the download fails or is refused
    err = capsys.readouterr().err
    assert "Omniglot was not found" in err


def test_cuda_on_a_cpu_machine(capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["evaluate", "protonet-omniglot", "--way", "5", "--shot", "1", "--device",
                 "cuda"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "--device cpu" in err and err.count("\n") == 1


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "fslearn", "--help"], capture_output=True,
                          text=True, check=True)
    assert "train" in done.stdout and "evaluate" in done.stdout
