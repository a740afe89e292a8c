"""Siamese networks: the weighted-L1 score, the contrastive and triplet losses and the K-shot
mean-similarity classification against hand-computed cases, gradients against finite
differences, checkpoints, the training loop (pairs and triplets, resume, validation on episodes)
and the command line end to end on real Omniglot (tiny runs)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from conftest import make_dataset, train_interrupted_and_straight
from torch import nn

from fslearn.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from fslearn.cli import main
from fslearn.data import Episode, PairBatch, PairSampler, TripletBatch, TripletSampler
from fslearn.data.folder import save_image_folder
from fslearn.methods import METHODS, PrototypicalNetwork, SiameseNetwork, build_method
from fslearn.methods.siamese import (
    class_means,
    contrastive_loss,
    euclidean_distance,
    log_class_means,
    pairwise,
    squared_distance,
    triplet_loss,
    weighted_l1_logit,
)
from fslearn.prediction import predict
from fslearn.results import PAPER_RESULTS
from fslearn.training import TrainingConfig, config_from_record, train


class Identity(nn.Module):
    def forward(self, x):
        return x.flatten(1)


def _vectors(dim: int, loss: str = "bce", margin: float | None = None,
             dtype: torch.dtype = torch.float32) -> SiameseNetwork:
    """A Siamese network whose embedding is the input: ``[batch, dim, 1, 1]`` images are
    ``dim``-vectors."""
    return SiameseNetwork(Identity(), in_channels=dim, image_size=1, loss=loss,
                          margin=margin).to(dtype)


def _as_images(z: torch.Tensor) -> torch.Tensor:
    return z[:, :, None, None]


def _pairs(z1: torch.Tensor, z2: torch.Tensor, same: list[float]) -> PairBatch:
    n = len(same)
    return PairBatch(_as_images(z1), _as_images(z2), torch.tensor(same, dtype=z1.dtype),
                     torch.zeros(n, 2, dtype=torch.long), torch.zeros(n, 2, dtype=torch.long))


def _episode(support, support_y, query, n_way) -> Episode:
    """One task of already-embedded vectors (rows that are vectors skip the backbone)."""
    return Episode(support[None], torch.tensor([support_y]), query[None],
                   torch.zeros(1, len(query), dtype=torch.long), torch.arange(n_way)[None],
                   n_way)


# --- the model ---------------------------------------------------------------------------

def test_registered_with_hparams_that_rebuild_it():
    assert METHODS["siamese"] is SiameseNetwork
    for loss, margin in (("bce", None), ("contrastive", 1.0), ("triplet", 0.2)):
        model = build_method("siamese", loss=loss)
        assert model.hparams == {"in_channels": 1, "image_size": 28, "loss": loss,
                                 "margin": margin}
        assert build_method("siamese", **model.hparams).hparams == model.hparams
    # only Koch et al.'s score has weights of its own: alpha over the 64 Conv4 features, and b
    assert build_method("siamese").alpha.shape == (64,)
    assert build_method("siamese", image_size=84).alpha.shape == (64 * 5 * 5,)
    assert not hasattr(build_method("siamese", loss="triplet"), "alpha")


@pytest.mark.parametrize("kwargs, message", [
    ({"loss": "hinge"}, "loss must be one of bce, contrastive, triplet, got 'hinge'"),
    ({"margin": 1.0}, "The bce loss has no margin"),
    ({"loss": "contrastive", "margin": 0.0}, "margin must be a positive number, got 0.0"),
    ({"loss": "triplet", "margin": float("nan")}, "margin must be a positive number"),
    ({"image_size": 8}, "needs images of at least 16x16 pixels"),
])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        SiameseNetwork(**kwargs)
    assert message in str(error.value)


def test_weighted_l1_score_on_a_hand_computed_case():
    z1, z2 = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 0.0, 3.0]])
    alpha, bias = torch.tensor([0.5, -1.0, 2.0]), torch.tensor(0.25)
    # |z1 - z2| = (1, 2, 0): 0.5 * 1 - 1 * 2 + 2 * 0 + 0.25 = -1.25
    assert torch.allclose(weighted_l1_logit(z1, z2, alpha, bias), torch.tensor([-1.25]))
    model = _vectors(3)
    with torch.no_grad():
        model.alpha.copy_(alpha)
        model.bias.copy_(bias)
    # the score is symmetric, and the loss is the binary cross-entropy of sigmoid(-1.25)
    assert torch.allclose(model.pair_score(z2, z1), torch.tensor([-1.25]))
    p = 1 / (1 + math.exp(1.25))
    loss, logits = model.loss(_pairs(torch.cat([z1, z1]), torch.cat([z2, z2]), [1.0, 0.0]))
    assert torch.allclose(logits, torch.tensor([-1.25, -1.25]))
    assert math.isclose(float(loss.detach()), (-math.log(p) - math.log(1 - p)) / 2, rel_tol=1e-6)


def test_contrastive_loss_on_a_hand_computed_case():
    distance = torch.tensor([0.5, 3.0, 0.5])
    same = torch.tensor([1.0, 0.0, 0.0])
    # same: 0.5^2 / 2 = 0.125; different beyond the margin 2: 0; different at 0.5: 1.5^2 / 2
    assert math.isclose(float(contrastive_loss(distance, same, 2.0)), (0.125 + 0 + 1.125) / 3,
                        rel_tol=1e-6)
    # through the model: (0, 0)-(3, 4) is 5 apart, (1, 1)-(1, 2) is 1 apart
    model = _vectors(2, "contrastive", margin=2.0)
    z1, z2 = torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    loss, distances = model.loss(_pairs(z1, z2, [1.0, 0.0]))
    assert torch.allclose(distances, torch.tensor([5.0, 1.0]))
    assert math.isclose(float(loss.detach()), (25 / 2 + 1 / 2) / 2, rel_tol=1e-6)
    assert model.correct(distances, _pairs(z1, z2, [1.0, 0.0])) == (1, 2)  # "same" below m/2


def test_triplet_loss_on_a_hand_computed_case():
    assert math.isclose(float(triplet_loss(torch.tensor([0.1, 0.5]), torch.tensor([0.6, 0.2]),
                                           0.2)), (0 + 0.5) / 2, rel_tol=1e-6)
    # through the model, on unit vectors: the first positive is 2 away (squared), the negative
    # 4 (no loss); the second the other way round: 4 - 2 + 0.2
    model = _vectors(2, "triplet", margin=0.2)
    anchor = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    positive = torch.tensor([[0.0, 3.0], [-2.0, 0.0]])
    negative = torch.tensor([[-5.0, 0.0], [0.0, 7.0]])
    batch = TripletBatch(_as_images(anchor), _as_images(positive), _as_images(negative),
                         torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    loss, distances = model.loss(batch)
    assert torch.allclose(distances, torch.tensor([[2.0, 4.0], [4.0, 2.0]]), atol=1e-6)
    assert math.isclose(float(loss.detach()), 2.2 / 2, rel_tol=1e-6)
    assert model.correct(distances, batch) == (1, 2)


def test_euclidean_distance_has_no_nan_gradient_at_zero():
    z = torch.ones(1, 3, requires_grad=True)
    distance = euclidean_distance(z, torch.ones(1, 3))
    contrastive_loss(distance, torch.tensor([0.0]), 1.0).backward()
    assert torch.isfinite(z.grad).all()


def test_k_shot_scores_are_the_mean_similarity_to_each_class():
    # 1-d embeddings. Class 0: 0 and 4; class 1: 1, 1.5 and 1.5 (unequal shots). Query 0.4.
    support = torch.tensor([[0.0], [1.0], [4.0], [1.5], [1.5]])
    support_y = [0, 1, 0, 1, 1]
    query = torch.tensor([[0.4]])
    # contrastive: similarity -|q - s|; class 0: -(0.4 + 3.6) / 2 = -2, class 1: -(0.6 + 1.1 +
    # 1.1) / 3. The nearest single image is of class 0, but the mean says class 1.
    logits = _vectors(1, "contrastive")(_episode(support, support_y, query, 2))
    assert torch.allclose(logits, torch.tensor([[[-2.0, -2.8 / 3]]]))
    # triplet: minus the squared distance
    logits = _vectors(1, "triplet")(_episode(support, support_y, query, 2))
    assert torch.allclose(logits, torch.tensor([[[-(0.16 + 12.96) / 2,
                                                   -(0.36 + 1.21 + 1.21) / 3]]]))
    # bce with alpha = -2, b = 1: log of the mean P(same) = sigmoid(1 - 2|q - s|)
    model = _vectors(1)
    with torch.no_grad():
        model.alpha.fill_(-2.0)
        model.bias.fill_(1.0)

    def p(d):
        return 1 / (1 + math.exp(-(1 - 2 * d)))

    expected = [math.log((p(0.4) + p(3.6)) / 2), math.log((p(0.6) + 2 * p(1.1)) / 3)]
    logits = model(_episode(support, support_y, query, 2))
    assert torch.allclose(logits, torch.tensor([[expected]]), atol=1e-6)
    # softmax of the logits: each class's mean P(same) over their sum
    means = [math.exp(e) for e in expected]
    assert torch.allclose(logits.softmax(-1), torch.tensor([[[m / sum(means) for m in means]]]))


def test_one_shot_picks_the_most_similar_support_image():
    torch.manual_seed(0)
    support, query = torch.randn(6, 4), torch.randn(9, 4)
    for loss in ("bce", "contrastive", "triplet"):
        model = _vectors(4, loss)
        logits = model(_episode(support, list(range(6)), query, 6))[0]
        similarity = model.pair_score(query[:, None], support[None])
        assert torch.equal(logits.argmax(-1), similarity.argmax(-1)), loss


def test_helpers_agree_with_direct_computations():
    torch.manual_seed(0)
    q, s = torch.randn(3, 7, 5), torch.randn(3, 4, 5)
    full = squared_distance(q[:, :, None], s[:, None])
    assert torch.allclose(pairwise(squared_distance, q, s, max_numbers=1), full)  # 1 query a time
    assert torch.allclose(pairwise(squared_distance, q, s), full)
    assert pairwise(squared_distance, q[:, :0], s).shape == (3, 0, 4)
    y = torch.tensor([[0, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 1]])
    means = class_means(full, y, 2)
    for t in range(3):
        for n in range(2):
            assert torch.allclose(means[t, :, n], full[t][:, y[t] == n].mean(-1))
    logs = -full
    assert torch.allclose(log_class_means(logs, y, 2), class_means(logs.exp(), y, 2).log(),
                          atol=1e-5)
    # far below exp's range the log of the mean stays finite and right: log(mean(e^-1000,
    # e^-1001)) = -1000 + log((1 + e^-1) / 2)
    far = torch.tensor([[[-1000.0, -1001.0]]])
    assert torch.allclose(log_class_means(far, torch.tensor([[0, 0]]), 1),
                          torch.tensor([[[-1000 + math.log((1 + math.exp(-1)) / 2)]]]))


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    d = dict(dtype=torch.float64, requires_grad=True)
    z1, z2, alpha, bias = torch.randn(5, 4, **d), torch.randn(5, 4, **d), torch.randn(4, **d), \
        torch.randn((), **d)
    same = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(weighted_l1_logit, (z1, z2, alpha, bias))
    assert torch.autograd.gradcheck(
        lambda a, b: contrastive_loss(euclidean_distance(a, b), same, 2.5), (z1, z2))
    a, p, n = torch.randn(6, 3, **d), torch.randn(6, 3, **d), torch.randn(6, 3, **d)

    def triplet(a, p, n):
        a, p, n = (torch.nn.functional.normalize(x, dim=-1) for x in (a, p, n))
        return triplet_loss(squared_distance(a, p), squared_distance(a, n), 1.0)

    assert triplet(a, p, n) > 0  # some triplets inside the margin: the hinge is active
    assert torch.autograd.gradcheck(triplet, (a, p, n))
    # the episode scores of each variant, as functions of the embeddings (and alpha, b)
    support, query = torch.randn(1, 6, 4, **d), torch.randn(1, 3, 4, **d)
    y = torch.tensor([[0, 1, 2, 0, 1, 1]])
    for loss in ("bce", "contrastive", "triplet"):
        model = _vectors(4, loss, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda s, q, m=model: m.scores(s, y, q, 3),
                                        (support, query))
    # and of the learned weighting alpha, b, through the method's forward on an episode
    model = _vectors(4, dtype=torch.float64)
    episode = Episode(support.detach(), y, query.detach(), torch.zeros(1, 3, dtype=torch.long),
                      torch.arange(3)[None], 3)
    assert torch.autograd.gradcheck(
        lambda al, b: torch.func.functional_call(model, {"alpha": al, "bias": b}, (episode,)),
        (alpha, bias))


def test_a_batch_of_the_wrong_kind_is_refused():
    dataset = make_dataset([3] * 4, image_size=16)
    with pytest.raises(ValueError, match="with the bce loss trains on PairBatches, not on "
                       "TripletBatches"):
        SiameseNetwork(image_size=16).loss(TripletSampler(dataset, 2).episode(0))
    with pytest.raises(ValueError, match="with the triplet loss trains on TripletBatches"):
        SiameseNetwork(loss="triplet").loss(PairSampler(dataset, 2).episode(0))


def test_an_episode_trains_it_like_any_method():
    torch.manual_seed(0)
    model = SiameseNetwork()
    episode = Episode(torch.rand(1, 4, 1, 28, 28), torch.tensor([[0, 0, 1, 1]]),
                      torch.rand(1, 2, 1, 28, 28), torch.tensor([[1, 0]]),
                      torch.zeros(1, 2, dtype=torch.long), 2)
    loss, logits = model.loss(episode)
    assert torch.isclose(loss, torch.nn.functional.cross_entropy(logits[0], torch.tensor([1, 0])))
    assert model.correct(logits, episode)[1] == 2


@pytest.mark.parametrize("loss", ["bce", "contrastive", "triplet"])
def test_checkpoint_round_trip_gives_the_same_outputs(loss, tmp_path):
    torch.manual_seed(0)
    model = SiameseNetwork(loss=loss)
    model.train()
    model.loss((TripletSampler if loss == "triplet" else PairSampler)(
        make_dataset([3] * 5, image_size=28), 4).episode(0))  # batch norm statistics move
    save_checkpoint(tmp_path / "ck", model, {"note": "round trip"})
    loaded, record = load_checkpoint(tmp_path / "ck")
    assert type(loaded) is SiameseNetwork and record["method"] == "siamese"
    assert record["hparams"] == model.hparams and not loaded.training
    episode = Episode(torch.rand(2, 6, 1, 28, 28), torch.tensor([[0, 1, 2] * 2] * 2),
                      torch.rand(2, 4, 1, 28, 28), torch.zeros(2, 4, dtype=torch.long),
                      torch.zeros(2, 3, dtype=torch.long), 3)
    model.eval()
    assert torch.equal(loaded(episode), model(episode))


# --- the training loop --------------------------------------------------------------------

SMALL = dict(pairs_per_step=8, lr=1e-3, val_every=3, val_episodes=4, val_way=5, val_query=2,
             checkpoint_every=2, seed=3)


def _fresh(loss: str, seed: int = 3) -> SiameseNetwork:
    torch.manual_seed(seed)
    return SiameseNetwork(loss=loss)


@pytest.mark.parametrize("loss", ["bce", "triplet"])
def test_an_interrupted_run_resumes_to_the_same_weights(loss, tmp_path, omniglot_small):
    straight, _ = train_interrupted_and_straight(
        lambda seed: _fresh(loss, seed), omniglot_small, TrainingConfig(episodes=7, **SMALL),
        tmp_path, omniglot_small, crash_after=4)
    # validated on 5-way episodes with evaluate; the running accuracy is over pairs/triplets
    assert [e["episode"] for e in straight.history if "val_accuracy" in e] == [3, 6, 7]
    best = read_checkpoint(tmp_path / "straight" / "best").metadata
    assert best["metrics"]["val"]["n_way"] == 5 and best["metrics"]["val"]["episodes"] == 4
    assert all(0 <= e["train_accuracy"] <= 1 for e in straight.history)


@pytest.mark.parametrize("loss", ["bce", "contrastive", "triplet"])
def test_training_lowers_the_loss_on_held_out_pairs(loss, omniglot_small, tmp_path):
    # a smoke test that a broken loss (a wrong sign, a swapped target) fails: 12 steps of 16
    # pairs or triplets lower the loss on 64 others (batch statistics, as in training; measured:
    # by 15%, 95% and 54% for bce, contrastive and triplet)
    model = _fresh(loss, seed=0)
    sampler = (TripletSampler if loss == "triplet" else PairSampler)(omniglot_small, 64, 123)
    held_out = sampler.episode(0)

    def held_out_loss() -> float:
        with torch.no_grad():
            return float(model.train().loss(held_out)[0])

    before = held_out_loss()
    train(model, omniglot_small, TrainingConfig(episodes=12, pairs_per_step=16, lr=3e-3,
                                                val_every=0, checkpoint_every=12),
          tmp_path, progress=False, device="cpu")
    assert held_out_loss() < 0.95 * before, (before, held_out_loss())


def test_the_loop_refuses_mismatched_methods_and_configs(tmp_path, omniglot_small):
    with pytest.raises(ValueError, match="learns from pairs, not episodes: set "
                       r"TrainingConfig\.batch_size, the pairs per step"):
        train(_fresh("bce"), omniglot_small, TrainingConfig(episodes=1, val_every=0), tmp_path,
              progress=False)
    # one batch_size: the old keyword is the pairs of a step here, the episodes of one there
    assert TrainingConfig(pairs_per_step=4) == TrainingConfig(batch_size=4)
    # the settings of another kind of batch are refused, by a Siamese network as by ProtoNet
    for method in (_fresh("bce"), PrototypicalNetwork()):
        with pytest.raises(ValueError, match=rf"TrainingConfig\.sampler sets per_class, which "
                           rf"the sampler of {method.name}'s training batches does not read "
                           r"\(its settings: none\): leave it out"):
            train(method, omniglot_small, TrainingConfig(episodes=1, val_every=0, batch_size=4,
                                                         sampler={"per_class": 4}),
                  tmp_path, progress=False)
    with pytest.raises(ValueError, match="pairs_per_step must be a positive integer or None, "
                       "got 0"):
        TrainingConfig(pairs_per_step=0)
    with pytest.raises(ValueError, match="set one of them"):
        TrainingConfig(pairs_per_step=4, per_class=3)
    with pytest.raises(ValueError, match="got 5: use 4 or 6"):
        train(_fresh("bce"), omniglot_small, TrainingConfig(episodes=1, val_every=0,
                                                            pairs_per_step=5), tmp_path,
              progress=False)
    assert not (tmp_path / "last").exists()


def test_resuming_with_another_loss_is_refused(tmp_path, omniglot_small):
    config = TrainingConfig(episodes=1, **{**SMALL, "val_every": 0})
    train(_fresh("contrastive"), omniglot_small, config, tmp_path, progress=False)
    with pytest.raises(ValueError, match=r'other hyper-parameters \(saved, requested\): '
                       r'\{"loss": \["contrastive", "triplet"\], "margin": \[1\.0, 0\.2\]\}'):
        train(_fresh("triplet"), omniglot_small, TrainingConfig(episodes=2, **{**SMALL,
              "val_every": 0}), tmp_path, progress=False)


# --- the command line, on real Omniglot -----------------------------------------------------

@pytest.fixture(scope="module")
def siamese_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("siamese") / "run"
    # no validation here (the loop's validation is tested above): each would embed the 13760
    # validation images
    assert main(["train", "siamese", "--loss", "contrastive", "--margin", "2",
                 "--pairs-per-step", "8", "--episodes", "3", "--val-split", "none",
                 "--checkpoint-every", "1", "--threads", "1", "--out", str(out),
                 "--no-progress"]) == 0
    return out


def test_command_line_train_evaluate_report_predict(siamese_run, omniglot_test, tmp_path,
                                                    capsys):
    record = load_checkpoint(siamese_run / "best")[1]
    assert record["hparams"] == {"in_channels": 1, "image_size": 28, "loss": "contrastive",
                                 "margin": 2.0}
    assert config_from_record(record["config"]).batch_size == 8  # pairs per step
    assert read_checkpoint(siamese_run / "last").metadata["episode"] == 3
    assert record["command"].startswith("fslearn train siamese --loss contrastive")
    capsys.readouterr()

    # test classes exported as a student's drawings: evaluate and predict on them (report
    # below embeds the whole Omniglot test split once)
    classes = omniglot_test.select_classes([0, 7, 11, 300, 900])
    save_image_folder(classes, tmp_path / "images", invert=True)
    assert main(["evaluate", str(siamese_run), "--data", str(tmp_path / "images"), "--way", "5",
                 "--shot", "2", "--episodes", "4", "--query", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["n_way"], result["k_shot"], result["episodes"]) == (5, 2, 4)
    assert 0 <= result["accuracy"] <= 1

    predictions = predict(siamese_run, classes, tmp_path / "images")
    assert len(predictions) == len(classes)
    assert all(p.label in classes.class_names and p.probability >= p.runner_up_probability
               for p in predictions)

    copy = tmp_path / "ck"
    shutil.copytree(siamese_run / "best", copy)
    assert main(["report", str(copy), "--episodes", "2", "--query", "1", "--write"]) == 0
    report = json.loads((copy / "results.json").read_text())
    assert [(r["n_way"], r["k_shot"], r["paper_accuracy"]) for r in report["results"]] == [
        (5, 1, 0.973), (5, 5, 0.984), (20, 1, 0.882), (20, 5, 0.970)]
    assert report["paper"].startswith("Koch, Zemel and Salakhutdinov (2015)")
    assert all(r["dataset"] == "omniglot/vinyals/test" for r in report["results"])


def test_a_finished_command_line_run_continues_and_refuses_another_loss(siamese_run, capsys):
    argv = ["train", "siamese", "--loss", "contrastive", "--margin", "2", "--pairs-per-step",
            "8", "--val-split", "none", "--checkpoint-every", "1", "--threads", "1", "--out",
            str(siamese_run), "--no-progress"]
    assert main([*argv, "--episodes", "4"]) == 0
    assert read_checkpoint(siamese_run / "last").metadata["episode"] == 4
    capsys.readouterr()
    assert main([*argv[:3], "triplet", *argv[4:], "--episodes", "5"]) == 2
    assert "other hyper-parameters" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "protonet", "--loss", "bce", "--margin", "1"], "--loss, --margin are options of "
     "the Siamese networks (siamese), which train on pairs, not of protonet: leave them out."),
    (["train", "mann", "--pairs-per-step", "8"], "--pairs-per-step is an option of the Siamese "
     "networks (siamese)"),
    (["train", "siamese", "--shot", "5"], "--shot shapes training episodes, but siamese trains "
     "on pairs or triplets, --pairs-per-step of them per step"),
    (["train", "siamese", "--way", "20", "--batch", "4"], "--way, --tasks shape training "
     "episodes"),
    (["train", "siamese", "--margin", "1"], "The bce loss has no margin"),
    (["train", "siamese", "--loss", "triplet", "--margin", "-1"], "margin must be a positive "
     "number, got -1.0"),
    (["train", "siamese", "--pairs-per-step", "7"], "batch must be an even number of pairs, "
     "half same and half different, got 7: use 6 or 8."),
    (["train", "siamese", "--sinusoid"], "--sinusoid is for"),
])
def test_bad_requests_are_one_line_errors(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_paper_figures_are_those_of_the_note():
    assert PAPER_RESULTS["siamese"] == {(5, 1): 0.973, (5, 5): 0.984, (20, 1): 0.882,
                                        (20, 5): 0.970}
    assert "Vinyals protocol" in PAPER_RESULTS["citations"]["siamese"]
