"""MAML and its variants: the inner loop by hand, both engines against each other, the
meta-gradient against finite differences and against a first-order reference, adaptation under
torch.no_grad(), and clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from fslearn.checkpoints import load_checkpoint, save_checkpoint
from fslearn.data import Episode
from fslearn.methods import ANIL, MAML, FirstOrderMAML, MetaSGD, Reptile, build_method
from fslearn.methods.maml import inner_loop
from fslearn.training import config_from_record

SMALL = {"n_way": 3, "in_channels": 1, "image_size": 8, "hidden_channels": 3, "blocks": 2}


def _episode(tasks: int = 2, n_way: int = 3, shots: int = 2, queries: int = 2,
             size: int = 8, dtype=torch.float64, seed: int = 0) -> Episode:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_way)
    return Episode(
        support_x=torch.rand(tasks, n_way * shots, 1, size, size, generator=generator,
                             dtype=dtype),
        support_y=labels.repeat_interleave(shots).expand(tasks, -1).contiguous(),
        query_x=torch.rand(tasks, n_way * queries, 1, size, size, generator=generator,
                           dtype=dtype),
        query_y=labels.repeat_interleave(queries).expand(tasks, -1).contiguous(),
        classes=labels.expand(tasks, -1).contiguous(),
        n_way=n_way,
    )


def _model(cls, steps: int = 1, seed: int = 0, **kwargs) -> MAML:
    torch.manual_seed(seed)
    model = cls(inner_steps=steps, inner_lr=0.3, **SMALL, **kwargs).double()
    # non-trivial batch-norm parameters, so that their gradients are tested too
    with torch.no_grad():
        for value in model.network.parameters():
            if value.dim() == 1:
                value.add_(0.3 * torch.randn_like(value))
    return model


def _meta_gradient(model: MAML, episode: Episode, engine: str, per_task: bool) -> torch.Tensor:
    model.engine = engine
    model.zero_grad(set_to_none=True)
    if per_task:
        model.training_step(episode)
    else:
        model.loss(episode)[0].backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def _meta_loss_at(model: MAML, episode: Episode, flat: torch.Tensor) -> float:
    originals = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        offset = 0
        for p in model.parameters():
            p.copy_(flat[offset: offset + p.numel()].view_as(p))
            offset += p.numel()
    model.engine = "loop"
    loss = float(model.loss(episode)[0].detach())
    with torch.no_grad():
        for p, original in zip(model.parameters(), originals, strict=True):
            p.copy_(original)
    return loss


def test_inner_step_by_hand():
    """One inner step on a 2-class linear model, against the softmax cross-entropy gradient
    written out: dL/dW = mean_i (softmax(W x_i + b) - onehot(y_i)) x_i^T."""
    torch.manual_seed(0)
    model = nn.Linear(2, 2).double()
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    params = dict(model.named_parameters())
    adapted = inner_loop(model, params, x, y, steps=1, step_sizes={"weight": 0.5, "bias": 0.5})
    error = (torch.softmax(x @ params["weight"].T + params["bias"], -1)
             - F.one_hot(y, 2).double()) / len(x)
    assert torch.allclose(adapted["weight"], params["weight"] - 0.5 * error.T @ x)
    assert torch.allclose(adapted["bias"], params["bias"] - 0.5 * error.sum(0))
    # only the named parameters adapt; zero steps change nothing
    head_only = inner_loop(model, params, x, y, steps=1, step_sizes={"bias": 0.5})
    assert head_only["weight"] is params["weight"]
    unchanged = inner_loop(model, params, x, y, steps=0, step_sizes={"weight": 0.5, "bias": 0.5})
    assert all(unchanged[k] is params[k] for k in params)


@pytest.mark.parametrize("cls, steps", [(MAML, 1), (MAML, 3), (FirstOrderMAML, 1),
                                        (MetaSGD, 1), (ANIL, 2)])
def test_the_two_engines_give_one_meta_gradient(cls, steps):
    model, episode = _model(cls, steps), _episode()
    reference = _meta_gradient(model, episode, "loop", per_task=False)
    assert reference.abs().max() > 0
    for engine, per_task in (("loop", True), ("vmap", False)):
        other = _meta_gradient(model, episode, engine, per_task)
        relative = (other - reference).abs().max() / reference.abs().max()
        assert relative <= 1e-10, (engine, per_task, float(relative))


def _assert_matches_finite_differences(model, episode, gradient, seed):
    """``gradient`` agrees with central finite differences of the meta-loss (float64) along
    three random directions."""
    theta = torch.cat([p.detach().flatten() for p in model.parameters()])
    generator = torch.Generator().manual_seed(seed)
    for _ in range(3):
        direction = torch.randn(len(theta), generator=generator, dtype=torch.float64)
        eps = 1e-6
        numeric = (_meta_loss_at(model, episode, theta + eps * direction)
                   - _meta_loss_at(model, episode, theta - eps * direction)) / (2 * eps)
        analytic = float(gradient @ direction)
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric, analytic)


@pytest.mark.parametrize("engine", ["vmap", "loop"])
@pytest.mark.parametrize("cls, steps", [(MAML, 1), (MAML, 3), (MetaSGD, 1), (ANIL, 2)])
def test_meta_gradient_matches_finite_differences(cls, steps, engine):
    """Both engines: the loop's batch norm applies its affine part inside F.batch_norm, the
    vmap engine's outside it (see TaskBatchNorm2d)."""
    model, episode = _model(cls, steps), _episode()
    gradient = _meta_gradient(model, episode, engine, per_task=engine == "loop")
    _assert_matches_finite_differences(model, episode, gradient, seed=1)


