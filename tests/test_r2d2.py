"""R2-D2: the closed-form ridge head against a hand computation, the Woodbury form against the
primal one and the direct least-squares solution, the authors' scaling, gradients through the
solve against finite differences (float64), the authors' embedding, random shots, bad input,
checkpoints, and the command line with a resumed run (tiny runs on real Omniglot)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import train_interrupted_and_straight
from torch import nn

from fslearn.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from fslearn.cli import main
from fslearn.data import Episode
from fslearn.methods import R2D2, build_method
from fslearn.methods.r2d2 import (
    EMBEDDINGS,
    R2D2Embedding,
    redraw_shots,
    ridge_head_logits,
    ridge_regression,
)
from fslearn.results import PAPER_RESULTS
from fslearn.training import TrainingConfig


def _episode(tasks=1, n_way=5, k_shot=2, n_query=3, size=28, seed=0) -> Episode:
    generator = torch.Generator().manual_seed(seed)
    support_y = torch.arange(n_way).repeat_interleave(k_shot).expand(tasks, -1).contiguous()
    query_y = torch.arange(n_way).repeat_interleave(n_query).expand(tasks, -1).contiguous()
    classes = torch.randperm(100, generator=generator)[: tasks * n_way].view(tasks, n_way)
    return Episode(torch.rand(tasks, n_way * k_shot, 1, size, size, generator=generator),
                   support_y, torch.rand(tasks, n_way * n_query, 1, size, size,
                                         generator=generator), query_y, classes, n_way)


# --- the ridge regression ------------------------------------------------------------------


def test_the_head_on_a_case_worked_by_hand():
    # 1-D embeddings, two classes of one shot: X = [[1, 1], [-1, 1]] with the bias column, Y = I.
    # n = 2 and lambda = 0.5, so the system has n * lambda = 1: X X^T + I = 3 I, and
    # W = X^T (3 I)^-1 Y = X^T / 3 = [[1, -1], [1, 1]] / 3. The query z = 2 gives
    # [2, 1] W = [1, -1/3]; with scale 3 and bias 0.5 the logits are [3.5, -0.5].
    support_z = torch.tensor([[[1.0], [-1.0]]], dtype=torch.float64)
    support_y = torch.tensor([[0, 1]])
    query_z = torch.tensor([[[2.0]]], dtype=torch.float64)
    for form in ("woodbury", "primal", "auto"):
        logits = ridge_head_logits(support_z, support_y, query_z, 2, 0.5, 3.0, 0.5, form)
        assert torch.allclose(logits, torch.tensor([[[3.5, -0.5]]], dtype=torch.float64))
    weights = ridge_regression(torch.tensor([[[1.0, 1.0], [-1.0, 1.0]]]), torch.eye(2)[None], 1.0)
    assert torch.allclose(weights, torch.tensor([[[1.0, -1.0], [1.0, 1.0]]]) / 3)


@pytest.mark.parametrize(("n", "p"), [(6, 9), (9, 4), (5, 5)])
def test_woodbury_equals_the_primal_solve_and_the_minimiser(n, p):
    generator = torch.Generator().manual_seed(n * p)
    x = torch.randn(3, n, p, generator=generator, dtype=torch.float64)
    y = torch.randn(3, n, 4, generator=generator, dtype=torch.float64)
    woodbury = ridge_regression(x, y, 0.3, "woodbury")
    primal = ridge_regression(x, y, 0.3, "primal")
    assert woodbury.shape == (3, p, 4)
    assert torch.allclose(woodbury, primal, atol=1e-10)
    assert torch.allclose(ridge_regression(x, y, 0.3, "auto"), primal, atol=1e-10)
    # the direct solution: least squares on x stacked over sqrt(lambda) I, y over zeros
    stacked_x = torch.cat([x, 0.3**0.5 * torch.eye(p, dtype=x.dtype).expand(3, -1, -1)], 1)
    stacked_y = torch.cat([y, torch.zeros(3, p, 4, dtype=y.dtype)], 1)
    assert torch.allclose(woodbury, torch.linalg.lstsq(stacked_x, stacked_y).solution,
                          atol=1e-10)
    # and the gradient of ||xW - y||^2 + lambda ||W||^2 vanishes there
    w = woodbury.clone().requires_grad_()
    objective = (x @ w - y).pow(2).sum() + 0.3 * w.pow(2).sum()
    (gradient,) = torch.autograd.grad(objective, w)
    assert gradient.abs().max() < 1e-9


def test_the_authors_scaling_is_ridge_on_the_mean_squared_error():
    # their code divides X (ones column included) and Y by sqrt(n) and solves with lambda
    generator = torch.Generator().manual_seed(1)
    support_z = torch.randn(2, 6, 4, generator=generator, dtype=torch.float64)
    support_y = torch.tensor([[0, 1, 2, 0, 1, 2], [2, 2, 0, 1, 0, 1]])
    query_z = torch.randn(2, 5, 4, generator=generator, dtype=torch.float64)
    root_n = 6**0.5
    x = torch.cat([support_z, torch.ones(2, 6, 1, dtype=torch.float64)], -1) / root_n
    y = F.one_hot(support_y, 3).double() / root_n
    theirs = x.transpose(1, 2) @ torch.linalg.inv(x @ x.transpose(1, 2) + 50 * torch.eye(6)) @ y
    outputs = query_z @ theirs[:, :4] + theirs[:, 4:]
    ours = ridge_head_logits(support_z, support_y, query_z, 3, 50.0, 1.0, 0.0)
    assert torch.allclose(ours, outputs, atol=1e-12)


def test_labels_in_any_order_give_the_same_scores():
    generator = torch.Generator().manual_seed(2)
    support_z = torch.randn(1, 6, 5, generator=generator)
    support_y = torch.tensor([[0, 0, 1, 1, 2, 2]])
    query_z = torch.randn(1, 4, 5, generator=generator)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    a = ridge_head_logits(support_z, support_y, query_z, 3, 1.0, 2.0, 0.1)
    b = ridge_head_logits(support_z[:, order], support_y[:, order], query_z, 3, 1.0, 2.0, 0.1)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("form", ["woodbury", "primal"])
def test_gradients_through_the_solve_match_finite_differences(form):
    generator = torch.Generator().manual_seed(3)

    def leaf(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).requires_grad_()

    support_z, query_z = leaf(2, 6, 4), leaf(2, 3, 4)
    lam, scale, bias = (torch.tensor(value, dtype=torch.float64, requires_grad=True)
                        for value in (0.7, 2.0, 0.3))
    support_y = torch.tensor([[0, 1, 2, 0, 1, 2], [1, 0, 2, 2, 1, 0]])
    query_y = torch.tensor([[2, 0, 1], [0, 0, 2]])

    def loss(s, q, lam_, scale_, bias_):
        logits = ridge_head_logits(s, support_y, q, 3, lam_, scale_, bias_, form)
        return F.cross_entropy(logits.flatten(0, 1), query_y.flatten())

    assert torch.autograd.gradcheck(loss, (support_z, query_z, lam, scale, bias))


def test_the_meta_gradient_reaches_the_embedding_through_the_solve():
    torch.manual_seed(0)
    method = R2D2(embedding="64c", learn_lambda=True)
    loss, _ = method.loss(_episode())
    loss.backward()
    assert method.lam.grad is not None and method.scale.grad is not None
    first_conv = method.backbone.blocks[0][0]
    assert first_conv.weight.grad.abs().sum() > 0
    fixed = R2D2(embedding="64c")
    fixed.loss(_episode())[0].backward()
    assert fixed.lam.grad is None and not fixed.lam.requires_grad


# --- the authors' embedding and hyper-parameters --------------------------------------------


def test_the_authors_embedding_and_defaults():
    embedding = R2D2Embedding()
    assert embedding(torch.rand(2, 1, 28, 28)).shape == (2, 384 * 2 * 2 + 512 * 2 * 2)
    assert embedding.output_dim(28) == 3584 and embedding.output_dim(84) == (384 + 512) * 9 * 9
    convs = [m for m in embedding.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 192, 384, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    pools = [m.stride for m in embedding.modules() if isinstance(m, nn.MaxPool2d)]
    assert pools == [2, 2, 2, 1, 1]  # the blocks', then the extra pool of the third block
    assert {m.negative_slope for m in embedding.modules() if isinstance(m, nn.LeakyReLU)} == {0.1}
    assert not any(isinstance(m, nn.Dropout) for m in embedding.modules())  # Omniglot: 0
    assert sum(isinstance(m, nn.Dropout) for m in R2D2Embedding(dropout=0.1).modules()) == 2
    small = R2D2(embedding="64c")
    assert EMBEDDINGS["64c"] == (64, 64, 64, 64) and small.embedding_dim == 512
    method = R2D2()
    assert [p.item() for p in (method.lam, method.scale, method.bias)] == [50.0, 10.0, 0.0]
    assert method.embedding_dim == 3584
    assert dict(R2D2.training_defaults) == {"n_way": 60, "k_shot": 9, "n_query": 1}


def test_no_published_figures_are_claimed():
    # the paper's Omniglot table could not be confirmed: report sets none beside it
    assert "r2d2" not in PAPER_RESULTS and "r2d2" not in PAPER_RESULTS["citations"]


# --- random shots ----------------------------------------------------------------------------


def test_random_shots_re_split_each_episode_and_depend_only_on_it():
    episode = _episode(tasks=2, n_way=4, k_shot=5, n_query=2, size=8, seed=1)
    redrawn = redraw_shots(episode)
    shots = redrawn.k_shot
    assert 1 <= shots <= 5
    assert redrawn.support_x.shape[1] == 4 * shots and redrawn.query_x.shape[1] == 4 * (7 - shots)
    assert torch.equal(redrawn.support_y[0], torch.arange(4).repeat_interleave(shots))
    assert torch.equal(redrawn.query_y[1], torch.arange(4).repeat_interleave(7 - shots))
    # every image of a class stays with its class, none lost or repeated
    for t in range(2):
        for n in range(4):
            before = torch.cat([episode.support_x[t][episode.support_y[t] == n],
                                episode.query_x[t][episode.query_y[t] == n]])
            after = torch.cat([redrawn.support_x[t][redrawn.support_y[t] == n],
                               redrawn.query_x[t][redrawn.query_y[t] == n]])
            assert torch.equal(before, after)
    assert torch.equal(redraw_shots(episode).support_x, redrawn.support_x)  # a pure function
    # over many episodes the shots cover 1..K about uniformly
    counts = torch.zeros(10)
    for seed in range(500):
        counts[redraw_shots(_episode(n_way=3, k_shot=9, n_query=1, size=4, seed=seed)).k_shot
               - 1] += 1
    assert counts[9] == 0 and counts[:9].min() > 25, counts


def test_random_shots_apply_in_training_only():
    torch.manual_seed(0)
    episode = _episode(n_way=3, k_shot=4, n_query=1, seed=5)
    expected = redraw_shots(episode).query_y.shape[1]
    method = R2D2(embedding="64c")
    _, logits = method.train().loss(episode)
    assert logits.shape[1] == expected
    assert method.correct(logits, episode)[1] == expected
    assert R2D2(embedding="64c", fixed_shots=True).loss(episode)[1].shape[1] == 3
    assert method.eval()(episode).shape[1] == 3


# --- bad input and checkpoints -------------------------------------------------------------


def test_bad_input_is_refused_in_one_line():
    cases = [
        (lambda: R2D2(embedding="wide"), "embedding must be one of r2d2, 64c"),
        (lambda: R2D2(ridge_lambda=0.0), r"ridge_lambda \(--ridge-lambda\) must be positive"),
        (lambda: R2D2(image_size=12), "at least 16x16 pixels"),
        (lambda: R2D2(dropout=1.0), r"dropout must be in \[0, 1\)"),
        (lambda: ridge_regression(torch.ones(1, 2, 2), torch.ones(1, 2, 1), 1.0, "inverse"),
         "form must be one of auto, woodbury, primal"),
    ]
    for build, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            build()
        assert "\n" not in str(error.value)
    method = R2D2(embedding="64c").eval()
    episode = _episode()
    with pytest.raises(ValueError, match="expects embeddings of 512 numbers") as error:
        method(_episode(size=36))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"support labels must be in 0\.\.3 for n_way=4"):
        method(Episode(episode.support_x, episode.support_y, episode.query_x, episode.query_y,
                       episode.classes[:, :4], 4))
    bad = episode.query_y.clone()
    bad[0, 0] = 7
    with pytest.raises(ValueError, match=r"query labels must be in 0\.\.4"):
        method.loss(Episode(episode.support_x, episode.support_y, episode.query_x, bad,
                            episode.classes, 5))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    method = build_method("r2d2", embedding="64c", ridge_lambda=20.0, init_scale=5.0)
    method.training_step(_episode())
    method.eval()
    save_checkpoint(tmp_path, method)
    loaded, record = load_checkpoint(tmp_path)
    assert isinstance(loaded, R2D2) and record["hparams"] == method.hparams
    episode = _episode(seed=4)
    assert torch.equal(loaded(episode), method(episode))


# --- training through the loop and the command line ----------------------------------------


def _fresh(seed: int) -> R2D2:
    torch.manual_seed(seed)
    return R2D2(embedding="64c")


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, omniglot_small):
    # random shots (the default): the re-split of each episode is part of what must repeat
    config = TrainingConfig(n_way=5, k_shot=4, n_query=1, episodes=7, lr=5e-3, val_every=3,
                            val_episodes=4, val_way=5, val_shot=1, val_query=2,
                            checkpoint_every=2, seed=3)
    straight, _ = train_interrupted_and_straight(_fresh, omniglot_small, config, tmp_path,
                                                 omniglot_small, crash_after=4)
    assert [e["episode"] for e in straight.history if "val_accuracy" in e] == [3, 6, 7]
    assert all(0 <= e["train_accuracy"] <= 1 for e in straight.history)


@pytest.fixture(scope="module")
def r2d2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("r2d2") / "run"
    assert main(["train", "r2d2", "--embedding", "64c", "--way", "5", "--shot", "3", "--query",
                 "1", "--episodes", "3", "--val-every", "3", "--val-episodes", "4",
                 "--checkpoint-every", "3", "--out", str(out), "--no-progress"]) == 0
    return out


def test_cli_trains_evaluates_and_reports(r2d2_run, capsys):
    record = json.loads((r2d2_run / "best" / "checkpoint.json").read_text())
    assert record["method"] == "r2d2"
    assert record["hparams"] == {"in_channels": 1, "image_size": 28, "embedding": "64c",
                                 "dropout": 0.0, "ridge_lambda": 50.0, "learn_lambda": False,
                                 "init_scale": 10.0, "fixed_shots": False, "form": "auto"}
    assert (record["config"]["n_way"], record["config"]["k_shot"]) == (5, 3)
    assert record["metrics"]["val"]["k_shot"] == 3
    assert main(["evaluate", str(r2d2_run), "--way", "5", "--shot", "5", "--episodes", "3",
                 "--split", "val", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["k_shot"] == 5 and 0 <= result["accuracy"] <= 1
    assert main(["report", str(r2d2_run), "--split", "val", "--episodes", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["paper"] is None
    assert [(r["n_way"], r["k_shot"]) for r in report["results"]] == [
        (5, 1), (5, 5), (20, 1), (20, 5)]


def test_cli_names_random_shot_runs_and_passes_the_options(tmp_path, capsys):
    assert main(["train", "r2d2", "--embedding", "64c", "--way", "5", "--shot", "2", "--query",
                 "1", "--episodes", "1", "--val-every", "0", "--out", str(tmp_path / "a"),
                 "--no-progress"]) == 0
    assert "5-way 1- to 2-shot (3 images per class)" in capsys.readouterr().err
    config = TrainingConfig(n_way=60, k_shot=9, n_query=1)
    assert R2D2.describe_training(config, {"fixed_shots": False})[0] == "60w1-9s"
    assert R2D2.describe_training(config, {"fixed_shots": True})[0] == "60w9s"
    assert main(["train", "r2d2", "--embedding", "64c", "--fixed-shots", "--ridge-lambda", "5",
                 "--learn-lambda", "--init-scale", "2", "--way", "5", "--shot", "1", "--query",
                 "1", "--episodes", "1", "--val-every", "0", "--out", str(tmp_path / "b"),
                 "--no-progress"]) == 0
    method, record = load_checkpoint(tmp_path / "b" / "best")
    assert method.fixed_shots and method.lam.requires_grad
    assert (record["hparams"]["ridge_lambda"], record["hparams"]["init_scale"]) == (5.0, 2.0)
    assert read_checkpoint(tmp_path / "b" / "best").metadata["config"]["k_shot"] == 1
    assert main(["train", "protonet", "--ridge-lambda", "5", "--episodes", "1", "--out",
                 str(tmp_path / "c")]) == 2
    assert "--ridge-lambda is an option of the method (r2d2), not of protonet" in (
        capsys.readouterr().err)
