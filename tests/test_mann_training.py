"""The sequence models in the package's one training loop, evaluation, checkpoints and command:
checkpoint round trip, resume equivalence, evaluation by presentation, the CLI end to end on a
tiny run, and one-line errors for bad requests."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import make_dataset, train_interrupted_and_straight

from fslearn.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from fslearn.cli import main
from fslearn.data.sequences import SequenceTasks
from fslearn.evaluation import confidence_interval95, evaluate_sequences
from fslearn.methods import METHODS, build_method
from fslearn.methods.mann import MANN, LSTMBaseline, accuracy_by_presentation
from fslearn.methods.protonet import PrototypicalNetwork
from fslearn.results import PAPER_RESULTS
from fslearn.training import TrainingConfig, config_from_record, train

#: a tiny model: the tests check the plumbing, not learning
TINY = {"controller_size": 6, "memory_slots": 6, "memory_width": 3, "read_heads": 2}
TINY_CLI = ["--controller-size", "6", "--memory-slots", "6", "--memory-width", "3",
            "--read-heads", "2"]


def _tasks(classes: int = 12, per_class: int = 6) -> SequenceTasks:
    """Synthetic classes of 4x4 images, presented at 4x4 (no resampling)."""
    return SequenceTasks(make_dataset([per_class] * classes, image_size=4), image_size=4)


def _model(name: str, tasks: SequenceTasks, n_way: int = 3, labels: str = "one_hot",
           seed: int = 0) -> MANN | LSTMBaseline:
    inputs, outputs = tasks.model_shape(n_way, labels)
    torch.manual_seed(seed)
    sizes = TINY if name == "mann" else {"controller_size": TINY["controller_size"]}
    return build_method(name, input_features=inputs, num_outputs=outputs, **sizes)


SMALL = dict(n_way=3, per_class=4, tasks=2, val_way=3, val_episodes=4, val_every=3,
             checkpoint_every=2, lr=1e-2)


def test_registered_with_hparams_that_rebuild_them():
    assert METHODS["mann"] is MANN and METHODS["lstm"] is LSTMBaseline
    model = _model("mann", _tasks())
    assert build_method("mann", **model.hparams).hparams == model.hparams


@pytest.mark.parametrize("name", ["mann", "lstm"])
def test_checkpoint_round_trip_gives_the_same_outputs(name, tmp_path):
    tasks = _tasks()
    model = _model(name, tasks)
    episode = tasks.sampler(3, 4, batch=2, seed=1).episode(0)
    save_checkpoint(tmp_path / "ck", model, {"note": "round trip"})
    loaded, record = load_checkpoint(tmp_path / "ck")
    assert type(loaded) is type(model) and record["method"] == name
    assert record["hparams"] == model.hparams and not loaded.training
    model.eval()
    assert torch.equal(loaded(episode), model(episode))


@pytest.mark.parametrize("name", ["mann", "lstm"])
def test_an_interrupted_run_resumes_to_the_same_weights(name, tmp_path):
    tasks, val = _tasks(), _tasks(classes=6).dataset
    straight, _ = train_interrupted_and_straight(
        lambda seed: _model(name, tasks, seed=seed), tasks, TrainingConfig(episodes=7, **SMALL),
        tmp_path, val, crash_after=4)
    # validation ran on sequence episodes and picked the best by accuracy over all steps
    assert [e["episode"] for e in straight.history if "val_accuracy" in e] == [3, 6, 7]
    assert straight.best_val_accuracy == max(e["val_accuracy"] for e in straight.history
                                             if "val_accuracy" in e)
    assert all(0 <= e["train_accuracy"] <= 1 for e in straight.history)
    best = read_checkpoint(tmp_path / "straight" / "best").metadata
    assert len(best["metrics"]["val"]["by_presentation"]) == 4


def test_the_history_keeps_validation_by_presentation(tmp_path):
    """Each validation entry holds the accuracy on each presentation (the papers' figures), the
    same as evaluating the saved model on the validation episodes; its mean is the overall
    accuracy (every presentation is one step of each of the n_way classes)."""
    tasks, val = _tasks(), _tasks(classes=6).dataset
    config = TrainingConfig(episodes=3, **SMALL)
    state = train(_model("mann", tasks), tasks, config, tmp_path, val_data=val,
                  progress=False, device="cpu")
    entry = state.history[-1]
    assert len(entry["val_by_presentation"]) == SMALL["per_class"]
    assert sum(entry["val_by_presentation"]) / SMALL["per_class"] == pytest.approx(
        entry["val_accuracy"])
    model, _ = load_checkpoint(tmp_path / "last")
    again = evaluate_sequences(model, tasks.with_dataset(val), 3, SMALL["per_class"], "one_hot",
                               SMALL["val_episodes"], seed=config.seed, device="cpu")
    assert again.by_presentation == pytest.approx(entry["val_by_presentation"], abs=1e-9)


def test_resuming_with_other_sequence_episodes_is_refused(tmp_path):
    tasks = _tasks()
    config = TrainingConfig(episodes=2, **{**SMALL, "val_every": 0})
    train(_model("lstm", tasks), tasks, config, tmp_path, progress=False, device="cpu")
    other = TrainingConfig(episodes=4, **{**SMALL, "val_every": 0, "per_class": 5})
    with pytest.raises(ValueError, match='"per_class": \\[4, 5\\]'):
        train(_model("lstm", tasks), tasks, other, tmp_path, progress=False, device="cpu")


def test_the_loop_refuses_mismatched_models_episodes_and_configs(tmp_path):
    tasks = _tasks()
    config = TrainingConfig(episodes=1, **{**SMALL, "val_every": 0})
    with pytest.raises(ValueError, match="trains on SequenceTasks"):
        train(_model("mann", tasks), tasks.dataset, config, tmp_path, progress=False)
    with pytest.raises(ValueError, match="does not read sequence episodes"):
        train(PrototypicalNetwork(), tasks, config, tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"need per_class in TrainingConfig\.sampler"):
        train(_model("mann", tasks), tasks, TrainingConfig(n_way=3, episodes=1, val_every=0),
              tmp_path, progress=False)
    with pytest.raises(ValueError, match="validation episodes need"):
        train(_model("mann", tasks), tasks, TrainingConfig(episodes=1, **{**SMALL,
              "val_way": 4}), tmp_path, tasks.dataset, progress=False)
    with pytest.raises(ValueError, match="set per_class too"):
        TrainingConfig(labels="string")
    with pytest.raises(ValueError, match="labels must be one of"):
        TrainingConfig(per_class=3, labels="words")


@pytest.mark.parametrize("labels, n_way", [("one_hot", 3), ("string", 4)])
def test_evaluate_sequences_by_presentation_with_cis_over_episodes(labels, n_way):
    tasks = _tasks()
    model = _model("mann", tasks, n_way, labels).eval()
    result = evaluate_sequences(model, tasks, n_way, 4, labels, episodes=7, seed=2,
                                episodes_per_batch=7)
    # the same episodes, scored by the package's pooled score: every (episode, presentation)
    # cell holds n_way steps, so the mean of the per-episode figures is the pooled figure
    batch = tasks.sampler(n_way, 4, batch=7, seed=2, labels=labels, augment=False).episode(0)
    with torch.no_grad():
        expected = accuracy_by_presentation(model(batch), batch, presentations=4)
    torch.testing.assert_close(torch.tensor(result.by_presentation, dtype=torch.float64),
                               expected.double())
    per_episode = torch.tensor(result.per_episode, dtype=torch.float64)
    assert per_episode.shape == (7, 4)
    assert result.by_presentation_ci95 == [confidence_interval95(c) for c in per_episode.T]
    assert result.accuracy == pytest.approx(float(per_episode.mean()))
    assert result.shot_equivalent(1) == result.presentation(2)
    assert "presentation  2" in str(result)
    # batches are cut to the number of episodes asked for
    chunked = evaluate_sequences(model, tasks, n_way, 4, labels, episodes=5, seed=2,
                                 episodes_per_batch=2)
    assert len(chunked.per_episode) == 5 and chunked.episodes == 5
    assert "per_episode" not in chunked.to_dict()


def test_evaluate_sequences_refuses_what_does_not_fit():
    tasks = _tasks()
    with pytest.raises(ValueError, match="does not read sequence episodes"):
        evaluate_sequences(PrototypicalNetwork(), tasks, 3, 4, episodes=2)
    with pytest.raises(ValueError, match="need 20 and 4"):
        evaluate_sequences(_model("lstm", tasks), tasks, 4, 4, episodes=2)
    with pytest.raises(ValueError, match="lower per_class to at most 6"):
        evaluate_sequences(_model("lstm", tasks), tasks, 3, 7, episodes=2)


def test_paper_table_is_santoro_et_al_table_1():
    table = PAPER_RESULTS["sequences"]
    assert table["mann"][5] == {1: 0.364, 2: 0.828, 3: 0.910, 4: 0.926, 5: 0.949, 10: 0.981}
    assert table["lstm"][5] == {1: 0.244, 2: 0.495, 3: 0.553, 4: 0.610, 5: 0.636, 10: 0.625}
    assert table["human"][5] == {1: 0.345, 2: 0.573, 3: 0.701, 4: 0.718, 5: 0.814, 10: 0.924}
    assert table["feedforward"][5][10] == 0.195
    assert PAPER_RESULTS["citations"]["sequences"].startswith("Santoro")


@pytest.fixture(scope="module")
def mann_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mann") / "run"
    assert main(["train", "mann", *TINY_CLI, "--batch", "2", "--episodes", "2", "--val-every",
                 "2", "--val-episodes", "4", "--checkpoint-every", "1", "--threads", "1",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def test_command_line_train_evaluate_report(mann_run, tmp_path, capsys):
    record = load_checkpoint(mann_run / "best")[1]
    config = config_from_record(record["config"])
    assert (config.n_way, config.sampler["per_class"], config.batch_size,
            config.sampler["labels"]) == (5, 10, 2, "one_hot")
    assert config.lr_gamma == 1.0  # sequence models keep a constant rate by default
    assert record["hparams"]["input_features"] == 20 * 20 + 5
    assert record["data"]["sequence"]["image_size"] == 20
    assert (mann_run / "last" / "checkpoint.json").is_file()
    capsys.readouterr()

    assert main(["evaluate", str(mann_run), "--episodes", "6", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["by_presentation"]) == len(result["by_presentation_ci95"]) == 10
    assert (result["episodes"], result["n_way"], result["dataset"]) == (
        6, 5, "omniglot/vinyals/test")
    assert [(r["k_shot"], r["presentation"]) for r in result["shot_equivalents"]] == [
        (1, 2), (5, 6)]
    assert "one step late" in result["note"]

    copy = tmp_path / "ck"
    shutil.copytree(mann_run / "best", copy)
    assert main(["report", str(copy), "--episodes", "6", "--write"]) == 0
    out = capsys.readouterr().out
    assert "paper mann" in out and "98.1" in out and "5-way 5-shot (6th presentation)" in out
    assert "paper human" in out and "92.4" in out
    report = json.loads((copy / "results.json").read_text())
    assert [r["paper_accuracy"] for r in report["results"]] == [
        0.364, 0.828, 0.910, 0.926, 0.949, None, None, None, None, 0.981]
    assert report["paper"].startswith("Santoro") and report["command"].startswith(
        "fslearn report")


def test_a_finished_command_line_run_resumes_and_continues(mann_run, capsys):
    argv = ["train", "mann", *TINY_CLI, "--batch", "2", "--val-every", "2", "--val-episodes",
            "4", "--checkpoint-every", "1", "--threads", "1", "--out", str(mann_run),
            "--no-progress"]
    assert main([*argv, "--episodes", "3"]) == 0
    assert read_checkpoint(mann_run / "last").metadata["episode"] == 3
    assert main([*argv, "--episodes", "3", "--per-class", "5"]) == 2
    assert "another config" in capsys.readouterr().err


def test_command_line_string_labels_lstm(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "lstm", "--labels", "string", "--way", "15", "--per-class", "2",
                 "--controller-size", "6", "--batch", "2", "--episodes", "1", "--val-every", "0",
                 "--out", str(out), "--no-progress"]) == 0
    assert load_checkpoint(out / "best")[1]["hparams"]["num_outputs"] == 25
    capsys.readouterr()
    assert main(["report", str(out), "--episodes", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == "string" and report["n_way"] == 15
    assert all(r["paper_accuracy"] is None for r in report["results"])  # not the paper's task


@pytest.mark.parametrize("argv, message", [
    (["train", "mann", "--per-class", "30"], "per_class=30 drawings of each class are needed"),
    (["train", "mann", "--labels", "words"], "--labels must be one of one_hot, string, got "
     "'words'"),
    (["train", "protonet", "--labels", "string", "--drawings", "3"], "--per-class, --labels are "
     "options of the sequence methods (mann, lstm), not of protonet"),
    (["train", "lstm", "--memory-slots", "3"], "--memory-slots is an option of the method "
     "(mann), not of lstm"),
    (["train", "mann", "--shot", "2"], "--shot shapes support/query episodes"),
    (["train", "mann", "--inner-steps", "2"], "--inner-steps is an option of the "
     "optimisation-based methods"),
    (["train", "mann", "--val-way", "6"], "pass --val-way 5"),
    (["train", "mann", "--read-heads", "0"], "--read-heads must be a positive integer"),
    (["train", "mann", "--sinusoid"], "--sinusoid shapes support/query episodes"),
])
def test_bad_requests_are_one_line_errors(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_bad_evaluation_requests_are_one_line_errors(mann_run, capsys):
    for argv, message in (
            (["--shot", "1"], "--shot is an option of support/query episodes"),
            (["--per-class", "30"], "lower per_class to at most 20"),
            (["--way", "6"], "need 406 and 6"),
    ):
        assert main(["evaluate", str(mann_run), "--episodes", "1000", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["evaluate", "protonet-omniglot", "--way", "5", "--shot", "1",
                 "--per-class", "3"]) == 2
    assert "--per-class is for the sequence models" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["mann-omniglot", "lstm-omniglot"])
def test_shipped_sequence_checkpoints_record_and_reproduce_their_figures(name):
    """The shipped MANN and LSTM say how they were made (the paper's 5-way one-hot episodes of 10
    drawings, batches of 16), hold their test figures by presentation over 1000 episodes beside
    Santoro et al.'s and their training history, and reproduce them: the first episodes of the
    same test stream, re-evaluated, agree with the stored means within a margin that float
    rounding never reaches and a wrong model or protocol exceeds (an untrained or label-blind
    model is at chance, 20%, after the first presentation; the trained ones are far above)."""
    from fslearn.checkpoints import shipped_checkpoints
    from fslearn.data import load_omniglot

    method_name = name.split("-")[0]
    folder = shipped_checkpoints()[name]
    method, record = load_checkpoint(folder)
    assert method.name == method_name
    assert record["command"].startswith(f"fslearn train {method_name} --way 5 --per-class 10 "
                                        f"--batch 16")
    config = record["config"]
    parsed = config_from_record(config)
    assert (parsed.n_way, parsed.batch_size, parsed.sampler) == (
        5, 16, {"per_class": 10, "labels": "one_hot"})
    if "per_class" in config:  # a record from before the sampler's settings were nested
        assert (config["n_way"], config["per_class"], config["tasks"], config["labels"]) == (
            5, 10, 16, "one_hot")
        assert parsed == TrainingConfig(
            n_way=5, batch_size=16, sampler={"per_class": 10, "labels": "one_hot"},
            **{k: v for k, v in config.items()
               if k not in ("n_way", "tasks", "per_class", "labels", "pairs_per_step",
                            "batch_size")})
    else:
        assert TrainingConfig(**config) == parsed
    assert record["data"]["sequence"]["image_size"] == 20
    assert {"seed", "hardware", "training_seconds", "device", "episode"} <= set(record)
    history = json.loads((folder / "history.json").read_text())
    assert history and history[-1]["episode"] >= record["episode"]
    assert any(h.get("val_accuracy") is not None for h in history)

    stored = json.loads((folder / "results.json").read_text())
    assert (stored["episodes"], stored["n_way"], stored["per_class"], stored["labels"]) == (
        1000, 5, 10, "one_hot")
    paper = PAPER_RESULTS["sequences"][method_name][5]
    assert [r["paper_accuracy"] for r in stored["results"]] == [paper.get(k) for k in range(1, 11)]
    assert [(r["k_shot"], r["presentation"]) for r in stored["shot_equivalents"]] == [
        (1, 2), (5, 6)]
    accuracy = [r["accuracy"] for r in stored["results"]]
    assert accuracy[9] > 0.5  # trained: well above chance by the 10th presentation

    again = evaluate_sequences(method, SequenceTasks(load_omniglot("test", protocol="vinyals")),
                               episodes=100, seed=0)
    for k in (2, 6, 10):
        assert abs(again.by_presentation[k - 1] - accuracy[k - 1]) < 0.06, k