@pytest.mark.parametrize("first_order", [False, True])
def test_an_unadapted_body_runs_once_with_the_whole_networks_results(first_order):
    """ANIL adapts the head only, so the body's features are computed once per task: the same
    query logits and meta-gradient as the inner loop over the whole network (float64)."""
    model, episode = _model(ANIL, steps=3, first_order=first_order), _episode()
    params = dict(model.network.named_parameters())
    t = 1
    logits = model.adapt_and_score(params, model.step_sizes(), episode.support_x[t],
                                   episode.support_y[t], episode.query_x[t])
    adapted = inner_loop(model.network, params, episode.support_x[t], episode.support_y[t], 3,
                         model.step_sizes(), first_order)
    reference = functional_call(model.network, adapted, (episode.query_x[t],))
    assert torch.allclose(logits, reference, rtol=1e-12, atol=1e-13)
    weights = torch.randn_like(logits)
    got = torch.autograd.grad((logits * weights).sum(), list(params.values()))
    want = torch.autograd.grad((reference * weights).sum(), list(params.values()))
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)


def test_first_order_gradient_is_the_query_gradient_at_the_adapted_parameters():
    model, episode = _model(FirstOrderMAML, steps=2), _episode()
    gradient = _meta_gradient(model, episode, "vmap", per_task=False)
    params = dict(model.network.named_parameters())
    expected = {name: torch.zeros_like(value) for name, value in params.items()}
    for t in range(episode.tasks):
        adapted = inner_loop(model.network, params, episode.support_x[t], episode.support_y[t],
                             2, model.step_sizes())
        fast = {name: value.detach().requires_grad_() for name, value in adapted.items()}
        loss = F.cross_entropy(functional_call(model.network, fast, (episode.query_x[t],)),
                               episode.query_y[t]) / episode.tasks
        for name, g in zip(fast, torch.autograd.grad(loss, list(fast.values())), strict=True):
            expected[name] += g
    reference = torch.cat([expected[name].flatten() for name in params])
    assert torch.allclose(gradient, reference, rtol=1e-10, atol=1e-12)
    # ...which is not the second-order gradient
    second = _meta_gradient(_model(MAML, steps=2), episode, "vmap", per_task=False)
    assert not torch.allclose(gradient, second, rtol=1e-3)


@pytest.mark.parametrize("engine", ["loop", "vmap"])
def test_adaptation_works_under_no_grad(engine):
    """evaluate() runs under torch.no_grad() and in eval mode: the inner loop must still adapt,
    with the test-time number of steps."""
    model = _model(MAML, steps=1, test_inner_steps=5, engine=engine)
    frozen = _model(MAML, steps=1, test_inner_steps=0, engine=engine)
    episode = _episode(tasks=3)
    model.eval()
    frozen.eval()
    with torch.no_grad():
        adapted_logits = model(episode)
        unadapted_logits = frozen(episode)
        # scoring the support set itself: 5 steps on it must lower its loss
        on_support = Episode(episode.support_x, episode.support_y, episode.support_x,
                             episode.support_y, episode.classes, episode.n_way)
        before = F.cross_entropy(frozen(on_support).flatten(0, 1), episode.support_y.flatten())
        after = F.cross_entropy(model(on_support).flatten(0, 1), episode.support_y.flatten())
    assert adapted_logits.shape == (3, 6, 3)
    assert not torch.allclose(adapted_logits, unadapted_logits)
    assert float(after) < float(before)


