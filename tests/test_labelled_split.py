"""The fixed labelled split of Ren et al.'s semi-supervised training episodes, against its
invariants: labels shown only from the labelled part, unlabelled images only from the rest, the
same split in every episode, the authors' int(count * fraction) labelled images per class."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_dataset

from fslearn.cli import main
from fslearn.data import EpisodeSampler
from fslearn.data.episodes import labelled_split
from fslearn.methods.semi_supervised import SemiSupervisedPrototypes


def test_the_split_keeps_int_count_times_fraction_of_every_class_and_loses_no_image():
    data = make_dataset([20, 7, 10, 13])
    table, counts = (t.numpy() for t in data.indices_by_class())
    (labelled, kept), (hidden, rest) = labelled_split(table, counts, 0.1, seed=3)
    assert kept.tolist() == [2, 0, 1, 1] and rest.tolist() == [18, 7, 9, 12]
    for label, count in enumerate(counts):
        shown = set(labelled[label, : kept[label]].tolist())
        others = set(hidden[label, : rest[label]].tolist())
        assert not shown & others
        assert shown | others == set(table[label, :count].tolist())
    again = labelled_split(table, counts, 0.1, seed=3)
    assert np.array_equal(again[0][0], labelled)
    assert not np.array_equal(labelled_split(table, counts, 0.5, seed=4)[0][0][:, :5],
                              labelled_split(table, counts, 0.5, seed=3)[0][0][:, :5])


def test_episodes_show_labels_only_from_the_labelled_part():
    data = make_dataset([20] * 12)
    sampler = EpisodeSampler(data, 3, 1, 1, tasks=2, seed=5, unlabelled=4, distractors=2,
                             labelled_fraction=0.1)
    table, counts = (t.numpy() for t in data.indices_by_class())
    (labelled, kept), _ = labelled_split(table, counts, 0.1, seed=5)
    labelled_images = {int(i) for row, k in zip(labelled, kept, strict=True) for i in row[:k]}
    shown_per_class: dict[int, set[int]] = {}
    for index in range(200):
        episode = sampler.indices(index)
        shown = torch.cat([episode.support, episode.query], dim=1)
        assert set(shown.flatten().tolist()) <= labelled_images
        assert not set(episode.unlabelled.flatten().tolist()) & labelled_images
        # every unlabelled image belongs to an episode class or a distractor of its task
        for task in range(2):
            drawn = set(episode.classes[task].tolist()) | set(episode.distractors[task].tolist())
            assert set(data.labels[episode.unlabelled[task]].tolist()) <= drawn
        for image in shown.flatten().tolist():
            shown_per_class.setdefault(int(data.labels[image]), set()).add(image)
    # over many episodes each class shows exactly its 2 labelled drawings, never a third
    assert {len(images) for images in shown_per_class.values()} == {2}


def test_refusals_name_what_is_short():
    data = make_dataset([20] * 6)
    with pytest.raises(ValueError, match=r"labelled_fraction must be a fraction in \(0, 1\]"):
        EpisodeSampler(data, 2, 1, 1, labelled_fraction=0)
    with pytest.raises(ValueError, match=r"leaves class 'class0' of synthetic 2 labelled images, "
                                         r"but k_shot \+ n_query = 3 are drawn from them"):
        EpisodeSampler(data, 2, 1, 2, labelled_fraction=0.1)
    with pytest.raises(ValueError, match=r"2 unlabelled images, but unlabelled = 3"):
        EpisodeSampler(data, 2, 1, 1, unlabelled=3, labelled_fraction=0.9)
    assert "labelled_fraction=0.1" in repr(EpisodeSampler(data, 2, 1, 1, labelled_fraction=0.1))


def test_semiproto_trains_on_ren_et_als_episodes_by_default(tmp_path):
    defaults = SemiSupervisedPrototypes.training_defaults
    assert (defaults["n_way"], defaults["k_shot"], defaults["n_query"]) == (5, 1, 1)
    assert dict(defaults["sampler"]) == {"unlabelled": 5, "distractors": 5,
                                         "labelled_fraction": 0.1}
    out = tmp_path / "run"
    assert main(["train", "semiproto", "--episodes", "2", "--val-every", "0", "--out", str(out),
                 "--no-progress"]) == 0
    record = json.loads((out / "last" / "checkpoint.json").read_text())
    assert record["config"]["sampler"] == {"unlabelled": 5, "distractors": 5,
                                           "labelled_fraction": 0.1}
    assert record["config"]["n_query"] == 1


def test_evaluate_gives_test_episodes_unlabelled_images_for_the_methods_that_use_them(
        tmp_path, capsys, omniglot_root):
    out = tmp_path / "run"
    assert main(["train", "semiproto", "--episodes", "2", "--val-every", "0", "--out", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    # Ren et al.'s test episodes: 1 support, 14 queries and 5 unlabelled images of each class
    args = ["evaluate", str(out), "--way", "5", "--shot", "1", "--query", "14", "--episodes",
            "4", "--data-root", str(omniglot_root), "--json"]
    assert main([*args, "--unlabelled", "5", "--distractors", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["unlabelled"], result["distractors"], result["n_query"]) == (5, 5, 14)
    assert main(args) == 0
    assert "unlabelled" not in json.loads(capsys.readouterr().out)
    assert main(["evaluate", "protonet-omniglot", "--way", "5", "--shot", "1",
                 "--unlabelled", "5"]) == 2
    assert "which protonet does not use" in capsys.readouterr().err


@pytest.mark.parametrize(("refinement", "sampler", "expected"), [
    # (unlabelled, distractors, paper accuracy) of each extra setting
    ("masked", {"unlabelled": 5, "distractors": 5}, [(5, 0, None), (5, 5, 1 - 0.0262)]),
    ("cluster", {"unlabelled": 5, "distractors": 0}, [(5, 0, 1 - 0.0218), (5, 5, None)]),
    ("soft", {"unlabelled": 0, "distractors": 0},
     [(0, 0, 1 - 0.0516), (5, 0, 1 - 0.0235), (5, 5, 1 - 0.0470)]),
])
def test_report_sets_ren_et_als_row_beside_the_matching_test_episodes(refinement, sampler,
                                                                       expected):
    from fslearn.training_config import TrainingConfig

    settings = SemiSupervisedPrototypes(refinement=refinement).extra_test_settings(
        TrainingConfig(sampler=sampler))
    assert [(s["unlabelled"], s["distractors"]) for s in settings] == [e[:2] for e in expected]
    for setting, (_, _, paper) in zip(settings, expected, strict=True):
        assert (setting["n_way"], setting["k_shot"], setting["n_query"]) == (5, 1, 14)
        assert setting["paper_accuracy"] == pytest.approx(paper) if paper else (
            setting["paper_accuracy"] is None)


def test_fslearn_report_adds_the_methods_own_test_episodes(tmp_path, capsys, omniglot_root):
    out = tmp_path / "run"
    assert main(["train", "semiproto", "--episodes", "2", "--val-every", "0", "--out", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["report", str(out), "--episodes", "4", "--data-root", str(omniglot_root),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["n_way"], r["k_shot"]) for r in report["results"]] == [(5, 1), (5, 5), (20, 1),
                                                                      (20, 5)]
    extra = report["extra_results"]
    assert [(r["n_query"], r["unlabelled"], r.get("distractors", 0)) for r in extra] == [
        (14, 5, 0), (14, 5, 5)]
    assert extra[0]["paper_accuracy"] is None
    assert extra[1]["paper_accuracy"] == pytest.approx(1 - 0.0459)  # soft, with distractors
    # a method without its own test episodes reports as before
    assert main(["report", "protonet-omniglot", "--episodes", "2", "--data-root",
                 str(omniglot_root), "--json"]) == 0
    assert "extra_results" not in json.loads(capsys.readouterr().out)


def test_extra_report_rows_keep_each_episodes_accuracy_on_request():
    from fslearn.evaluation.classification import extra_report_rows

    data = make_dataset([20] * 12, image_size=28)
    method = SemiSupervisedPrototypes(refinement="soft")
    settings = [{"n_way": 3, "k_shot": 1, "n_query": 2, "unlabelled": 2, "distractors": 1,
                 "paper_accuracy": 0.9}]
    rows = extra_report_rows(method, data, settings, with_paper=False, episodes=7, seed=1,
                             per_episode=True)
    assert len(rows[0]["per_episode"]) == 7 and rows[0]["paper_accuracy"] is None
    assert sum(rows[0]["per_episode"]) / 7 == pytest.approx(rows[0]["accuracy"])
    plain = extra_report_rows(method, data, settings, with_paper=True, episodes=7, seed=1)
    assert "per_episode" not in plain[0] and plain[0]["paper_accuracy"] == 0.9
    assert plain[0]["accuracy"] == rows[0]["accuracy"]
