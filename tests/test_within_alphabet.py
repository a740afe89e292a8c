"""Within-alphabet episodes: every class of a task from one alphabet (or script), against the
sampler's invariants, on synthetic names and on Omniglot's test alphabets."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import make_dataset

from fslearn.checkpoints import load_checkpoint
from fslearn.cli import main
from fslearn.data import EpisodeSampler, FewShotDataset
from fslearn.data.dataset import class_alphabet
from fslearn.evaluation import embed_dataset, evaluate


def named(counts: list[int], names: list[str]) -> FewShotDataset:
    data = make_dataset(counts)
    return FewShotDataset(data.images, data.labels, names, "named")


@pytest.mark.parametrize(("name", "alphabet"), [
    ("Greek/character01/rot090", "Greek"), ("Greek/character01", "Greek"),
    ("Canadian_Aboriginal_U+1401", "Canadian_Aboriginal"), ("Greek_U+03B1", "Greek"),
    ("cats", None), ("U+0041", None)])
def test_class_alphabet_reads_omniglot_and_glyph_names(name, alphabet):
    assert class_alphabet(name) == alphabet


def test_every_task_draws_its_classes_and_distractors_from_one_alphabet():
    # alphabets of 2, 3 and 6 classes: only the last two hold 3 classes
    names = ([f"a/{i}" for i in range(2)] + [f"b/{i}" for i in range(3)]
             + [f"c_U+{i:04X}" for i in range(6)])
    data = named([6] * 11, names)
    alphabet_of = [class_alphabet(n) for n in names]
    sampler = EpisodeSampler(data, 2, 1, 1, tasks=4, seed=3, unlabelled=1, distractors=1,
                             within_alphabet=True)
    drawn = Counter()
    for index in range(300):
        indices = sampler.indices(index)
        for task in range(4):
            classes = indices.classes[task].tolist() + indices.distractors[task].tolist()
            assert len(set(classes)) == 3
            alphabets = {alphabet_of[c] for c in classes}
            assert len(alphabets) == 1
            drawn[alphabets.pop()] += 1
            # the images still belong to their classes
            support = data.labels[indices.support[task]].tolist()
            assert support == indices.classes[task].tolist()
    assert set(drawn) == {"b", "c"}
    # the alphabet is chosen uniformly among the eligible ones, whatever their sizes
    assert abs(drawn["b"] / 1200 - 0.5) < 0.05


#: episodes 0-2 of EpisodeSampler(6 classes of 5 images, 3-way 1-shot 2 queries, seed 1) as the
#: sampler drew them before within_alphabet and labelled_fraction existed: (classes, support,
#: query) dataset indices
EPISODES_BEFORE_THE_OPTIONS = [
    ([4, 0, 2], [20, 0, 12], [23, 21, 3, 2, 14, 10]),
    ([1, 4, 0], [7, 24, 2], [8, 5, 22, 23, 1, 0]),
    ([4, 5, 1], [22, 26, 7], [23, 20, 27, 25, 6, 5]),
]


@pytest.mark.parametrize("options", [{}, {"within_alphabet": False},
                                     {"labelled_fraction": 1.0}])
def test_default_episodes_are_those_drawn_before_the_options(options):
    data = named([5] * 6, [f"x/{i}" for i in range(6)])
    sampler = EpisodeSampler(data, 3, 1, 2, seed=1, **options)
    for index, (classes, support, query) in enumerate(EPISODES_BEFORE_THE_OPTIONS):
        drawn = sampler.indices(index)
        assert drawn.classes.tolist() == [classes]
        assert drawn.support.tolist() == [support] and drawn.query.tolist() == [query]
    assert "within_alphabet" not in repr(sampler) and "labelled_fraction" not in repr(sampler)
    assert "within_alphabet=True" in repr(EpisodeSampler(data, 3, 1, 2, within_alphabet=True))


def test_refusals_name_the_numbers_and_the_naming():
    data = named([5] * 5, ["a/0", "a/1", "b/0", "b/1", "b/2"])
    with pytest.raises(ValueError, match=r"need 4 classes of one alphabet, but the largest of "
                                         r"the 2 alphabets of named has 3: lower n_way to at "
                                         r"most 3"):
        EpisodeSampler(data, 4, 1, 1, within_alphabet=True)
    flat = named([5] * 3, ["cats", "dogs", "owls"])
    with pytest.raises(ValueError, match="class 'cats' of named names no alphabet"):
        EpisodeSampler(flat, 2, 1, 1, within_alphabet=True)


def test_within_alphabet_omniglot_episodes_are_harder_for_a_learned_embedding(omniglot_test):
    protonet, _ = load_checkpoint("protonet-omniglot")
    embeddings = embed_dataset(protonet, omniglot_test)
    mixed = evaluate(protonet, omniglot_test, 20, 1, 5, episodes=200, embeddings=embeddings)
    within = evaluate(protonet, omniglot_test, 20, 1, 5, episodes=200, embeddings=embeddings,
                      within_alphabet=True)
    assert within.within_alphabet and not mixed.within_alphabet
    assert within.to_dict()["within_alphabet"] is True
    assert "within_alphabet" not in mixed.to_dict()
    assert "within one alphabet" in str(within)
    # letters of one alphabet look alike: a drop well outside both intervals (measured over
    # 600 episodes: 95.80 +/- 0.24 against 89.08 +/- 0.60)
    assert within.accuracy < mixed.accuracy - 2 * (within.ci95 + mixed.ci95)


def test_cli_evaluate_within_alphabet(capsys, omniglot_root):
    args = ["evaluate", "protonet-omniglot", "--way", "5", "--shot", "1", "--episodes", "20",
            "--data-root", str(omniglot_root), "--json"]
    assert main([*args, "--within-alphabet"]) == 0
    within = json.loads(capsys.readouterr().out)
    assert within["within_alphabet"] is True and within["n_way"] == 5
    assert main(args) == 0
    assert "within_alphabet" not in json.loads(capsys.readouterr().out)


def test_cli_refuses_within_alphabet_for_models_without_alphabets(capsys):
    assert main(["evaluate", "maml-sinusoid", "--shot", "5", "--within-alphabet"]) == 2
    assert "--within-alphabet, --unlabelled and --distractors are for image checkpoints" in (
        capsys.readouterr().err)
    assert main(["evaluate", "mann-omniglot", "--within-alphabet"]) == 2
    assert "--within-alphabet is an option of support/query episodes" in capsys.readouterr().err