def test_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="inner_steps must be a positive integer, got 0"):
        MAML(inner_steps=0)
    with pytest.raises(ValueError, match="inner_lr must be positive"):
        MAML(inner_lr=0)
    with pytest.raises(ValueError, match="engine must be one of auto, loop, vmap"):
        MAML(engine="gpu")
    with pytest.raises(ValueError, match="at least 16 pixels"):
        MAML(image_size=8)
    model = _model(MAML)
    with pytest.raises(ValueError, match=r"head of 3 classes.*got 5-way.*--way 5"):
        model(_episode(n_way=5))


def test_checkpoint_round_trip(tmp_path):
    model = _model(MetaSGD, steps=2).float()
    episode = _episode(dtype=torch.float32)
    save_checkpoint(tmp_path / "ck", model, {"note": "test"})
    loaded, record = load_checkpoint(tmp_path / "ck")
    assert isinstance(loaded, MetaSGD) and record["hparams"]["inner_steps"] == 2
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(episode), model(episode))
    assert isinstance(build_method("anil", **SMALL), ANIL)


@pytest.mark.parametrize("method, extra", [
    ("maml", ["--inner-lr", "0.4"]),
    ("fomaml", ["--inner-lr", "0.4", "--inner-loss", "sum_over_k", "--architecture", "authors"]),
    ("reptile", ["--inner-lr", "0.4", "--optimizer", "sgd", "--lr", "1", "--lr-schedule",
                 "linear", "--inner-optimizer", "adam", "--inner-batch", "3",
                 "--test-inner-batch", "4"]),
])
def test_command_line_train_and_evaluate(method, extra, tmp_path, capsys):
    from fslearn.cli import main

    out = tmp_path / "run"
    assert main(["train", method, "--way", "5", "--shot", "1", "--query", "1", "--tasks", "2",
                 "--inner-steps", "1", *extra, "--episodes", "2", "--val-every", "2",
                 "--val-episodes", "4", "--val-way", "5", "--checkpoint-every", "2",
                 "--out", str(out), "--no-progress"]) == 0
    record = load_checkpoint(out / "best")[1]
    assert record["method"] == method
    assert record["hparams"]["n_way"] == 5 and record["hparams"]["inner_lr"] == 0.4
    assert config_from_record(record["config"]).batch_size == 2  # tasks per outer step
    assert (record["hparams"]["inner_loss"], record["hparams"]["architecture"]) == (
        ("sum_over_k", "authors") if method == "fomaml" else ("mean", "conv4"))
    if method == "reptile":
        assert (record["config"]["optimizer"], record["config"]["lr_schedule"]) == (
            "sgd", "linear")
        assert (record["hparams"]["inner_optimizer"], record["hparams"]["inner_batch"],
                record["hparams"]["test_inner_batch"]) == ("adam", 3, 4)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--way", "5", "--shot", "1", "--episodes", "4",
                 "--test-inner-steps", "3", "--json"]) == 0
    assert '"n_way": 5' in capsys.readouterr().out
    assert main(["evaluate", str(out), "--way", "20", "--shot", "1", "--episodes", "4"]) == 2
    assert "head of 5 classes" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "protonet", "--inner-steps", "2"], "--inner-steps is an option of the "
     "optimisation-based methods (maml, fomaml, metasgd, anil, reptile, metalstm, pretrained), "
     "not of protonet"),
    (["train", "maml", "--way", "5", "--val-way", "5", "--inner-batch", "10"],
     "--inner-batch is an option of the optimisation-based methods (reptile, metalstm), not of "
     "maml"),
    (["train", "reptile", "--way", "5", "--val-way", "5", "--inner-batch", "0"],
     "inner_batch must be a positive integer"),
    (["train", "maml", "--way", "5", "--val-way", "20"], "pass --val-way 5"),
    (["train", "maml", "--way", "5", "--inner-steps", "0", "--val-way", "5"],
     "inner_steps must be a positive integer, got 0"),
    (["evaluate", "protonet-omniglot", "--way", "5", "--shot", "1", "--test-inner-steps", "3"],
     "protonet does not adapt by gradient steps"),
])
def test_command_line_errors(argv, message, tmp_path, capsys):
    from fslearn.cli import main

    assert main([*argv, "--out", str(tmp_path)] if argv[0] == "train" else argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_reptile_update_against_plain_sgd_on_copies():
    """With plain SGD: theta - mean(phi), where phi is what torch.optim.SGD makes of a copy of
    the network on each task's support set: an implementation independent of the package's
    inner loop."""
    import copy

    model = _model(Reptile, steps=3, inner_optimizer="sgd", inner_batch=None)
    episode = _episode(tasks=3)
    model.zero_grad(set_to_none=True)
    loss, logits = model.training_step(episode)
    expected = {name: torch.zeros_like(p) for name, p in model.network.named_parameters()}
    for t in range(episode.tasks):
        net = copy.deepcopy(model.network)
        optimizer = torch.optim.SGD(net.parameters(), lr=model.inner_lr)
        for _ in range(3):
            optimizer.zero_grad()
            F.cross_entropy(net(episode.support_x[t]), episode.support_y[t]).backward()
            optimizer.step()
        for (name, before), after in zip(model.network.named_parameters(), net.parameters(),
                                         strict=True):
            expected[name] += (before.detach() - after.detach()) / episode.tasks
    for name, p in model.network.named_parameters():
        assert torch.allclose(p.grad, expected[name], rtol=1e-10, atol=1e-12), name
    assert logits.shape == (3, 6, 3) and loss.dim() == 0


def test_reptile_with_one_task_and_step_size_one_lands_on_phi():
    model = _model(Reptile, steps=2, inner_optimizer="sgd", inner_batch=None)
    episode = _episode(tasks=1)
    params = {n: p.detach().clone() for n, p in model.network.named_parameters()}
    phi = inner_loop(model.network, params, episode.support_x[0], episode.support_y[0], 2,
                     model.step_sizes())
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    optimizer.zero_grad()
    model.training_step(episode)
    optimizer.step()
    for name, p in model.network.named_parameters():
        assert torch.allclose(p.detach(), phi[name], rtol=1e-10, atol=1e-12), name


def test_linear_schedule_and_sgd_option():
    from fslearn.training import TrainingConfig, learning_rate

    config = TrainingConfig(episodes=100, lr=1.0, lr_schedule="linear", optimizer="sgd")
    assert [learning_rate(config, e) for e in (0, 50, 99)] == [1.0, 0.5, pytest.approx(0.01)]
    with pytest.raises(ValueError, match="optimizer must be one of adam, sgd"):
        TrainingConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="lr_schedule must be one of step, linear"):
        TrainingConfig(lr_schedule="cosine")


