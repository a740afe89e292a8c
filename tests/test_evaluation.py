"""The 95% confidence interval and the evaluation function."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_dataset
from torch import nn

from fslearn.data import EpisodeSampler, FewShotDataset
from fslearn.evaluation import confidence_interval95, confusion_counts, evaluate
from fslearn.methods import FewShotMethod, PrototypicalNetwork


def test_confidence_interval_by_hand():
    accuracies = [0.5, 1.0, 0.75, 1.0]
    # mean 0.8125; squared deviations 0.09765625 + 0.03515625 + 0.00390625 + 0.03515625
    # = 0.171875; sample variance 0.171875 / 3; CI = 1.96 * sqrt(0.0572916...) / sqrt(4)
    expected = 1.96 * math.sqrt(0.171875 / 3) / 2
    assert confidence_interval95(accuracies) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.234570, abs=1e-6)


def test_confidence_interval_needs_two_values():
    with pytest.raises(ValueError, match="at least 2"):
        confidence_interval95([0.9])


class AlwaysFirstClass(FewShotMethod):
    name = "always-first"

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, episode):
        logits = torch.zeros(episode.tasks, episode.query_y.shape[1], episode.n_way)
        logits[..., 0] = 1
        return logits


def _constant_class_dataset(classes: int, per_class: int) -> FewShotDataset:
    # every image of class c is the constant c * 10: trivially separable
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = (labels * 10).to(torch.uint8)[:, None, None, None].expand(-1, 1, 28, 28)
    return FewShotDataset(images.contiguous(), labels, [str(c) for c in range(classes)], "const")


def test_constant_guess_scores_exactly_one_over_n_way():
    dataset = make_dataset([10] * 12, image_size=28)
    result = evaluate(AlwaysFirstClass(), dataset, n_way=4, k_shot=1, n_query=3, episodes=20)
    assert result.accuracy == pytest.approx(0.25)
    assert result.ci95 == pytest.approx(0.0)
    assert len(result.per_episode) == 20


def test_separable_classes_score_perfectly():
    torch.manual_seed(0)
    result = evaluate(PrototypicalNetwork(), _constant_class_dataset(20, 8), n_way=5, k_shot=2,
                      n_query=3, episodes=30)
    assert result.accuracy == 1.0 and result.ci95 == 0.0


def test_embedding_once_gives_the_same_per_episode_accuracies(omniglot_val):
    torch.manual_seed(0)
    method = PrototypicalNetwork()
    cached = evaluate(method, omniglot_val, 20, 1, n_query=5, episodes=40, embed_once=True)
    direct = evaluate(method, omniglot_val, 20, 1, n_query=5, episodes=40, embed_once=False,
                      episodes_per_batch=7)
    assert cached.per_episode == pytest.approx(direct.per_episode, abs=1e-9)
    assert 0.05 < cached.accuracy < 1.0  # a random network is weak, not hopeless


def test_precomputed_embeddings_give_the_same_result(omniglot_small):
    from fslearn.evaluation import embed_dataset

    torch.manual_seed(0)
    method = PrototypicalNetwork().eval()
    embeddings = embed_dataset(method, omniglot_small)
    reused = evaluate(method, omniglot_small, 5, 2, episodes=30, embeddings=embeddings)
    fresh = evaluate(method, omniglot_small, 5, 2, episodes=30)
    assert reused.per_episode == fresh.per_episode
    with pytest.raises(ValueError, match="embed_dataset"):
        evaluate(method, omniglot_small, 5, 2, episodes=30, embeddings=embeddings[:-1])


def test_evaluation_restores_training_mode_and_touches_no_statistics(omniglot_val):
    method = PrototypicalNetwork().train()
    before = {k: v.clone() for k, v in method.state_dict().items()}
    evaluate(method, omniglot_val, 5, 1, episodes=5)
    assert method.training
    for key, value in method.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_result_formatting_and_dict():
    dataset = make_dataset([10] * 12, image_size=28)
    result = evaluate(AlwaysFirstClass(), dataset, n_way=4, k_shot=1, n_query=3, episodes=20)
    assert "4-way 1-shot: 25.00% +/- 0.00%" in str(result)
    assert set(result.to_dict()) >= {"accuracy", "ci95", "episodes", "n_way", "k_shot"}
    assert "per_episode" not in result.to_dict()


def test_too_few_episodes_and_embed_once_misuse():
    dataset = make_dataset([10] * 12, image_size=28)
    with pytest.raises(ValueError, match="at least 2"):
        evaluate(AlwaysFirstClass(), dataset, 4, 1, episodes=1)
    with pytest.raises(ValueError, match="MetricMethod"):
        evaluate(AlwaysFirstClass(), dataset, 4, 1, n_query=3, episodes=5, embed_once=True)


def test_confusion_counts_of_a_constant_guess_by_hand():
    # AlwaysFirstClass labels every query as the episode's first class, so each episode adds
    # n_query to the diagonal entry of its first class and n_query to [c, first] for the others.
    dataset = make_dataset([10] * 12, image_size=28)
    counts = confusion_counts(AlwaysFirstClass(), dataset, n_way=4, k_shot=1, n_query=3,
                              episodes=20, episodes_per_batch=6)
    expected = torch.zeros(12, 12, dtype=torch.int64)
    sampler = EpisodeSampler(dataset, 4, 1, 3, seed=0)
    for i in range(20):
        first, *others = sampler.indices(i).classes[0].tolist()
        expected[first, first] += 3
        for other in others:
            expected[other, first] += 3
    assert torch.equal(counts, expected)
    assert int(counts.sum()) == 20 * 4 * 3


def test_confusion_counts_agree_with_a_loop_over_episodes(omniglot_val):
    torch.manual_seed(0)
    method = PrototypicalNetwork().eval()
    counts = confusion_counts(method, omniglot_val, 10, 1, n_query=4, episodes=12,
                              episodes_per_batch=5)
    expected = torch.zeros_like(counts)
    sampler = EpisodeSampler(omniglot_val, 10, 1, 4, seed=0)
    with torch.no_grad():
        for i in range(12):
            indices = sampler.indices(i)
            predicted = method(indices.gather(omniglot_val.images)).argmax(-1)[0]
            classes = indices.classes[0]
            for true_label, predicted_label in zip(indices.labels(4)[0], predicted, strict=True):
                expected[classes[true_label], classes[predicted_label]] += 1
    assert torch.equal(counts, expected)
    accuracy = evaluate(method, omniglot_val, 10, 1, n_query=4, episodes=12).accuracy
    assert counts.diagonal().sum() / counts.sum() == pytest.approx(accuracy)
    assert 0 < counts.diagonal().sum() < counts.sum()  # a random network makes some mistakes
