"""Baseline and Baseline++ (Chen et al. 2019): the cosine head against a hand-computed case and
finite differences, the per-episode fine-tuning (the authors' SGD recipe, support set only,
reproducible), checkpoints, pre-training through the one loop (resume), and the command line end
to end on real Omniglot (tiny runs)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from conftest import train_interrupted_and_straight
from torch import nn

from fslearn.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from fslearn.cli import main
from fslearn.data import Episode, LabelledBatch, LabelledBatchSampler
from fslearn.data.folder import save_image_folder
from fslearn.evaluation import evaluate
from fslearn.methods import (
    METHODS,
    Baseline,
    BaselinePlusPlus,
    PrototypicalNetwork,
    SiameseNetwork,
    build_method,
)
from fslearn.methods.baseline import (
    CosineClassifier,
    cosine_logits,
    cosine_scale,
    finetune_head,
)
from fslearn.prediction import predict
from fslearn.results import PAPER_RESULTS
from fslearn.training import TrainingConfig, train


class Identity(nn.Module):
    def forward(self, x):
        return x.flatten(1)


def _on_vectors(cls: type[Baseline], dim: int, **kwargs) -> Baseline:
    """A method whose embedding is the input: ``[n, dim, 1, 1]`` images are ``dim``-vectors."""
    return cls(Identity(), in_channels=dim, image_size=1, num_classes=3, **kwargs)


def _episode(support_z, support_y, query_z, query_y, n_way) -> Episode:
    """Already-embedded tasks (rows that are vectors skip the backbone)."""
    tasks = support_z.shape[0]
    return Episode(support_z, support_y, query_z, query_y,
                   torch.arange(n_way).expand(tasks, -1), n_way)


def _one_hot_episode(tasks: int = 2, n_way: int = 4, k_shot: int = 2, n_query: int = 3,
                     dim: int = 6) -> Episode:
    """Each class's support and query embeddings are the one-hot vector of its own (shuffled)
    component, plus a little noise: trivially separable."""
    g = torch.Generator().manual_seed(0)
    support, query = [], []
    for _ in range(tasks):
        axes = torch.randperm(dim, generator=g)[:n_way]
        base = F.one_hot(axes, dim).float()
        support.append(base.repeat_interleave(k_shot, 0)
                       + 0.05 * torch.rand(n_way * k_shot, dim, generator=g))
        query.append(base.repeat_interleave(n_query, 0)
                     + 0.05 * torch.rand(n_way * n_query, dim, generator=g))
    labels = torch.arange(n_way)
    return _episode(torch.stack(support), labels.repeat_interleave(k_shot).expand(tasks, -1),
                    torch.stack(query), labels.repeat_interleave(n_query).expand(tasks, -1),
                    n_way)


# --- the model ---------------------------------------------------------------------------

def test_registered_with_hparams_that_rebuild_it():
    assert METHODS["baseline"] is Baseline and METHODS["baselinepp"] is BaselinePlusPlus
    model = build_method("baselinepp", num_classes=80)
    assert model.hparams == {"in_channels": 1, "num_classes": 80, "image_size": 28,
                             "scale": None, "finetune_epochs": 100, "finetune_batch": 4,
                             "finetune_lr": 0.01, "finetune_seed": 0}
    assert isinstance(model.classifier, CosineClassifier) and model.classifier.scale == 2.0
    assert build_method("baselinepp").classifier.scale == 10.0  # 4112 classes
    linear = build_method("baseline", num_classes=80)
    assert "scale" not in linear.hparams and isinstance(linear.classifier, nn.Linear)
    assert linear.classifier.out_features == 80 and linear.classifier.in_features == 64
    rebuilt = build_method("baseline", **linear.hparams)
    assert rebuilt.hparams == linear.hparams


@pytest.mark.parametrize("cls, kwargs, message", [
    (Baseline, {"scale": 3.0}, "scale is the cosine head's factor, an option of baselinepp, "
     "not of baseline"),
    (BaselinePlusPlus, {"scale": -1.0}, "scale must be a positive number, got -1.0"),
    (Baseline, {"num_classes": 1}, "num_classes must be at least 2"),
    (Baseline, {"finetune_epochs": 0}, "finetune_epochs must be a positive integer, got 0"),
    (Baseline, {"finetune_batch": 2.0}, "finetune_batch must be a positive integer, got 2.0"),
    (Baseline, {"finetune_lr": 0.0}, "finetune_lr must be a positive number, got 0.0"),
    (Baseline, {"finetune_seed": -2}, "finetune_seed must be a non-negative integer, got -2"),
])
def test_bad_constructor_arguments(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_cosine_logits_on_a_hand_computed_case():
    z = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
    weight = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    # cosines: (3/5, 4/5, -7/(5 sqrt 2)) and (0, -1, 1/sqrt 2); times the scale 2
    expected = 2 * torch.tensor([[0.6, 0.8, -7 / (5 * math.sqrt(2))],
                                 [0.0, -1.0, 1 / math.sqrt(2)]])
    assert torch.allclose(cosine_logits(z, weight, 2.0), expected, atol=1e-6)
    head = CosineClassifier(2, 3, scale=2.0)
    head.weight.data = weight * 7  # only directions count
    assert torch.allclose(head(z), expected, atol=1e-6)
    assert (cosine_scale(4112), cosine_scale(201), cosine_scale(200), cosine_scale(5)) == (
        10.0, 10.0, 2.0, 2.0)


def test_cosine_head_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: cosine_logits(a, b, 2.0), (z, weight))
    head = CosineClassifier(4, 3, scale=10.0).double()
    x = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w: F.cross_entropy(
        cosine_logits(a, w, 10.0), torch.tensor([0, 1, 2, 0, 1])), (x, head.weight))


@pytest.mark.parametrize("scale", [None, 2.0])
def test_fine_tuning_is_torch_sgd_with_the_authors_recipe(scale):
    # one task, 10 support images in batches of 4 (the last one of 2): torch.optim.SGD with
    # momentum 0.9, dampening 0.9, weight decay 1e-3 on nn.Linear-like weights, same shuffles
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 10, 6, generator=g, dtype=torch.float64)
    y = torch.arange(5).repeat_interleave(2)[None]
    weight, bias = finetune_head(z, y, 5, scale, epochs=3, batch=4, lr=0.05, seed=1)
    ours = torch.Generator().manual_seed(1)
    w = ((torch.rand(5, 6, generator=ours, dtype=torch.float64) * 2 - 1) / math.sqrt(6))
    params = [w.requires_grad_()]
    if scale is None:
        params.append(((torch.rand(5, generator=ours, dtype=torch.float64) * 2 - 1)
                       / math.sqrt(6)).requires_grad_())
    sgd = torch.optim.SGD(params, lr=0.05, momentum=0.9, dampening=0.9, weight_decay=1e-3)
    for _ in range(3):
        order = torch.randperm(10, generator=ours)
        for start in range(0, 10, 4):
            rows = order[start : start + 4]
            logits = (z[0, rows] @ params[0].T + params[1] if scale is None
                      else cosine_logits(z[0, rows], params[0], scale))
            sgd.zero_grad()
            F.cross_entropy(logits, y[0, rows]).backward()
            sgd.step()
    assert torch.allclose(weight[0], params[0], atol=1e-12)
    assert (bias is None) == (scale is not None)
    if bias is not None:
        assert torch.allclose(bias[0], params[1], atol=1e-12)


@pytest.mark.parametrize("cls", [Baseline, BaselinePlusPlus])
def test_the_fine_tuned_head_separates_a_trivially_separable_episode(cls):
    episode = _one_hot_episode()
    model = _on_vectors(cls, 6).eval()
    with torch.no_grad():  # as in evaluate: the fine-tuning turns gradients on for itself
        logits = model(episode)
    assert logits.shape == (2, 12, 4)
    assert torch.equal(logits.argmax(-1), episode.query_y)


@pytest.mark.parametrize("cls", [Baseline, BaselinePlusPlus])
def test_fine_tuning_reads_the_support_set_only(cls):
    episode = _one_hot_episode()
    model = _on_vectors(cls, 6).eval()
    logits = model(episode)
    # the queries' labels are never read
    relabelled = _episode(episode.support_x, episode.support_y, episode.query_x,
                          torch.zeros_like(episode.query_y), 4)
    assert torch.equal(model(relabelled), logits)
    # nor do other queries change a query's scores: the head is trained on the support set
    fewer = _episode(episode.support_x, episode.support_y, episode.query_x[:, :5],
                     episode.query_y[:, :5], 4)
    assert torch.allclose(model(fewer), logits[:, :5], atol=1e-6)
    # but the support set does
    moved = _episode(episode.support_x.roll(1, dims=-1), episode.support_y, episode.query_x,
                     episode.query_y, 4)
    assert not torch.allclose(model(moved), logits)
    # and each task is fine-tuned alone, whatever shares its batch
    alone = _episode(episode.support_x[1:], episode.support_y[1:], episode.query_x[1:],
                     episode.query_y[1:], 4)
    assert torch.allclose(model(alone)[0], logits[1], atol=1e-6)
    assert not any(p.grad is not None for p in model.parameters())


def test_evaluation_is_reproducible_and_independent_of_batching(omniglot_small):
    torch.manual_seed(0)
    model = BaselinePlusPlus(num_classes=80, finetune_epochs=5)
    a = evaluate(model, omniglot_small, 5, 1, n_query=2, episodes=6, episodes_per_batch=4)
    b = evaluate(model, omniglot_small, 5, 1, n_query=2, episodes=6, episodes_per_batch=6)
    assert a.per_episode == b.per_episode
    assert evaluate(model, omniglot_small, 5, 1, n_query=2, episodes=6,
                    episodes_per_batch=4).per_episode == a.per_episode


def test_pre_training_loss_is_cross_entropy_over_all_classes():
    model = _on_vectors(Baseline, 4)
    x = torch.randn(5, 4, 1, 1)
    y = torch.tensor([0, 2, 1, 1, 0])
    loss, logits = model.loss(LabelledBatch(x, y, torch.arange(5)))
    assert logits.shape == (5, 3)
    assert torch.allclose(loss, F.cross_entropy(model.classifier(x.flatten(1)), y))
    assert model.correct(logits, LabelledBatch(x, y, torch.arange(5)))[1] == 5
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.2 for its 3 training classes, "
                       "got labels from 0 to 3"):
        model.loss(LabelledBatch(x, torch.tensor([0, 1, 2, 3, 0]), torch.arange(5)))
    with pytest.raises(ValueError, match="pre-trains as a classifier on labelled mini-batches "
                       r"\(TrainingConfig.batch_size\), not on Episodes"):
        model.loss(_one_hot_episode(dim=4, n_way=3))


def test_checkpoint_round_trip_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = BaselinePlusPlus(num_classes=7, scale=5.0, finetune_epochs=3).eval()
    save_checkpoint(tmp_path / "ck", model, {"note": "test"})
    loaded, record = load_checkpoint(tmp_path / "ck")
    assert isinstance(loaded, BaselinePlusPlus) and record["hparams"] == model.hparams
    assert loaded.classifier.scale == 5.0
    x = torch.rand(2, 10, 1, 28, 28)
    episode = Episode(x[:, :5], torch.arange(5).expand(2, -1), x[:, 5:],
                      torch.arange(5).expand(2, -1), torch.arange(5).expand(2, -1), 5)
    with torch.no_grad():
        assert torch.equal(loaded(episode), model(episode))
        assert torch.equal(loaded.classifier(torch.ones(1, 64)),
                           model.classifier(torch.ones(1, 64)))


# --- pre-training through the one loop -----------------------------------------------------

SMALL = dict(batch_size=8, lr=1e-3, val_every=3, val_episodes=4, val_way=5, val_query=2,
             checkpoint_every=2, seed=3)


def _fresh(cls: type[Baseline] = BaselinePlusPlus, seed: int = 3, **kwargs: object
           ) -> Baseline:
    torch.manual_seed(seed)
    return cls(num_classes=80, finetune_epochs=3, **kwargs)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, omniglot_small):
    straight, _ = train_interrupted_and_straight(
        lambda seed: _fresh(seed=seed), omniglot_small, TrainingConfig(episodes=7, **SMALL),
        tmp_path, omniglot_small, crash_after=4)
    # validated on 5-way episodes through evaluate (fine-tuning a head on each)
    assert [e["episode"] for e in straight.history if "val_accuracy" in e] == [3, 6, 7]
    best = read_checkpoint(tmp_path / "straight" / "best").metadata
    assert best["metrics"]["val"]["n_way"] == 5 and best["config"]["batch_size"] == 8
    assert all(0 <= e["train_accuracy"] <= 1 for e in straight.history)


@pytest.mark.parametrize("cls", [Baseline, BaselinePlusPlus])
def test_pre_training_lowers_the_loss_on_held_out_batches(cls, omniglot_small, tmp_path):
    # a smoke test that a broken loss fails: 15 steps of 16 images lower the loss on 160 others
    # (Baseline++ at scale 10: at the scale 2 of Chen et al.'s rule for 80 classes, logits in
    # [-2, 2] leave the loss near log 80 for many more steps)
    model = _fresh(cls, seed=0, **({"scale": 10.0} if cls is BaselinePlusPlus else {}))
    held_out = LabelledBatchSampler(omniglot_small, 160, seed=123).episode(0)

    def held_out_loss() -> float:
        with torch.no_grad():
            return float(model.train().loss(held_out)[0])

    before = held_out_loss()
    train(model, omniglot_small, TrainingConfig(episodes=15, batch_size=16, lr=3e-3,
                                                val_every=0, checkpoint_every=15),
          tmp_path, progress=False, device="cpu")
    assert held_out_loss() < 0.97 * before, (before, held_out_loss())


def test_the_loop_refuses_mismatched_methods_and_configs(tmp_path, omniglot_small):
    with pytest.raises(ValueError, match="baselinepp pre-trains on labelled mini-batches, not "
                       r"episodes: set TrainingConfig\.batch_size \(Chen et al\.: 16\)"):
        train(_fresh(), omniglot_small, TrainingConfig(episodes=1, val_every=0), tmp_path,
              progress=False)
    # one batch_size, counted by each method's sampler (images here, pairs or episodes there):
    # the settings of another kind of batch are what is refused
    for method in (_fresh(), SiameseNetwork(), PrototypicalNetwork()):
        with pytest.raises(ValueError, match=rf"TrainingConfig\.sampler sets labels, per_class, "
                           rf"which the sampler of {method.name}'s training batches does not "
                           r"read \(its settings: none\): leave them out\."):
            train(method, omniglot_small, TrainingConfig(episodes=1, val_every=0, batch_size=8,
                                                         sampler={"labels": "one_hot",
                                                                  "per_class": 2}),
                  tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"built with a classifier over 4112 classes, but "
                       r"omniglot/vinyals/val\[80 classes\] has 80: build it with "
                       r"num_classes=80"):
        train(Baseline(), omniglot_small, TrainingConfig(episodes=1, val_every=0,
                                                         batch_size=8), tmp_path,
              progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive integer or None, got 0"):
        TrainingConfig(batch_size=0)
    with pytest.raises(ValueError, match="set one of them"):
        TrainingConfig(batch_size=4, pairs_per_step=4)
    assert not (tmp_path / "last").exists()


# --- the command line, on real Omniglot -----------------------------------------------------

@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline") / "run"
    # no validation here (the loop's validation is tested above): each would embed the 13760
    # validation images
    assert main(["train", "baseline", "--batch-size", "8", "--episodes", "3", "--val-split",
                 "none", "--finetune-epochs", "5", "--checkpoint-every", "1", "--threads", "1",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def test_command_line_train_evaluate_report_predict(baseline_run, omniglot_test, tmp_path,
                                                    capsys):
    record = load_checkpoint(baseline_run / "best")[1]
    assert record["hparams"] == {"in_channels": 1, "num_classes": 4112, "image_size": 28,
                                 "finetune_epochs": 5, "finetune_batch": 4,
                                 "finetune_lr": 0.01, "finetune_seed": 0}
    assert record["config"]["batch_size"] == 8 and record["config"]["lr_gamma"] == 1.0
    assert read_checkpoint(baseline_run / "last").metadata["episode"] == 3
    assert record["command"].startswith("fslearn train baseline --batch-size 8")
    capsys.readouterr()

    classes = omniglot_test.select_classes([0, 7, 11, 300, 900])
    save_image_folder(classes, tmp_path / "images", invert=True)
    assert main(["evaluate", str(baseline_run), "--data", str(tmp_path / "images"), "--way",
                 "5", "--shot", "2", "--episodes", "4", "--query", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["n_way"], result["k_shot"], result["episodes"]) == (5, 2, 4)
    assert 0 <= result["accuracy"] <= 1

    predictions = predict(baseline_run, classes, tmp_path / "images")
    assert len(predictions) == len(classes)
    assert all(p.label in classes.class_names and p.probability >= p.runner_up_probability
               for p in predictions)

    copy = tmp_path / "ck"
    shutil.copytree(baseline_run / "best", copy)
    assert main(["report", str(copy), "--split", "val", "--episodes", "2", "--query", "1",
                 "--write"]) == 0
    report = json.loads((copy / "results.json").read_text())
    assert [(r["n_way"], r["k_shot"], r["paper_accuracy"]) for r in report["results"]] == [
        (5, 1, None), (5, 5, None), (20, 1, None), (20, 5, None)]
    assert all(r["dataset"] == "omniglot/vinyals/val" for r in report["results"])


def test_a_finished_command_line_run_continues(baseline_run):
    argv = ["train", "baseline", "--batch-size", "8", "--val-split", "none",
            "--finetune-epochs", "5", "--checkpoint-every", "1", "--threads", "1", "--out",
            str(baseline_run), "--no-progress"]
    assert main([*argv, "--episodes", "4"]) == 0
    assert read_checkpoint(baseline_run / "last").metadata["episode"] == 4


@pytest.mark.parametrize("argv, message", [
    (["train", "protonet", "--batch-size", "8"], "--batch-size is an option of the transfer "
     "baselines (baseline, baselinepp), which pre-train on labelled mini-batches, not of "
     "protonet: leave it out."),
    (["train", "protonet", "--finetune-epochs", "5"], "--finetune-epochs is an option of the "
     "transfer baselines (baseline, baselinepp), not of protonet: leave it out."),
    (["train", "siamese", "--batch-size", "8"], "--batch-size is an option of the transfer "
     "baselines"),
    (["train", "baseline", "--pairs-per-step", "8"], "--pairs-per-step is an option of the "
     "Siamese networks (siamese)"),
    (["train", "baseline", "--shot", "5", "--way", "20"], "--way, --shot shape training "
     "episodes, but baseline pre-trains on labelled mini-batches, --batch-size images per "
     "step"),
    (["train", "baseline", "--scale", "3"], "scale is the cosine head's factor, an option of "
     "baselinepp, not of baseline: leave it out."),
    (["train", "baselinepp", "--batch-size", "0"], "TrainingConfig.batch_size must be a "
     "positive integer or None, got 0"),
    (["train", "baselinepp", "--finetune-lr", "-1"], "finetune_lr must be a positive number"),
])
def test_bad_requests_are_one_line_errors(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_no_paper_figures_without_confirmed_values():
    # Chen et al. give Omniglot figures only in an appendix the notes could not confirm
    assert "baseline" not in PAPER_RESULTS and "baselinepp" not in PAPER_RESULTS