# --- sinusoid regression ----------------------------------------------------------------------

def test_sinusoid_sampler_invariants():
    import math

    from fslearn.data.sinusoid import SinusoidRegression

    sampler = SinusoidRegression().sampler(k_shot=5, n_query=7, tasks=40, seed=3)
    episode = sampler.episode(11)
    assert episode.support_x.shape == (40, 5, 1) and episode.query_y.shape == (40, 7, 1)
    assert episode.n_way == 1 and episode.classes.shape == (40, 2)
    amplitude, phase = episode.classes[:, 0], episode.classes[:, 1]
    assert float(amplitude.min()) >= 0.1 and float(amplitude.max()) <= 5.0
    assert float(phase.min()) >= 0.0 and float(phase.max()) <= math.pi
    x = torch.cat([episode.support_x, episode.query_x], 1)
    y = torch.cat([episode.support_y, episode.query_y], 1)
    assert float(x.min()) >= -5 and float(x.max()) <= 5
    assert torch.allclose(y, amplitude[:, None, None] * torch.sin(x - phase[:, None, None]),
                          atol=1e-5)
    again = SinusoidRegression().sampler(5, 7, 40, seed=3).episode(11)
    assert torch.equal(again.query_x, episode.query_x)
    assert not torch.equal(sampler.episode(12).query_x, episode.query_x)
    test = SinusoidRegression().sampler(5, 7, 40, seed=3, split="test").episode(11)
    assert not torch.equal(test.classes, episode.classes)  # an independent stream
    with pytest.raises(ValueError, match="split must be one of train, test"):
        SinusoidRegression().sampler(5, 5, split="val")
    with pytest.raises(ValueError, match="k_shot must be a positive integer, got 0"):
        SinusoidRegression().sampler(0, 5)
    with pytest.raises(ValueError, match="amplitude must be"):
        SinusoidRegression(amplitude=(5.0, 0.1))


