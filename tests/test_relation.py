"""Relation Networks: the authors' shapes, K-shot sums, the MSE on one-hot targets, gradients,
checkpoints, bad input, and the command line on real Omniglot (tiny runs)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fslearn.checkpoints import load_checkpoint, save_checkpoint
from fslearn.cli import main
from fslearn.data import Episode, FewShotDataset
from fslearn.data.folder import save_image_folder
from fslearn.methods import RelationNetwork, build_method
from fslearn.methods import relation as relation_module
from fslearn.methods.relation import (
    RelationEncoder,
    RelationModule,
    class_feature_maps,
    encoder_output_size,
    one_hot_targets,
    relation_pairs,
)


def _random_episode(tasks=2, n_way=5, k_shot=1, n_query=2, size=28, seed=0) -> Episode:
    generator = torch.Generator().manual_seed(seed)
    support_y = torch.arange(n_way).repeat_interleave(k_shot).expand(tasks, -1)
    query_y = torch.arange(n_way).repeat_interleave(n_query).expand(tasks, -1)
    return Episode(torch.rand(tasks, n_way * k_shot, 1, size, size, generator=generator),
                   support_y.contiguous(),
                   torch.rand(tasks, n_way * n_query, 1, size, size, generator=generator),
                   query_y.contiguous(), torch.zeros(tasks, n_way, dtype=torch.long), n_way)


def test_the_authors_shapes_on_28x28_omniglot():
    assert encoder_output_size(28) == 5  # 28 -> 26 -> 13 -> 11 -> 5
    assert RelationEncoder()(torch.rand(3, 1, 28, 28)).shape == (3, 64, 5, 5)
    module = RelationModule(64, 5)
    assert module.fc1.in_features == 64 and module.fc1.out_features == 8
    assert module.fc2.out_features == 1
    scores = module(torch.rand(7, 128, 5, 5))  # 5x5 -> 2x2 -> 1x1
    assert scores.shape == (7,) and bool(((scores > 0) & (scores < 1)).all())

    method = RelationNetwork()
    assert method.embed(torch.rand(2, 1, 28, 28)).shape == (2, 64 * 5 * 5)
    scores = method(_random_episode(tasks=2, n_way=5, k_shot=3, n_query=4))
    assert scores.shape == (2, 20, 5) and bool(((scores >= 0) & (scores <= 1)).all())
    # the encoder is the authors': unpadded then padded convolutions, pooling after two
    convs = [m for m in method.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert [c.padding for c in convs] == [(0, 0), (0, 0), (1, 1), (1, 1)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in method.backbone.modules()) == 2


def test_the_authors_initialisation():
    torch.manual_seed(0)
    method = RelationNetwork()
    for linear in (method.relation.fc1, method.relation.fc2):
        assert torch.equal(linear.bias, torch.ones_like(linear.bias))
        assert linear.weight.std().item() == pytest.approx(0.01, rel=0.5)
    conv = method.backbone.features[1][0]
    assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.1)


def test_k_shot_support_features_are_summed_per_class():
    support = torch.randn(2, 6, 4, 3, 3)
    support_y = torch.tensor([[0, 1, 2, 0, 1, 2], [2, 0, 1, 1, 2, 0]])  # interleaved labels
    sums = class_feature_maps(support, support_y, 3)
    assert sums.shape == (2, 3, 4, 3, 3)
    for t in range(2):
        for n in range(3):
            assert torch.allclose(sums[t, n], support[t][support_y[t] == n].sum(0), atol=1e-6)
    # flattened maps give the same sums, flattened
    assert torch.allclose(class_feature_maps(support.flatten(2), support_y, 3),
                          sums.flatten(2), atol=1e-6)


def test_mean_aggregation_divides_by_the_shots_and_equals_the_sum_with_one_shot():
    support = torch.randn(2, 6, 4, 3, 3)
    support_y = torch.tensor([[0, 1, 2, 0, 1, 2], [2, 0, 1, 1, 2, 0]])
    means = class_feature_maps(support, support_y, 3, "mean")
    for t in range(2):
        for n in range(3):
            assert torch.allclose(means[t, n], support[t][support_y[t] == n].mean(0), atol=1e-6)
    # by hand: a class of two maps 1 and 3 has the sum 4 and the mean 2
    two = torch.tensor([[[1.0], [3.0]]])
    labels = torch.tensor([[0, 0]])
    assert class_feature_maps(two, labels, 1).item() == 4.0
    assert class_feature_maps(two, labels, 1, "mean").item() == 2.0
    # with one shot the two are the same numbers, so a 1-shot model trains identically
    one_shot = support[:, :3]
    assert torch.equal(class_feature_maps(one_shot, support_y[:, :3], 3, "mean"),
                       class_feature_maps(one_shot, support_y[:, :3], 3))
    torch.manual_seed(0)
    summing = RelationNetwork().eval()
    averaging = RelationNetwork(aggregate="mean").eval()
    averaging.load_state_dict(summing.state_dict())
    assert torch.equal(summing(_random_episode(k_shot=1)), averaging(_random_episode(k_shot=1)))
    five = _random_episode(k_shot=5)
    assert not torch.allclose(summing(five), averaging(five))
    with pytest.raises(ValueError, match="aggregate must be one of sum, mean"):
        RelationNetwork(aggregate="max")
    with pytest.raises(ValueError, match="aggregate must be one of sum, mean"):
        class_feature_maps(two, labels, 1, "median")


def test_scores_are_the_relation_of_the_summed_class_maps_and_the_query():
    torch.manual_seed(0)
    method = RelationNetwork().eval()
    episode = _random_episode(tasks=1, n_way=3, k_shot=2, n_query=1)
    scores = method(episode)
    maps = method.backbone(episode.support_x[0])  # [6, 64, 5, 5], class-major
    query = method.backbone(episode.query_x[0])  # [3, 64, 5, 5]
    for q in range(3):
        for n in range(3):
            pair = torch.cat([maps[2 * n] + maps[2 * n + 1], query[q]])[None]  # [class, query]
            assert torch.allclose(scores[0, q, n], method.relation(pair)[0], atol=1e-5)


def test_pairs_put_the_class_first_and_cover_every_query_and_class():
    class_maps, query_maps = torch.randn(2, 3, 4, 5, 5), torch.randn(2, 7, 4, 5, 5)
    pairs = relation_pairs(class_maps, query_maps)
    assert pairs.shape == (2, 7, 3, 8, 5, 5)
    assert torch.equal(pairs[1, 6, 2, :4], class_maps[1, 2])
    assert torch.equal(pairs[1, 6, 2, 4:], query_maps[1, 6])


def test_mse_target_is_one_hot_and_the_loss_is_their_mean_squared_error():
    targets = one_hot_targets(torch.tensor([[0, 2, 1]]), 3)
    assert torch.equal(targets, torch.tensor([[[1.0, 0, 0], [0, 0, 1], [0, 1, 0]]]))

    class Fixed(RelationNetwork):
        def forward(self, episode):
            return torch.tensor([[[0.9, 0.2], [0.4, 0.7]]])

    episode = Episode(torch.rand(1, 2, 1, 28, 28), torch.tensor([[0, 1]]),
                      torch.rand(1, 2, 1, 28, 28), torch.tensor([[0, 1]]),
                      torch.zeros(1, 2, dtype=torch.long), 2)
    loss, _ = Fixed().loss(episode)
    # ((0.9-1)^2 + 0.2^2 + 0.4^2 + (0.7-1)^2) / 4 = (0.01 + 0.04 + 0.16 + 0.09) / 4
    assert loss.item() == pytest.approx(0.075, abs=1e-6)


def test_relation_and_loss_gradients_match_finite_differences():
    torch.manual_seed(0)
    module = RelationModule(channels=2, side=4, hidden=3).double()  # 4x4 -> 2x2 -> 1x1
    support = torch.randn(1, 4, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    query = torch.randn(1, 3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    support_y = torch.tensor([[0, 1, 0, 1]])  # two shots of two classes, summed
    query_y = torch.tensor([[0, 1, 1]])

    def loss(s, q):
        pairs = relation_pairs(class_feature_maps(s, support_y, 2), q)
        scores = module(pairs.flatten(0, 2)).view(1, 3, 2)
        return F.mse_loss(scores, one_hot_targets(query_y, 2, torch.float64))

    assert torch.autograd.gradcheck(loss, (support, query))


@pytest.mark.parametrize("training", [True, False])
def test_all_pairs_without_concatenation_give_the_concatenated_pairs_scores(training):
    """score_all_pairs (the first convolution split into its class and query halves) gives
    the module's scores of the concatenated pairs and the same gradients (float64), with batch
    norm in training mode and with running averages, at once and in chunks."""
    torch.manual_seed(0)
    module = RelationModule(channels=3, side=5, hidden=4).double()
    class_maps = torch.randn(2, 4, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    query_maps = torch.randn(2, 6, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    module(relation_pairs(class_maps, query_maps).flatten(0, 2).detach())  # running averages
    module.train(training)
    inputs = [class_maps, query_maps, *module.parameters()]
    weights = torch.randn(2, 6, 4, dtype=torch.float64)
    reference = module(relation_pairs(class_maps, query_maps).flatten(0, 2)).view(2, 6, 4)
    expected = torch.autograd.grad((reference * weights).sum(), inputs)
    for chunk in (None,) if training else (None, 9):  # 9 pairs: two queries' rows a chunk
        scores = module.score_all_pairs(class_maps, query_maps, chunk)
        assert torch.allclose(scores, reference, rtol=1e-12, atol=1e-14)
        gradients = torch.autograd.grad((scores * weights).sum(), inputs)
        for got, want in zip(gradients, expected, strict=True):
            assert torch.allclose(got, want, rtol=1e-10, atol=1e-14)


def test_evaluation_scores_in_chunks_equal_one_batch(monkeypatch):
    torch.manual_seed(0)
    method = RelationNetwork().eval()
    episode = _random_episode(tasks=3, n_way=5, k_shot=1, n_query=3)
    whole = method(episode)
    monkeypatch.setattr(relation_module, "PAIRS_PER_CHUNK", 7)  # 1 query (5 pairs) a chunk
    assert torch.allclose(method(episode), whole, atol=1e-6)
    method.train()
    assert method(episode).shape == whole.shape


def test_tasks_in_a_batch_are_independent():
    torch.manual_seed(0)
    method = RelationNetwork().eval()
    episode = _random_episode(tasks=3, n_way=4, k_shot=2, n_query=2)
    batched = method(episode)
    for t in range(3):
        single = method(Episode(episode.support_x[t : t + 1], episode.support_y[t : t + 1],
                                episode.query_x[t : t + 1], episode.query_y[t : t + 1],
                                episode.classes[t : t + 1], 4))
        assert torch.allclose(batched[t], single[0], atol=1e-5)


def test_training_step_clips_each_module_like_the_authors():
    torch.manual_seed(0)
    method = RelationNetwork()
    method.training_step(_random_episode())
    for module in (method.backbone, method.relation):
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters()]))
        assert norm <= 0.5 + 1e-5
    unclipped = RelationNetwork(max_grad_norm=None)
    unclipped.load_state_dict(method.state_dict())
    unclipped.training_step(_random_episode())
    norms = [torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in m.parameters()]))
             for m in (unclipped.backbone, unclipped.relation)]
    assert max(norms) > 0.5  # so the clipping above did something


def test_probabilities_rank_the_relation_scores():
    method = RelationNetwork()
    scores = torch.tensor([[[0.9, 0.3, 0.0]]])
    assert torch.allclose(method.probabilities(scores), torch.tensor([[[0.75, 0.25, 0.0]]]))


@pytest.mark.parametrize(("shots", "aggregate"), [(1, "sum"), (5, "sum"), (5, "mean")])
def test_checkpoint_round_trip(tmp_path, shots, aggregate):
    torch.manual_seed(0)
    method = build_method("relationnet", aggregate=aggregate)
    episode = _random_episode(k_shot=shots)
    method.training_step(episode)  # batch-norm running averages move away from their start
    method.eval()
    save_checkpoint(tmp_path, method)
    loaded, record = load_checkpoint(tmp_path)
    assert isinstance(loaded, RelationNetwork) and record["hparams"] == method.hparams
    assert torch.equal(loaded(episode), method(episode))


def _fits_one_episode(method: RelationNetwork, step_loss, steps: int = 15) -> bool:
    """Whether ``steps`` Adam steps on ``step_loss`` lower the *real* loss of one fixed episode
    by a quarter: what a training smoke test checks. (The rate is 1e-2: at the authors' 1e-3
    the scores, which start near sigmoid(1) = 0.73, take more steps to come down.)"""
    episode = _random_episode(tasks=1, n_way=5, k_shot=1, n_query=2, seed=3)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)
    before = method.loss(episode)[0].item()
    for _ in range(steps):
        optimizer.zero_grad()
        step_loss(method, episode).backward()
        optimizer.step()
    return method.loss(episode)[0].item() < 0.75 * before


def test_a_broken_loss_is_caught_by_the_one_episode_check():
    torch.manual_seed(0)
    assert _fits_one_episode(RelationNetwork(), lambda m, e: m.loss(e)[0])

    def all_ones_target(method, episode):  # a slip: every class regressed to 1
        return F.mse_loss(method(episode), torch.ones(1, 10, 5))

    torch.manual_seed(0)
    assert not _fits_one_episode(RelationNetwork(), all_ones_target)


def test_bad_input_is_refused_clearly():
    method = RelationNetwork()
    episode = _random_episode(tasks=1, n_way=5, k_shot=2)
    with pytest.raises(ValueError, match=r"support labels must be in 0\.\.3 for n_way=4"):
        method(Episode(episode.support_x, episode.support_y, episode.query_x, episode.query_y,
                       episode.classes[:, :4], 4))
    with pytest.raises(ValueError, match="n_way=6 but class 5 of task 0 has no support image"):
        method(Episode(episode.support_x, episode.support_y, episode.query_x, episode.query_y,
                       torch.zeros(1, 6, dtype=torch.long), 6))
    uneven = episode.support_y.clone()
    uneven[0, 1] = 1  # class 0 has 1 image, class 1 has 3
    with pytest.raises(ValueError, match="same number of support images"):
        method(Episode(episode.support_x, uneven, episode.query_x, episode.query_y,
                       episode.classes, 5))
    bad_query = episode.query_y.clone()
    bad_query[0, 0] = -1
    with pytest.raises(ValueError, match=r"query labels must be in 0\.\.4"):
        method.loss(Episode(episode.support_x, episode.support_y, episode.query_x, bad_query,
                            episode.classes, 5))
    with pytest.raises(ValueError, match=r"built for images \[batch, 1, 28, 28\].*84, 84"):
        method(_random_episode(tasks=1, size=84))
    with pytest.raises(ValueError, match="expects feature maps of 1600 numbers"):
        method(Episode(torch.rand(1, 5, 64), episode.support_y[:, ::2], torch.rand(1, 3, 64),
                       episode.query_y[:, :3], episode.classes, 5))
    with pytest.raises(ValueError, match="at least 22x22 pixels"):
        RelationNetwork(image_size=20)
    assert RelationNetwork(image_size=22).relation.fc1.in_features == 64
    with pytest.raises(ValueError, match="max_grad_norm must be positive"):
        RelationNetwork(max_grad_norm=0)


@pytest.fixture(scope="module")
def relation_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("relationnet") / "run"
    status = main(["train", "relationnet", "--way", "5", "--shot", "2", "--query", "2",
                   "--episodes", "3", "--val-every", "3", "--val-episodes", "4",
                   "--checkpoint-every", "3", "--out", str(out), "--no-progress"])
    assert status == 0
    return out


def test_cli_trains_reports_and_predicts(relation_run, omniglot_test, tmp_path, capsys):
    record = json.loads((relation_run / "best" / "checkpoint.json").read_text())
    assert record["method"] == "relationnet"
    assert record["hparams"] == {"in_channels": 1, "image_size": 28, "max_grad_norm": 0.5,
                                 "aggregate": "sum"}
    assert record["config"]["k_shot"] == 2 and record["metrics"]["val"]["k_shot"] == 2

    # report runs the evaluation of `fslearn evaluate` in the four settings (on the validation
    # classes here: 13,760 images to embed instead of the test split's 33,840)
    assert main(["report", str(relation_run), "--split", "val", "--episodes", "3",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["n_way"], r["k_shot"]) for r in report["results"]] == [
        (5, 1), (5, 5), (20, 1), (20, 5)]
    assert [r["paper_accuracy"] for r in report["results"]] == [0.996, 0.998, 0.976, 0.991]
    assert report["paper"].startswith("Sung")

    classes = [0, 100, 200]
    keep = torch.cat([(omniglot_test.labels == c).nonzero().flatten()[:2] for c in classes])
    names = [omniglot_test.class_names[c].replace("/", "-") for c in classes]
    support = FewShotDataset(omniglot_test.images[keep], torch.arange(3).repeat_interleave(2),
                             names, "subset")
    save_image_folder(support, tmp_path / "support", invert=True)
    assert main(["predict", str(relation_run), "--support", str(tmp_path / "support"),
                 "--query", str(tmp_path / "support"), "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert len(predictions) == 6
    for p in predictions:
        assert 0 <= p["runner_up_probability"] <= p["probability"] <= 1

    # an uneven support folder cannot be summed fairly: refused in one line
    uneven = FewShotDataset(omniglot_test.images[keep[:5]], torch.tensor([0, 0, 1, 1, 2]),
                            names, "subset")
    save_image_folder(uneven, tmp_path / "uneven", invert=True)
    assert main(["predict", str(relation_run), "--support", str(tmp_path / "uneven"),
                 "--query", str(tmp_path / "support")]) == 2
    err = capsys.readouterr().err
    assert "same number of support images" in err and err.count("\n") == 1


def test_cli_passes_the_aggregation_and_refuses_it_elsewhere(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "relationnet", "--aggregate", "mean", "--way", "5", "--shot", "1",
                 "--query", "1", "--episodes", "1", "--val-every", "0", "--out", str(out),
                 "--no-progress"]) == 0
    method, record = load_checkpoint(out / "best")
    assert isinstance(method, RelationNetwork) and method.aggregate == "mean"
    assert record["hparams"]["aggregate"] == "mean"
    assert record["command"].startswith("fslearn train relationnet --aggregate mean")
    assert main(["train", "matchingnet", "--aggregate", "mean", "--episodes", "1", "--out",
                 str(tmp_path / "other")]) == 2
    assert ("--aggregate is an option of the method (relationnet), not of matchingnet"
            in capsys.readouterr().err)
