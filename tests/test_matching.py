"""Matching Networks: hand-computed attention, gradients, full context embeddings, checkpoints,
bad input, and the command line on real Omniglot (tiny runs)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fslearn.checkpoints import load_checkpoint, save_checkpoint
from fslearn.cli import main
from fslearn.data import Episode, FewShotDataset
from fslearn.data.folder import save_image_folder
from fslearn.methods import MatchingNetwork, build_method
from fslearn.methods.matching import (
    DEFAULT_FCE_STEPS,
    AttentionLSTM,
    SupportContext,
    cosine_similarity,
    matching_log_probabilities,
)
from fslearn.training import TrainingConfig, train


class Identity(nn.Module):
    def forward(self, x):
        return x.flatten(1)


def _episode(support_x, support_y, query_x, query_y, n_way) -> Episode:
    return Episode(support_x[None], support_y[None], query_x[None], query_y[None],
                   torch.arange(n_way)[None], n_way)


def _random_episode(tasks=2, n_way=5, k_shot=1, n_query=2, size=28, seed=0) -> Episode:
    generator = torch.Generator().manual_seed(seed)
    support_y = torch.arange(n_way).repeat_interleave(k_shot).expand(tasks, -1)
    query_y = torch.arange(n_way).repeat_interleave(n_query).expand(tasks, -1)
    return Episode(torch.rand(tasks, n_way * k_shot, 1, size, size, generator=generator),
                   support_y.contiguous(),
                   torch.rand(tasks, n_way * n_query, 1, size, size, generator=generator),
                   query_y.contiguous(), torch.zeros(tasks, n_way, dtype=torch.long), n_way)


def test_three_example_matching_net_by_hand():
    # f = g = identity on 2-d points. Support: (1,0) of class 0, (0,1) and (1,1) of class 1.
    # Query (1,0): cosines 1, 0, 1/sqrt(2) = 0.70711; e^c = 2.71828, 1, 2.02811 (sum 5.74640),
    # so attention = 0.473041, 0.174022, 0.352937 and y_hat = (0.473041, 0.526959): the nearest
    # support image is of class 0, but class 1 wins the attention-weighted vote.
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    support_y = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    similarities = cosine_similarity(query[None], support[None])
    assert torch.allclose(similarities, torch.tensor([[[1.0, 0.0, 0.707107]]]), atol=1e-6)
    attention = similarities.softmax(-1)
    assert torch.allclose(attention, torch.tensor([[[0.473041, 0.174022, 0.352937]]]),
                          atol=1e-6)

    method = MatchingNetwork(backbone=Identity())
    episode = _episode(support[:, :, None, None], support_y, query[:, :, None, None],
                       torch.tensor([0]), 2)
    log_y_hat = method(episode)
    assert torch.allclose(log_y_hat.exp(), torch.tensor([[[0.473041, 0.526959]]]), atol=1e-6)
    assert int(log_y_hat.argmax(-1)) == 1
    # the loss is -log y_hat[true class] = -log 0.473041
    loss, _ = method.loss(episode)
    assert loss.item() == pytest.approx(0.748573, abs=1e-6)
    # the probabilities that fslearn predict reports are y_hat itself
    assert torch.allclose(method.probabilities(log_y_hat), log_y_hat.exp(), atol=1e-6)


def test_a_scale_sharpens_the_attention_by_hand():
    # the three examples above with s = 10: logits 10, 0, 7.07107; e^logit = 22026.47, 1,
    # 1177.40 (sum 23204.87), attention = 0.949218, 0.000043, 0.050740: now the nearest
    # support image decides, and class 0 wins (0.949218 against 0.050782)
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    query = torch.tensor([[1.0, 0.0]])
    method = MatchingNetwork(backbone=Identity(), scale=10.0)
    assert method.hparams["scale"] == 10.0
    logits = method.attention_logits(query[None], support[None])
    assert torch.allclose(logits, torch.tensor([[[10.0, 0.0, 7.071068]]]), atol=1e-5)
    assert torch.allclose(logits.softmax(-1), torch.tensor([[[0.949218, 0.000043, 0.050740]]]),
                          atol=1e-6)
    episode = _episode(support[:, :, None, None], torch.tensor([0, 1, 1]),
                       query[:, :, None, None], torch.tensor([0]), 2)
    log_y_hat = method(episode)
    assert torch.allclose(log_y_hat.exp(), torch.tensor([[[0.949218, 0.050782]]]), atol=1e-6)
    # scale 1 is the paper's attention, the default
    assert MatchingNetwork().hparams["scale"] == 1.0
    for bad in (0, -1.0, float("inf"), float("nan"), True, "10"):
        with pytest.raises(ValueError, match="scale must be a positive finite number"):
            MatchingNetwork(scale=bad)


def test_log_probabilities_are_the_log_of_the_weighted_vote():
    torch.manual_seed(0)
    similarities = torch.randn(2, 7, 9, dtype=torch.float64)
    support_y = torch.stack([torch.randperm(9) % 4 for _ in range(2)])
    expected = similarities.softmax(-1) @ F.one_hot(support_y, 4).to(torch.float64)
    result = matching_log_probabilities(similarities, support_y, 4)
    assert torch.allclose(result.exp(), expected)
    assert torch.allclose(result.exp().sum(-1), torch.ones(2, 7, dtype=torch.float64))


def test_log_probabilities_stay_finite_where_the_probabilities_underflow():
    # attention logits 2000 apart: the plain product rounds class 1's probability to 0 in
    # float32 (log 0 = -inf); the log-sum-exp keeps its log, -2000
    similarities = torch.tensor([[[1000.0, -1000.0]]])
    support_y = torch.tensor([[0, 1]])
    plain = (similarities.softmax(-1) @ F.one_hot(support_y, 2).float()).log()
    assert torch.isinf(plain[0, 0, 1])
    result = matching_log_probabilities(similarities, support_y, 2)
    assert torch.allclose(result, torch.tensor([[[0.0, -2000.0]]]))


def test_attention_and_loss_gradients_match_finite_differences():
    query = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    support = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    support_y = torch.tensor([[0, 1, 2, 0, 1, 2], [2, 2, 1, 0, 0, 1]])
    query_y = torch.tensor([[0, 1, 2, 1], [2, 0, 0, 1]])

    def loss(q, s):
        log_y_hat = matching_log_probabilities(cosine_similarity(q, s), support_y, 3)
        return F.nll_loss(log_y_hat.flatten(0, 1), query_y.flatten())

    assert torch.autograd.gradcheck(loss, (query, support))
    assert torch.autograd.gradcheck(
        lambda q, s: matching_log_probabilities(cosine_similarity(q, s), support_y, 3),
        (query, support))


def test_full_context_embedding_gradients_match_finite_differences():
    torch.manual_seed(0)
    context, attention = SupportContext(3).double(), AttentionLSTM(3, steps=2).double()
    support = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    query = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, q: attention(q, context(s)), (support, query))


def test_loss_is_minus_log_probability_of_the_true_class():
    torch.manual_seed(0)
    method = MatchingNetwork()
    episode = _random_episode()
    loss, log_y_hat = method.loss(episode)
    picked = log_y_hat.gather(-1, episode.query_y.unsqueeze(-1))
    assert torch.isclose(loss, -picked.mean(), atol=1e-6)
    # the default cross-entropy of FewShotMethod gives the same: log y_hat is normalised
    assert torch.isclose(loss, F.cross_entropy(log_y_hat.flatten(0, 1),
                                               episode.query_y.flatten()), atol=1e-6)


def test_fce_shapes_and_that_it_changes_the_embeddings():
    torch.manual_seed(0)
    plain, fce = MatchingNetwork(), MatchingNetwork(fce=True, fce_steps=3)
    assert fce.hparams == {"in_channels": 1, "image_size": 28, "fce": True, "fce_steps": 3,
                           "scale": 1.0}
    assert plain.hparams["fce_steps"] is None and plain.embedding_dim is None
    assert fce.embedding_dim == 64 and fce.query_attention.steps == 3
    assert MatchingNetwork(fce=True).hparams["fce_steps"] == DEFAULT_FCE_STEPS

    support_z, query_z = torch.randn(2, 10, 64), torch.randn(2, 6, 64)
    support_g = fce.support_embeddings(support_z)
    query_f = fce.query_embeddings(query_z, support_g)
    assert support_g.shape == (2, 10, 64) and query_f.shape == (2, 6, 64)
    assert not torch.allclose(support_g, support_z, atol=1e-3)
    assert not torch.allclose(query_f, query_z, atol=1e-3)
    # without FCE, f = f' and g = g'
    assert plain.support_embeddings(support_z) is support_z
    assert plain.query_embeddings(query_z, support_z) is query_z
    # the support embeddings depend on the whole support set, and the queries on it too
    changed = support_z.clone()
    changed[:, 9] += 1.0
    assert not torch.allclose(fce.support_embeddings(changed)[:, 0], support_g[:, 0])
    assert not torch.allclose(fce.query_embeddings(query_z, fce.support_embeddings(changed)),
                              query_f)

    episode = _random_episode(tasks=2, n_way=5, k_shot=2, n_query=3)
    assert fce(episode).shape == (2, 15, 5)
    loss, _ = fce.loss(episode)
    loss.backward()
    for module in (fce.support_context, fce.query_attention, fce.backbone):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_tasks_in_a_batch_are_independent():
    torch.manual_seed(0)
    method = MatchingNetwork(fce=True).eval()
    episode = _random_episode(tasks=3, n_way=4, k_shot=2, n_query=2)
    batched = method(episode)
    for t in range(3):
        single = method(Episode(episode.support_x[t : t + 1], episode.support_y[t : t + 1],
                                episode.query_x[t : t + 1], episode.query_y[t : t + 1],
                                episode.classes[t : t + 1], 4))
        assert torch.allclose(batched[t], single[0], atol=1e-5)


@pytest.mark.parametrize("hparams", [{}, {"fce": True, "fce_steps": 2}])
def test_checkpoint_round_trip(tmp_path, hparams):
    torch.manual_seed(0)
    method = build_method("matchingnet", **hparams)
    episode = _random_episode()
    method.training_step(episode)  # batch-norm running averages move away from their start
    method.eval()
    save_checkpoint(tmp_path, method, {"note": "round trip"})
    loaded, record = load_checkpoint(tmp_path)
    assert isinstance(loaded, MatchingNetwork) and record["hparams"] == method.hparams
    assert torch.equal(loaded(episode), method(episode))


def _fits_one_episode(method: MatchingNetwork, step_loss, steps: int = 15) -> bool:
    """Whether ``steps`` Adam steps on ``step_loss`` lower the *real* loss of one fixed episode
    by a quarter: what a training smoke test checks."""
    episode = _random_episode(tasks=1, n_way=5, k_shot=1, n_query=2, seed=3)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    before = method.loss(episode)[0].item()
    for _ in range(steps):
        optimizer.zero_grad()
        step_loss(method, episode).backward()
        optimizer.step()
    return method.loss(episode)[0].item() < 0.75 * before


def test_a_broken_loss_is_caught_by_the_one_episode_check():
    torch.manual_seed(0)
    assert _fits_one_episode(MatchingNetwork(), lambda m, e: m.loss(e)[0])
    torch.manual_seed(0)
    # the sign flipped: -log y_hat maximised, as a slip in the loss would
    assert not _fits_one_episode(MatchingNetwork(), lambda m, e: -m.loss(e)[0])


def test_bad_input_is_refused_clearly():
    method = MatchingNetwork()
    episode = _random_episode(tasks=1, n_way=5)
    with pytest.raises(ValueError, match=r"support labels must be in 0\.\.3 for n_way=4"):
        method(Episode(episode.support_x, episode.support_y, episode.query_x, episode.query_y,
                       episode.classes[:, :4], 4))
    with pytest.raises(ValueError, match="n_way=6 but class 5 of task 0 has no support image"):
        method(Episode(episode.support_x, episode.support_y, episode.query_x, episode.query_y,
                       torch.zeros(1, 6, dtype=torch.long), 6))
    with pytest.raises(ValueError, match="support_y has shape"):
        method(Episode(episode.support_x, episode.support_y[:, :4], episode.query_x,
                       episode.query_y, episode.classes, 5))
    bad_query = episode.query_y.clone()
    bad_query[0, 0] = 7
    with pytest.raises(ValueError, match=r"query labels must be in 0\.\.4"):
        method.loss(Episode(episode.support_x, episode.support_y, episode.query_x, bad_query,
                            episode.classes, 5))
    with pytest.raises(ValueError, match=r"\[batch, 1, H, W\]"):
        method(Episode(episode.support_x[:, :, 0], episode.support_y, episode.query_x[:, :, 0],
                       episode.query_y, episode.classes, 5))
    with pytest.raises(ValueError, match="pass fce=True too"):
        MatchingNetwork(fce_steps=3)
    with pytest.raises(ValueError, match="fce_steps must be a positive integer"):
        MatchingNetwork(fce=True, fce_steps=0)
    larger = _random_episode(tasks=1, n_way=5, size=84)
    MatchingNetwork()(larger)  # plain cosine attention takes any size
    with pytest.raises(ValueError, match=r"built for embeddings of 64 numbers \(28x28 images\)"):
        MatchingNetwork(fce=True)(larger)


def test_resuming_a_run_with_other_hparams_is_refused(tmp_path, omniglot_small):
    config = TrainingConfig(n_way=5, k_shot=1, n_query=1, episodes=1, val_every=0,
                            checkpoint_every=1)
    train(MatchingNetwork(), omniglot_small, config, tmp_path, progress=False)
    with pytest.raises(ValueError, match="other hyper-parameters"):
        train(MatchingNetwork(fce=True), omniglot_small, replace(config, episodes=2), tmp_path,
              progress=False)


def test_resuming_a_run_saved_before_the_scale_existed(tmp_path, omniglot_small):
    config = TrainingConfig(n_way=5, k_shot=1, n_query=1, episodes=1, val_every=0,
                            checkpoint_every=1)
    train(MatchingNetwork(), omniglot_small, config, tmp_path, progress=False)
    record = tmp_path / "last" / "checkpoint.json"
    metadata = json.loads(record.read_text())
    del metadata["hparams"]["scale"]  # as the runs recorded before the option was added
    record.write_text(json.dumps(metadata))
    result = train(MatchingNetwork(), omniglot_small, replace(config, episodes=2), tmp_path,
                   progress=False)
    assert result.episodes == 2
    with pytest.raises(ValueError, match=r"other hyper-parameters.*scale"):
        train(MatchingNetwork(scale=10.0), omniglot_small, replace(config, episodes=3),
              tmp_path, progress=False)


@pytest.fixture(scope="module")
def fce_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("matchingnet") / "run"
    status = main(["train", "matchingnet", "--fce", "--fce-steps", "2", "--way", "5", "--shot",
                   "1", "--query", "2", "--episodes", "3", "--val-every", "3",
                   "--val-episodes", "4", "--checkpoint-every", "3", "--out", str(out),
                   "--no-progress"])
    assert status == 0
    return out


def test_cli_trains_reports_and_predicts(fce_run, omniglot_test, tmp_path, capsys):
    record = json.loads((fce_run / "best" / "checkpoint.json").read_text())
    assert record["method"] == "matchingnet"
    assert record["hparams"] == {"in_channels": 1, "image_size": 28, "fce": True,
                                 "fce_steps": 2, "scale": 1.0}
    assert record["command"].startswith("fslearn train matchingnet --fce")
    assert record["metrics"]["val"]["episodes"] == 4

    # report runs the evaluation of `fslearn evaluate` in the four settings (on the validation
    # classes here: 13,760 images to embed instead of the test split's 33,840)
    assert main(["report", str(fce_run), "--split", "val", "--episodes", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert all(0 <= r["accuracy"] <= 1 for r in report["results"])
    assert [r["paper_accuracy"] for r in report["results"]] == [0.981, 0.989, 0.938, 0.985]
    assert report["paper"].startswith("Vinyals")

    # unequal shots are fine for a Matching Network: a weighted vote over all support images
    classes = [0, 100, 200]
    keep = torch.cat([(omniglot_test.labels == c).nonzero().flatten()[:k]
                      for c, k in zip(classes, (1, 2, 1), strict=True)])
    names = [omniglot_test.class_names[c].replace("/", "-") for c in classes]
    subset = FewShotDataset(omniglot_test.images[keep], torch.tensor([0, 1, 1, 2]), names,
                            "subset")
    save_image_folder(subset, tmp_path / "support", invert=True)
    assert main(["predict", str(fce_run), "--support", str(tmp_path / "support"), "--query",
                 str(tmp_path / "support"), "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert len(predictions) == 4
    for p in predictions:
        assert 0 <= p["runner_up_probability"] <= p["probability"] <= 1


def test_cli_refuses_fce_options_elsewhere(tmp_path, capsys):
    assert main(["train", "protonet", "--fce", "--episodes", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--fce is an option of the method (matchingnet), not of protonet" in err
    assert err.count("\n") == 1
    assert main(["train", "relationnet", "--fce-steps", "3", "--episodes", "1", "--out",
                 str(tmp_path)]) == 2
    assert "--fce-steps is an option of the method (matchingnet)" in capsys.readouterr().err
    assert main(["train", "matchingnet", "--fce-steps", "3", "--episodes", "1", "--out",
                 str(tmp_path)]) == 2
    assert "add --fce" in capsys.readouterr().err
    # --scale is shared by the cosine classifiers: refused elsewhere naming both
    assert main(["train", "protonet", "--scale", "10", "--episodes", "1", "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--scale is an option of the methods (" in err and "not of protonet" in err
    assert "matchingnet" in err and "baselinepp" in err


def test_cli_passes_the_scale_to_a_matching_network(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "matchingnet", "--scale", "10", "--way", "5", "--shot", "1",
                 "--query", "1", "--episodes", "1", "--val-every", "0", "--out", str(out),
                 "--no-progress"]) == 0
    method, record = load_checkpoint(out / "best")
    assert isinstance(method, MatchingNetwork) and method.scale == 10.0
    assert record["hparams"]["scale"] == 10.0


def test_default_run_folder_tells_fce_apart(monkeypatch, tmp_path):
    folders = []

    def interrupted(method, train_data, config, out, *args, **kwargs):
        folders.append(str(out))
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("fslearn.cli.train.train", interrupted)
    assert main(["train", "matchingnet", "--fce", "--way", "5", "--no-progress"]) == 130
    assert main(["train", "matchingnet", "--way", "5", "--no-progress"]) == 130
    assert folders == ["runs/matchingnet-vinyals-5w1s-fce-seed0",
                       "runs/matchingnet-vinyals-5w1s-seed0"]