def _sinusoid_episode(tasks: int = 3) -> Episode:
    from fslearn.data.sinusoid import SinusoidRegression

    episode = SinusoidRegression().sampler(5, 4, tasks, seed=0).episode(0)
    return Episode(*(getattr(episode, name).double() for name in (
        "support_x", "support_y", "query_x", "query_y", "classes")), n_way=1)


@pytest.mark.parametrize("cls, steps", [(MAML, 1), (MAML, 3), (FirstOrderMAML, 2), (MetaSGD, 1)])
def test_sinusoid_engines_agree_and_match_finite_differences(cls, steps):
    torch.manual_seed(0)
    model = cls(n_way=1, inner_steps=steps, inner_lr=0.05, hidden_channels=8,
                task="regression").double()
    episode = _sinusoid_episode()
    reference = _meta_gradient(model, episode, "loop", per_task=True)
    other = _meta_gradient(model, episode, "vmap", per_task=False)
    assert (other - reference).abs().max() / reference.abs().max() <= 1e-10
    if cls is FirstOrderMAML:
        return
    theta = torch.cat([p.detach().flatten() for p in model.parameters()])
    direction = torch.randn(len(theta), generator=torch.Generator().manual_seed(2),
                            dtype=torch.float64)
    eps = 1e-6
    numeric = (_meta_loss_at(model, episode, theta + eps * direction)
               - _meta_loss_at(model, episode, theta - eps * direction)) / (2 * eps)
    analytic = float(reference @ direction)
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic))


def test_pretrained_baseline_trains_without_an_inner_loop():
    from fslearn.methods import PretrainedBaseline

    torch.manual_seed(0)
    model = PretrainedBaseline(n_way=1, inner_lr=0.05, hidden_channels=8, test_inner_steps=2,
                               task="regression").double()
    episode = _sinusoid_episode()
    model.zero_grad()
    model.training_step(episode)
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    prediction = model.network(episode.query_x.flatten(0, 1))
    F.mse_loss(prediction, episode.query_y.flatten(0, 1)).backward()
    for a, p in zip(got, model.parameters(), strict=True):
        assert torch.allclose(a, p.grad, rtol=1e-10, atol=1e-12)
    model.eval()
    with torch.no_grad():  # ...but it fine-tunes at test time
        assert not torch.allclose(model(episode), model.network(episode.query_x))


def test_evaluate_regression_against_a_direct_computation():
    """A model whose network outputs 0 everywhere (zero head) and takes no steps: its MSE is the
    mean of y^2 over the same test tasks, computed here from the sampler directly."""
    from fslearn.data.sinusoid import SinusoidRegression
    from fslearn.evaluation import evaluate_regression

    model = MAML(n_way=1, hidden_channels=8, inner_lr=0.01, task="regression")
    with torch.no_grad():
        model.network[1].weight.zero_()
        model.network[1].bias.zero_()
    results = evaluate_regression(model, SinusoidRegression(), k_shot=5, steps=(0, 1),
                                  n_query=20, episodes=30, seed=4, episodes_per_batch=7)
    sampler = SinusoidRegression().sampler(5, 20, 1, seed=4, split="test")
    direct = torch.stack([sampler.episode(i).query_y.pow(2).mean() for i in range(30)]).double()
    assert results[0].steps == 0 and results[0].mse == pytest.approx(float(direct.mean()),
                                                                      rel=1e-6)
    assert results[1].mse < results[0].mse  # one step towards the support points helps
    assert model.test_inner_steps == 1 and model.training  # restored


