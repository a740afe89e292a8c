"""Semi-supervised prototypes (Ren et al. 2018): the soft k-means step by hand, the distractor
cluster, the mask, the sampler's unlabelled images and distractors, training and resuming."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import make_dataset, train_interrupted_and_straight

from fslearn.checkpoints import load_checkpoint
from fslearn.cli import main
from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.methods import METHODS, PrototypicalNetwork, SemiSupervisedPrototypes
from fslearn.methods.semi_supervised import (
    cluster_assignments,
    distance_statistics,
    refine_prototypes,
    soft_assignments,
)
from fslearn.results import PAPER_RESULTS
from fslearn.training import TrainingConfig


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def _vectors(refinement: str = "soft") -> SemiSupervisedPrototypes:
    return SemiSupervisedPrototypes(Identity(), refinement=refinement).double()


def _episode(support, support_y, query, unlabelled, n_way=2) -> Episode:
    as_t = lambda rows: torch.tensor(rows, dtype=torch.float64).unsqueeze(0)  # noqa: E731
    query_t = as_t(query)
    return Episode(as_t(support), torch.tensor([support_y]), query_t,
                   torch.zeros(1, query_t.shape[1], dtype=torch.long),
                   torch.arange(n_way).unsqueeze(0), n_way,
                   unlabelled_x=None if unlabelled is None else as_t(unlabelled))


def test_one_soft_kmeans_step_by_hand():
    # class 0 at (0, 0), class 1 at (2, 0); unlabelled (1, 0) is halfway, (0, 1) near class 0
    episode = _episode([[0, 0], [2, 0]], [0, 1], [[0.5, 0]], [[1, 0], [0, 1]])
    # (0, 1): squared distances 1 and 5, so weights e^-1 / (e^-1 + e^-5) and the rest
    w = 1 / (1 + math.exp(-4))
    p0 = ((0.5 * 1 + w * 0) / (1 + 0.5 + w), (0.5 * 0 + w * 1) / (1 + 0.5 + w))
    p1 = ((2 + 0.5 * 1 + (1 - w) * 0) / (1 + 0.5 + 1 - w), (1 - w) / (1 + 0.5 + 1 - w))
    expected = torch.tensor([[p0, p1]], dtype=torch.float64)
    method = _vectors()
    z = episode.support_x
    got = method.refined_prototypes(z, episode.support_y, episode.unlabelled_x, 2)
    torch.testing.assert_close(got, expected)
    # the scores are minus the squared distances of the query to the refined prototypes
    query = torch.tensor([0.5, 0.0], dtype=torch.float64)
    torch.testing.assert_close(method(episode)[0, 0],
                               -((expected[0] - query) ** 2).sum(-1))


def test_the_assignments_are_a_softmax_over_classes():
    centres = torch.tensor([[[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]])
    points = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    weights = soft_assignments(centres, points)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2))
    d = torch.tensor([[1.0, 4.0, 10.0], [4.0, 13.0, 1.0]])
    torch.testing.assert_close(weights[0], (-d).softmax(-1))


def test_without_unlabelled_images_it_is_a_prototypical_network():
    torch.manual_seed(0)
    support, query = torch.randn(1, 6, 4, dtype=torch.float64), torch.randn(1, 3, 4,
                                                                           dtype=torch.float64)
    y = torch.tensor([[0, 0, 1, 1, 2, 2]])
    episode = Episode(support, y, query, torch.zeros(1, 3, dtype=torch.long),
                      torch.arange(3)[None], 3)
    for refinement in ("soft", "cluster", "masked"):
        torch.testing.assert_close(_vectors(refinement)(episode),
                                   PrototypicalNetwork(Identity()).double()(episode))


def test_the_distractor_cluster_by_hand():
    centres = torch.tensor([[[4.0, 0.0]]], dtype=torch.float64)
    point = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)
    log_r = torch.tensor(math.log(2.0), dtype=torch.float64)
    # class: -9 / 2 - log 1; distractor at the origin, radius 2: -1 / 8 - log 2
    logits = torch.tensor([-4.5, -1 / 8 - math.log(2.0)], dtype=torch.float64)
    torch.testing.assert_close(cluster_assignments(centres, point, log_r)[0, 0],
                               logits.softmax(-1))


def test_the_distractor_cluster_keeps_far_images_out_of_the_prototypes():
    # an unlabelled image at the origin, far from both classes: soft k-means drags the
    # prototypes towards it, the distractor cluster (radius 100) takes it
    episode = _episode([[10, 0], [0, 10]], [0, 1], [[10, 0]], [[0, 0]])
    z, y, u = episode.support_x, episode.support_y, episode.unlabelled_x
    soft = _vectors("soft").refined_prototypes(z, y, u, 2)
    cluster = _vectors("cluster").refined_prototypes(z, y, u, 2)
    assert (soft - z).abs().max() > 3
    assert (cluster - z).abs().max() < 1e-6


def test_the_refinement_is_a_weighted_mean():
    z = torch.tensor([[[0.0, 0.0], [2.0, 2.0]]])
    u = torch.tensor([[[4.0, 0.0], [0.0, 4.0]]])
    weights = torch.tensor([[[1.0, 0.0], [0.25, 0.5]]])
    got = refine_prototypes(z, torch.tensor([[0, 1]]), u, weights, 2)
    expected = torch.tensor([[[(4 + 0) / 2.25, (0 + 1) / 2.25], [2 / 1.5, (2 + 2) / 1.5]]])
    torch.testing.assert_close(got, expected)


def test_distance_statistics():
    d = torch.tensor([[[1.0], [2.0], [3.0], [6.0]]])
    stats = distance_statistics(d)[0, 0]
    mean, var = 3.0, (4 + 1 + 0 + 9) / 4
    skew = ((-2) ** 3 + (-1) ** 3 + 0 + 3**3) / 4 / var**1.5
    kurt = ((-2) ** 4 + 1 + 0 + 3**4) / 4 / var**2 - 3
    torch.testing.assert_close(stats, torch.tensor([1.0, 6.0, var, skew, kurt]))
    assert mean == d.mean()


@pytest.mark.parametrize("refinement", ["soft", "cluster"])
def test_gradients_of_the_refinement_match_finite_differences(refinement):
    torch.manual_seed(1)
    method = _vectors(refinement)
    if refinement == "cluster":  # a radius that gives the distractor a real share
        method.log_distractor_radius.data.fill_(0.5)
    y = torch.tensor([[0, 1, 2]])
    z = torch.randn(1, 3, 3, dtype=torch.float64, requires_grad=True)
    q = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    u = torch.randn(1, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: method.scores(a, y, b, 3, c), (z, q, u))


def test_gradients_of_the_mask_network_match_finite_differences():
    # the distance statistics carry no gradient (as in the authors' code), so the check is on
    # the mask network's parameters, with the embeddings fixed
    torch.manual_seed(2)
    method = _vectors("masked")
    y = torch.tensor([[0, 1, 2]])
    z, q, u = (torch.randn(1, n, 3, dtype=torch.float64) for n in (3, 4, 6))
    names = [name for name, _ in method.mask.named_parameters()]

    def scores(*values: torch.Tensor) -> torch.Tensor:
        state = {f"mask.{name}": value for name, value in zip(names, values, strict=True)}
        return _with_mask(method, state, lambda: method.scores(z, y, q, 3, u))

    values = tuple(p.detach().clone().requires_grad_(True) for p in method.mask.parameters())
    assert torch.autograd.gradcheck(scores, values)
    grads = torch.autograd.grad(scores(*values).sum(), values)
    assert any(float(g.abs().max()) > 0 for g in grads)


def _with_mask(method, state, compute):
    """``compute()`` with the mask network's parameters replaced by ``state``'s tensors."""
    return torch.func.functional_call(_Call(method, compute), {
        f"method.{k}": v for k, v in state.items()}, (), strict=False)


class _Call(torch.nn.Module):
    def __init__(self, method, compute):
        super().__init__()
        self.method, self.compute = method, compute

    def forward(self):
        return self.compute()


def test_the_mask_is_between_0_and_1_and_has_the_distances_shape():
    method = _vectors("masked")
    distance = torch.rand(2, 7, 5, dtype=torch.float64) * 10
    mask = method.mask(distance)
    assert mask.shape == distance.shape and bool(((mask > 0) & (mask < 1)).all())


def test_the_weights_of_unlabelled_images_per_refinement():
    # soft: all of an image's weight goes to the classes; cluster: what the distractor cluster
    # leaves; masked: the soft assignments times the mask. Refinement uses exactly these.
    centres = torch.tensor([[[3.0, 0.0], [0.0, 3.0]]], dtype=torch.float64)
    points = torch.tensor([[[2.5, 0.5], [0.0, 0.0], [9.0, 9.0]]], dtype=torch.float64)
    soft = _vectors("soft").unlabelled_weights(centres, points)
    torch.testing.assert_close(soft, soft_assignments(centres, points))
    torch.testing.assert_close(soft.sum(-1), torch.ones(1, 3, dtype=torch.float64))
    cluster = _vectors("cluster")
    weights = cluster.unlabelled_weights(centres, points)
    torch.testing.assert_close(weights, cluster_assignments(
        centres, points, cluster.log_distractor_radius)[..., :2])
    assert bool((weights.sum(-1) < 1).all())
    masked = _vectors("masked")
    distance = ((points.unsqueeze(2) - centres.unsqueeze(1)) ** 2).sum(-1)
    torch.testing.assert_close(masked.unlabelled_weights(centres, points),
                               (-distance).softmax(-1) * masked.mask(distance))
    support_y = torch.tensor([[0, 1]])
    torch.testing.assert_close(
        masked.refined_prototypes(centres, support_y, points, 2),
        refine_prototypes(centres, support_y, points,
                          masked.unlabelled_weights(centres, points), 2))


def test_a_wrong_refinement_is_refused_naming_the_option():
    with pytest.raises(ValueError, match=r"--refinement"):
        SemiSupervisedPrototypes(refinement="hard")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        SemiSupervisedPrototypes(steps=0)


def test_the_sampler_draws_unlabelled_images_of_the_episode_and_distractor_classes():
    data = make_dataset([12] * 15)
    sampler = EpisodeSampler(data, 3, 2, 3, tasks=4, seed=5, unlabelled=4, distractors=2)
    labels = data.labels
    for index in range(5):
        ind = sampler.indices(index)
        assert ind.unlabelled.shape == (4, (3 + 2) * 4) and ind.distractors.shape == (4, 2)
        for task in range(4):
            support, query = set(ind.support[task].tolist()), set(ind.query[task].tolist())
            unlabelled = ind.unlabelled[task].tolist()
            assert len(set(unlabelled)) == len(unlabelled)
            assert not (set(unlabelled) & (support | query))
            classes = set(ind.classes[task].tolist())
            distractors = set(ind.distractors[task].tolist())
            assert len(distractors) == 2 and not (classes & distractors)
            counts = torch.bincount(labels[ind.unlabelled[task]], minlength=15)
            assert {c for c in range(15) if counts[c]} == classes | distractors
            assert set(counts[list(classes | distractors)].tolist()) == {4}
        episode = sampler.episode(index)
        assert episode.unlabelled_x.shape == (4, 20, 1, 4, 4)
        # the images are those of the indices (pixel [0, 0] encodes the index)
        pixels = (episode.unlabelled_x[..., 0, 0, 0] * 255).round().long() + 256 * (
            episode.unlabelled_x[..., 0, 0, 1] * 255).round().long()
        assert torch.equal(pixels, ind.unlabelled)
    again = EpisodeSampler(data, 3, 2, 3, tasks=4, seed=5, unlabelled=4, distractors=2)
    assert torch.equal(again.indices(3).unlabelled, sampler.indices(3).unlabelled)


def test_without_unlabelled_images_the_sampler_draws_the_episodes_it_always_did():
    data = make_dataset([12] * 15)
    plain, with_none = EpisodeSampler(data, 5, 1, 3, seed=2), EpisodeSampler(
        data, 5, 1, 3, seed=2, unlabelled=0, distractors=0)
    for index in range(3):
        a, b = plain.indices(index), with_none.indices(index)
        assert b.unlabelled is None and torch.equal(a.support, b.support)
    # a single-task episode with unlabelled images has the same labelled part: the unlabelled
    # images are drawn after it (so evaluations with and without them face the same tasks)
    semi = EpisodeSampler(data, 5, 1, 3, seed=2, unlabelled=2, distractors=3)
    for index in range(3):
        a, b = plain.indices(index), semi.indices(index)
        assert torch.equal(a.classes, b.classes) and torch.equal(a.support, b.support)
        assert torch.equal(a.query, b.query)


def test_the_sampler_refuses_impossible_requests():
    data = make_dataset([6] * 8)
    with pytest.raises(ValueError, match="set unlabelled"):
        EpisodeSampler(data, 3, 1, 1, distractors=2)
    with pytest.raises(ValueError, match=r"n_way=5 \+ distractors=4"):
        EpisodeSampler(data, 5, 1, 1, unlabelled=1, distractors=4)
    with pytest.raises(ValueError, match=r"k_shot \+ n_query \+ unlabelled = 1 \+ 2 \+ 4"):
        EpisodeSampler(data, 3, 1, 2, unlabelled=4)
    with pytest.raises(ValueError, match="unlabelled must be a non-negative integer"):
        EpisodeSampler(data, 3, 1, 2, unlabelled=-1)


def test_an_episode_with_unlabelled_images_moves_to_a_device():
    episode = EpisodeSampler(make_dataset([8] * 6), 2, 1, 1, unlabelled=2,
                             distractors=1).episode(0)
    assert episode.to("cpu").unlabelled_x.shape == (1, 6, 1, 4, 4)


def test_training_resumes_to_the_same_weights(tmp_path, omniglot_small):
    config = TrainingConfig(n_way=5, k_shot=1, n_query=2, episodes=5, val_every=2,
                            val_episodes=4, val_way=5, val_query=2, checkpoint_every=2, seed=4,
                            sampler={"unlabelled": 2, "distractors": 2})

    def make(seed: int) -> SemiSupervisedPrototypes:
        torch.manual_seed(seed)
        return SemiSupervisedPrototypes(refinement="masked")

    straight, _ = train_interrupted_and_straight(make, omniglot_small, config, tmp_path,
                                                 omniglot_small, crash_after=4)
    assert all(0 <= e["train_accuracy"] <= 1 for e in straight.history)


def test_the_command_line_trains_it_with_its_sampler_settings(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "semiproto", "--refinement", "cluster", "--unlabelled", "2",
                 "--distractors", "1", "--labelled-fraction", "0.5", "--query", "2",
                 "--episodes", "2", "--val-every", "2", "--val-episodes", "4",
                 "--checkpoint-every", "2", "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "last" / "checkpoint.json").read_text())
    assert record["config"]["sampler"] == {"unlabelled": 2, "distractors": 1,
                                           "labelled_fraction": 0.5}
    assert record["config"]["n_way"] == 5 and record["config"]["k_shot"] == 1
    method = load_checkpoint(out / "last")[0]
    assert isinstance(method, SemiSupervisedPrototypes) and method.refinement == "cluster"
    # protonet takes no such option
    assert main(["train", "protonet", "--unlabelled", "2", "--episodes", "1",
                 "--out", str(tmp_path / "p"), "--no-progress"]) == 2


def test_the_papers_figures_are_declared():
    assert METHODS["semiproto"] is SemiSupervisedPrototypes
    assert PAPER_RESULTS["semi_supervised"] == {"supervised": (5.16, 5.16),
                                                "inference": (2.35, 4.70), "soft": (2.56, 4.59),
                                                "cluster": (2.18, 2.71),
                                                "masked": (2.46, 2.62)}
    assert PAPER_RESULTS["citations"]["semi_supervised"].startswith("Ren, Triantafillou")
    assert "semiproto" not in PAPER_RESULTS  # not accuracies on the standard settings


def test_evaluation_with_unlabelled_images(omniglot_small):
    from fslearn.evaluation import evaluate

    torch.manual_seed(0)
    method = SemiSupervisedPrototypes(refinement="soft")
    plain = evaluate(method, omniglot_small, 5, 1, 2, episodes=20, seed=1, episodes_per_batch=7)
    same = evaluate(method, omniglot_small, 5, 1, 2, episodes=20, seed=1, episodes_per_batch=7,
                    unlabelled=0)
    semi = evaluate(method, omniglot_small, 5, 1, 2, episodes=20, seed=1, episodes_per_batch=7,
                    unlabelled=3, distractors=2)
    assert plain.per_episode == same.per_episode
    assert semi.episodes == 20 and 0 <= semi.accuracy <= 1
    # the same labelled episodes, now refined by unlabelled images: some accuracies change
    assert semi.per_episode != plain.per_episode