def test_command_line_sinusoid(tmp_path, capsys):
    import json

    from fslearn.cli import main

    out = tmp_path / "run"
    assert main(["train", "maml", "--sinusoid", "--shot", "5", "--query", "5", "--tasks", "4",
                 "--inner-lr", "0.01", "--episodes", "3", "--out", str(out),
                 "--no-progress"]) == 0
    record = load_checkpoint(out / "best")[1]
    assert record["data"]["dataset"] == "sinusoid" and record["hparams"]["task"] == "regression"
    capsys.readouterr()
    assert main(["evaluate", str(out), "--shot", "5", "--episodes", "10", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["steps"] for r in results] == [1, 5, 10]
    assert main(["report", str(out), "--episodes", "10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["steps"], r["paper_mse"]) for r in report["results"]] == [
        (1, 0.67), (5, 0.38), (10, 0.35)]
    assert "Table 2" in report["paper"]
    assert main(["evaluate", str(out), "--shot", "5", "--test-inner-steps", "-1"]) == 2
    assert "--test-inner-steps must be 0 or more, got -1" in capsys.readouterr().err
    assert main(["train", "protonet", "--sinusoid", "--out", str(tmp_path / "p")]) == 2
    assert "protonet classifies images" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["maml-sinusoid", "pretrained-sinusoid"])
def test_shipped_sinusoid_results_are_reproduced(name):
    """The figures in results.json come from the checkpoint: re-evaluated on the same 1000
    tasks they agree up to float rounding across CPUs (a wrong model or protocol is far off)."""
    import json

    from fslearn.checkpoints import shipped_checkpoints
    from fslearn.data.sinusoid import SinusoidRegression
    from fslearn.evaluation import evaluate_regression

    folder = shipped_checkpoints()[name]
    stored = json.loads((folder / "results.json").read_text())
    method, record = load_checkpoint(folder)
    assert record["command"].startswith(f"fslearn train {name.split('-')[0]} --sinusoid")
    again = evaluate_regression(method, SinusoidRegression(), 5, (1, 5, 10), n_query=100,
                                episodes=1000, seed=0)
    for row, result in zip(stored["results"], again, strict=True):
        assert row["steps"] == result.steps and row["episodes"] == 1000
        assert result.mse == pytest.approx(row["mse"], rel=1e-3)


def test_reptile_adam_inner_loop_against_torch_adam_on_copies():
    """The paper's inner optimizer: torch.optim.Adam with beta1 = 0 on a copy of the network,
    fresh for each task, on mini-batches that take one image of each class in turn."""
    import copy

    model = _model(Reptile, steps=4, inner_optimizer="adam", inner_batch=4)
    model.inner_lr = 1e-2
    episode = _episode(tasks=2, n_way=3, shots=2)
    model.zero_grad(set_to_none=True)
    model.training_step(episode)
    expected = {name: torch.zeros_like(p) for name, p in model.network.named_parameters()}
    interleaved = torch.tensor([0, 2, 4, 1, 3, 5])  # class-major support, one class at a time
    for t in range(episode.tasks):
        net = copy.deepcopy(model.network)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.0, 0.999), eps=1e-8)
        x, y = episode.support_x[t][interleaved], episode.support_y[t][interleaved]
        for step in range(4):
            rows = torch.arange(4 * step, 4 * step + 4) % 6  # batches of 4, cycling
            optimizer.zero_grad()
            F.cross_entropy(net(x[rows]), y[rows]).backward()
            optimizer.step()
        for (name, before), after in zip(model.network.named_parameters(), net.parameters(),
                                         strict=True):
            expected[name] += (before.detach() - after.detach()) / episode.tasks
    # Adam moves every entry by about its learning rate (1e-2) per step, except the conv biases,
    # whose true gradient is 0 (batch norm follows) and whose rounding noise Adam rescales to
    # about 1e-10: hence atol 1e-8, a million times below a real step
    for name, p in model.network.named_parameters():
        assert torch.allclose(p.grad, expected[name], rtol=1e-9, atol=1e-8), name


def test_reptile_test_time_adaptation_uses_its_own_steps_and_batch():
    model = _model(Reptile, steps=1, inner_optimizer="adam", inner_batch=6,
                   test_inner_steps=3, test_inner_batch=3).eval()
    episode = _episode(tasks=1, n_way=3, shots=2)
    params = {n: p.detach() for n, p in model.network.named_parameters()}
    order = torch.tensor([0, 2, 4, 1, 3, 5])
    phi = inner_loop(model.network, params, episode.support_x[0][order],
                     episode.support_y[0][order], 3, model.step_sizes(), optimizer="adam",
                     batch_size=3)
    expected = torch.func.functional_call(model.network, phi, (episode.query_x[0],))
    with torch.no_grad():
        assert torch.allclose(model(episode)[0], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"inner_optimizer": "rmsprop"}, "inner_optimizer must be one of sgd, adam"),
    ({"inner_batch": 0}, "inner_batch must be a positive integer or None"),
    ({"test_inner_batch": 2.5}, "test_inner_batch must be a positive integer or None"),
])
def test_reptile_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Reptile(**kwargs)


def test_report_scores_a_fixed_head_on_its_own_way_beside_the_paper(tmp_path, capsys):
    """A 5-way MAML is reported on 5-way 1-shot and 5-shot only, each beside Finn et al."""
    import json

    from fslearn.cli import main

    out = tmp_path / "run"
    assert main(["train", "maml", "--way", "5", "--shot", "1", "--query", "1", "--tasks", "2",
                 "--episodes", "1", "--val-every", "0", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["report", str(out), "--episodes", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    settings = [(row["n_way"], row["k_shot"], row["paper_accuracy"]) for row in report["results"]]
    assert settings == [(5, 1, 0.987), (5, 5, 0.999)]
    assert report["paper"].startswith("Finn, Abbeel and Levine (2017)")


def _user_network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def test_adapt_any_module_matches_hand_written_steps_and_gives_the_meta_gradient():
    """fslearn.adapt on a network the package never saw: the adapted weights equal two steps
    written with torch.autograd.grad(create_graph=True), and back-propagating the query loss
    gives the meta-gradient that central finite differences give."""
    from fslearn import adapt

    model = _user_network()
    generator = torch.Generator().manual_seed(1)
    sx = torch.rand(6, 1, 4, 4, generator=generator, dtype=torch.float64)
    sy = torch.tensor([0, 0, 1, 1, 2, 2])
    qx = torch.rand(6, 1, 4, 4, generator=generator, dtype=torch.float64)
    qy = torch.tensor([0, 1, 2, 0, 1, 2])

    def query_loss_by_hand(params: dict[str, torch.Tensor]) -> torch.Tensor:
        fast = dict(params)
        for _ in range(2):
            loss = F.cross_entropy(functional_call(model, fast, (sx,)), sy)
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True)
            fast = {name: value - 0.3 * g for (name, value), g in zip(fast.items(), grads,
                                                                          strict=True)}
        return F.cross_entropy(functional_call(model, fast, (qx,)), qy)

    adapted = adapt(model, sx, sy, steps=2, lr=0.3)
    assert set(adapted) == {name for name, _ in model.named_parameters()}
    F.cross_entropy(functional_call(model, adapted, (qx,)), qy).backward()
    params = dict(model.named_parameters())
    expected = torch.autograd.grad(query_loss_by_hand(params), list(params.values()))
    for (name, value), reference in zip(params.items(), expected, strict=True):
        assert torch.allclose(value.grad, reference, rtol=1e-10, atol=1e-13), name
    # finite differences along one random direction
    direction = {name: torch.randn_like(value) for name, value in params.items()}
    h = 1e-6
    plus = {name: (value + h * direction[name]).detach().requires_grad_()
            for name, value in params.items()}
    minus = {name: (value - h * direction[name]).detach().requires_grad_()
             for name, value in params.items()}
    numeric = ((query_loss_by_hand(plus) - query_loss_by_hand(minus)) / (2 * h)).item()
    analytic = sum((value.grad * direction[name]).sum() for name, value in params.items()).item()
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic))


def test_adapt_only_the_head_leaves_the_body_as_it_is():
    from fslearn import adapt

    model = _user_network()
    sx, sy = torch.rand(3, 1, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 2])
    adapted = adapt(model, sx, sy, steps=3, lr=0.5, adapt_only=lambda name: name.startswith("3."))
    assert adapted["1.weight"] is model[1].weight
    assert not torch.equal(adapted["3.weight"], model[3].weight)


@pytest.mark.parametrize("model, kwargs, message", [
    (nn.ReLU(), {}, "ReLU has no trainable parameters, so there is nothing to adapt"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3)), {},
     "1 is a batch norm layer that updates its running statistics"),
    (_user_network(), {"adapt_only": lambda name: name.startswith("head")},
     "adapt_only accepted none of the parameters"),
    (_user_network(), {"steps": -1}, "steps must be a non-negative integer, got -1"),
    (_user_network(), {"lr": 0.0}, "lr must be positive, got 0.0"),
    (_user_network(), {"support_y": torch.tensor([0, 1])},
     "support_x and support_y must hold the same number of examples"),
])
def test_adapt_bad_inputs(model, kwargs, message):
    from fslearn import adapt

    arguments = {"support_x": torch.rand(3, 1, 4, 4), "support_y": torch.tensor([0, 1, 2]),
                 **kwargs}
    with pytest.raises(ValueError, match=message):
        adapt(model.float(), **arguments)


def test_adapt_a_module_with_batch_norm_in_eval_mode():
    from fslearn import adapt

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    adapted = adapt(model.eval(), torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2]), steps=2)
    assert not torch.equal(adapted["3.weight"], model[3].weight)


OMNIGLOT_CHECKPOINTS = ("maml-omniglot-5way", "maml-omniglot-20way", "fomaml-omniglot-5way",
                        "metasgd-omniglot-5way", "anil-omniglot-5way", "anil-omniglot-20way",
                        "reptile-omniglot-5way")


@pytest.mark.parametrize("name", OMNIGLOT_CHECKPOINTS)
def test_shipped_omniglot_checkpoints_record_and_reproduce_their_figures(name):
    """Each shipped optimisation-based checkpoint says how it was made, holds its test figures
    over 1000 episodes beside the paper's, and reproduces them: the first episodes of the same
    test stream, re-evaluated, agree with the stored 1000-episode mean within a margin that float
    rounding never reaches and a wrong model or protocol (no adaptation: about 5-60%) exceeds."""
    import json

    from fslearn.checkpoints import shipped_checkpoints
    from fslearn.data import load_omniglot
    from fslearn.evaluation import evaluate
    from fslearn.results import PAPER_RESULTS

    method_name, n_way = name.split("-")[0], int(name.split("-")[-1].removesuffix("way"))
    folder = shipped_checkpoints()[name]
    method, record = load_checkpoint(folder)
    assert method.name == method_name and method.n_way == n_way
    assert record["command"].startswith(f"fslearn train {method_name} --way {n_way} --shot")
    assert record["data"]["protocol"] == "vinyals"
    assert {"seed", "config", "hardware", "training_seconds", "device"} <= set(record)
    stored = json.loads((folder / "results.json").read_text())
    rows = {(r["n_way"], r["k_shot"]): r for r in stored["results"]}
    assert set(rows) == {(n_way, 1), (n_way, 5)}
    for setting, row in rows.items():
        assert row["episodes"] == 1000 and row["n_query"] == 15
        assert row["paper_accuracy"] == PAPER_RESULTS[method_name].get(setting)
    # five shots never score below one (the old ANIL checkpoint did: 3 test steps too few)
    assert rows[n_way, 5]["accuracy"] > rows[n_way, 1]["accuracy"]
    # Reptile takes 50 steps per episode, the 20-way MAML five steps on 320 images
    episodes = 10 if method_name == "reptile" or n_way == 20 else 40
    again = evaluate(method, load_omniglot("test", protocol="vinyals"), n_way, 1, n_query=15,
                     episodes=episodes, seed=0)
    assert abs(again.accuracy - rows[n_way, 1]["accuracy"]) < 0.06


@pytest.mark.parametrize("cls, inner_loss", [(MAML, "mean"), (MAML, "sum_over_k"),
                                             (MetaSGD, "sum_over_k"), (ANIL, "mean")])
def test_authors_network_meta_gradient_engines_and_finite_differences(cls, inner_loss):
    """The strided network with unadapted batch-norm offsets: both engines give one
    meta-gradient, and it matches central finite differences (float64)."""
    model = _model(cls, 2, architecture="authors", inner_loss=inner_loss)
    episode = _episode()
    gradient = _meta_gradient(model, episode, "vmap", per_task=False)
    loop = _meta_gradient(model, episode, "loop", per_task=True)
    assert (loop - gradient).abs().max() <= 1e-10 * gradient.abs().max()
    _assert_matches_finite_differences(model, episode, gradient, seed=2)
