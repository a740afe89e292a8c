"""The Meta-LSTM optimiser (Ravi and Larochelle 2017): its preprocessing and update by hand, its
reduction to SGD, its first-order meta-gradient, and its training, checkpoints and command."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import train_interrupted_and_straight
from torch import Tensor, nn
from torch.func import functional_call

from fslearn.backbones import TaskBatchNorm2d
from fslearn.checkpoints import load_checkpoint, save_checkpoint
from fslearn.cli import main
from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.methods import METHODS, MetaLSTM
from fslearn.methods.inner_loop import inner_loop
from fslearn.methods.metalstm import LSTMOptimiser, flatten_params, preprocess, unflatten_params
from fslearn.training_config import TrainingConfig


def _tiny(**kwargs: object) -> MetaLSTM:
    """A learner of a few dozen parameters: one block of 2 channels on 4x4 images, 2 classes."""
    settings = {"n_way": 2, "image_size": 4, "hidden_channels": 2, "blocks": 1,
                "hidden_size": 3, "inner_steps": 2} | kwargs
    return MetaLSTM(**settings).double()


def _episode(n_way: int = 2, k_shot: int = 2, n_query: int = 3, tasks: int = 1, side: int = 4,
             seed: int = 0) -> Episode:
    generator = torch.Generator().manual_seed(seed)
    support_y = torch.arange(n_way).repeat_interleave(k_shot).repeat(tasks, 1)
    query_y = torch.arange(n_way).repeat_interleave(n_query).repeat(tasks, 1)
    return Episode(
        support_x=torch.rand(tasks, n_way * k_shot, 1, side, side, generator=generator,
                             dtype=torch.float64),
        support_y=support_y,
        query_x=torch.rand(tasks, n_way * n_query, 1, side, side, generator=generator,
                           dtype=torch.float64),
        query_y=query_y, classes=torch.arange(n_way).repeat(tasks, 1), n_way=n_way)


# --- the preprocessing and one update, by hand -------------------------------------------------


def test_preprocessing_by_hand_on_both_branches():
    x = torch.tensor([2.0, -0.5, 1e-5, -3e-6, 0.0], dtype=torch.float64)
    expected = torch.tensor([
        [math.log(2.0) / 10, 1.0],          # |x| >= e^-10: (log|x| / p, sign)
        [math.log(0.5) / 10, -1.0],
        [-1.0, 1e-5 * math.exp(10)],        # |x| < e^-10 = 4.54e-5: (-1, e^p x)
        [-1.0, -3e-6 * math.exp(10)],
        [-1.0, 0.0],
    ], dtype=torch.float64)
    assert torch.allclose(preprocess(x), expected, rtol=0, atol=1e-12)
    assert preprocess(torch.zeros(2, 3)).shape == (2, 3, 2)


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def _hand_step(lstm: LSTMOptimiser, theta: list[float], grad: list[float], loss: float,
               state: list[tuple[list[float], list[float], float, float]] | None):
    """One Meta-LSTM update written coordinate by coordinate from the equations, in floats."""
    w_ih, w_hh = lstm.lstm.weight_ih.tolist(), lstm.lstm.weight_hh.tolist()
    b = [u + v for u, v in zip(lstm.lstm.bias_ih.tolist(), lstm.lstm.bias_hh.tolist(),
                                strict=True)]
    wf, wi = lstm.forget_weight.tolist(), lstm.input_weight.tolist()
    bf, bi = lstm.forget_bias.item(), lstm.input_bias.item()
    n = lstm.hidden_size

    def pre(x: float) -> list[float]:
        if abs(x) >= math.exp(-10):
            return [math.log(abs(x)) / 10, math.copysign(1.0, x)]
        return [-1.0, x * math.exp(10)]

    new_theta, new_state = [], []
    for k, (t, g) in enumerate(zip(theta, grad, strict=True)):
        h, c, f_prev, i_prev = state[k] if state else ([0.0] * n, [0.0] * n, 0.0, 0.0)
        x = pre(loss) + pre(g)
        z = [sum(w_ih[r][j] * x[j] for j in range(4)) + sum(w_hh[r][j] * h[j] for j in range(n))
             + b[r] for r in range(4 * n)]
        # PyTorch's LSTMCell: rows are the input, forget, cell and output gates, in that order
        gi = [_sigmoid(v) for v in z[:n]]
        gf = [_sigmoid(v) for v in z[n:2 * n]]
        gg = [math.tanh(v) for v in z[2 * n:3 * n]]
        go = [_sigmoid(v) for v in z[3 * n:]]
        c = [gf[j] * c[j] + gi[j] * gg[j] for j in range(n)]
        h = [go[j] * math.tanh(c[j]) for j in range(n)]
        f_pre = sum(wf[j] * h[j] for j in range(n)) + wf[n] * t + wf[n + 1] * f_prev + bf
        i_pre = sum(wi[j] * h[j] for j in range(n)) + wi[n] * t + wi[n + 1] * i_prev + bi
        new_theta.append(_sigmoid(f_pre) * t - _sigmoid(i_pre) * g)
        new_state.append((h, c, f_pre, i_pre))
    return new_theta, new_state


def test_the_first_layer_is_pytorchs_lstm_cell_with_coordinates_last():
    torch.manual_seed(1)
    lstm = LSTMOptimiser(hidden_size=3).double()
    with torch.no_grad():
        for weight in lstm.parameters():
            weight.uniform_(-1, 1)
    inputs = torch.randn(4, 7, dtype=torch.float64)
    h, c = torch.randn(3, 7, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    ours = lstm.first_layer(inputs, (h, c))
    theirs = lstm.lstm(inputs.T, (h.T, c.T))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b.T, rtol=0, atol=1e-14)


def test_two_updates_of_a_three_parameter_learner_by_hand():
    torch.manual_seed(0)
    lstm = LSTMOptimiser(hidden_size=2).double()
    with torch.no_grad():  # weights large enough that every term of the equations counts
        for weight in lstm.parameters():
            weight.uniform_(-1, 1)
    theta = [0.3, -1.2, 0.05]
    grads = [[0.5, -2e-6, 3.0], [-0.25, 1e-3, 0.0]]  # both preprocessing branches
    losses = [1.7, 0.9]
    hand_state = None
    state = None
    current = torch.tensor(theta, dtype=torch.float64)
    for grad, loss in zip(grads, losses, strict=True):
        hand_theta, hand_state = _hand_step(lstm, current.tolist(), grad, loss, hand_state)
        current, state = lstm(current, torch.tensor(grad, dtype=torch.float64),
                              torch.tensor(loss, dtype=torch.float64), state)
        assert current.tolist() == pytest.approx(hand_theta, abs=1e-12)
    # the recurrent inputs are the gates' pre-activations (the authors' code)
    assert state[1].tolist() == pytest.approx([s[2] for s in hand_state], abs=1e-12)
    assert state[2].tolist() == pytest.approx([s[3] for s in hand_state], abs=1e-12)


def test_the_initial_gates_keep_theta_and_take_a_small_step():
    torch.manual_seed(0)
    lstm = LSTMOptimiser()
    assert 4 <= lstm.forget_bias.item() <= 5 and -5 <= lstm.input_bias.item() <= -4
    theta, grad = torch.randn(1000), torch.randn(1000)
    new, (_, forget, input_) = lstm(theta, grad, torch.tensor(1.6))
    assert bool((forget.sigmoid() > 0.98).all()) and bool((input_.sigmoid() < 0.02).all())
    assert torch.allclose(new, theta, atol=0.1)


def test_forget_gate_one_and_input_gate_lr_is_sgd():
    torch.manual_seed(0)
    method, lr = _tiny(inner_steps=3), 0.3
    with torch.no_grad():
        method.optimiser.forget_weight.zero_()
        method.optimiser.forget_bias.fill_(60.0)  # sigmoid(60) == 1 in float64
        method.optimiser.input_weight.zero_()
        method.optimiser.input_bias.fill_(math.log(lr / (1 - lr)))  # sigmoid = lr
    episode = _episode()
    sx, sy = episode.support_x[0], episode.support_y[0]
    params = method.network_params()
    adapted = method.adapt(params, sx, sy)
    sgd = inner_loop(method.network, params, sx, sy, 3, {name: lr for name in params},
                     first_order=True)
    for name in params:
        assert torch.allclose(adapted[name], sgd[name], rtol=0, atol=1e-12), name
    # (a convolution's bias before batch norm has no gradient, so compare all of them at once)
    assert not torch.allclose(flatten_params(adapted, list(params)),
                              flatten_params(params, list(params)), atol=1e-3)


# --- the meta-gradient -------------------------------------------------------------------------


def test_first_order_no_hessian_through_the_learners_gradient():
    torch.manual_seed(0)
    method = _tiny(inner_steps=1)
    with torch.no_grad():  # gates that depend visibly on theta, and a large step
        method.optimiser.forget_weight[3] = 0.5
        method.optimiser.input_weight[3] = -0.3
        method.optimiser.input_bias.fill_(-1.0)
    episode = _episode()
    sx, sy = episode.support_x[0], episode.support_y[0]
    params = method.network_params()
    names = list(params)
    theta0 = flatten_params(params, names).detach()

    def as_params(flat: torch.Tensor) -> dict[str, torch.Tensor]:
        sizes = [params[n].numel() for n in names]
        return {n: p.view_as(params[n]) for n, p in zip(names, flat.split(sizes), strict=True)}

    def one_update(flat: torch.Tensor) -> torch.Tensor:
        return flatten_params(method.adapt(as_params(flat), sx, sy), names)

    def support_loss(flat: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.func.functional_call(method.network, as_params(flat), (sx,)),
                               sy)

    jacobian = torch.autograd.functional.jacobian(one_update, theta0)
    grad = torch.autograd.functional.jacobian(support_loss, theta0)
    _, (_, f, i) = method.optimiser(theta0, grad, support_loss(theta0).detach())
    sf, si = f.sigmoid(), i.sigmoid()
    # d theta_1 / d theta_0 with the gradient a constant: diagonal, through the cell and the
    # gates' input theta only
    expected = torch.diag(sf + sf * (1 - sf) * 0.5 * theta0 - si * (1 - si) * (-0.3) * grad)
    assert torch.allclose(jacobian, expected, rtol=0, atol=1e-10)
    # the term the first-order convention leaves out is not negligible here
    hessian = torch.autograd.functional.hessian(support_loss, theta0)
    assert (si[:, None] * hessian).abs().max() > 1e-2


def test_gradients_reach_the_lstm_and_the_initial_learner():
    torch.manual_seed(0)
    method = _tiny(max_grad_norm=None)
    method.train()
    method.training_step(_episode(tasks=2))
    for name, weight in method.named_parameters():
        assert weight.grad is not None and bool(weight.grad.abs().sum() > 0), name


def test_the_meta_gradient_is_clipped():
    torch.manual_seed(0)
    method = _tiny(max_grad_norm=1e-4)
    method.train()
    method.training_step(_episode())
    norm = torch.linalg.vector_norm(torch.stack([w.grad.norm() for w in method.parameters()]))
    assert norm.item() == pytest.approx(1e-4, rel=1e-6)


def test_deterministic_and_adaptation_changes_the_scores():
    episode = _episode(tasks=2)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        method = _tiny().eval()
        with torch.no_grad():
            runs.append(method(episode))
    assert runs[0].shape == (2, 6, 2) and torch.equal(runs[0], runs[1])
    method.transductive = False  # each query normalised with the support images alone
    with torch.no_grad():
        alone = method(episode)
    assert alone.shape == runs[0].shape and not torch.allclose(alone, runs[0])
    method.transductive, method.test_inner_steps = True, 0
    with torch.no_grad():
        assert not torch.allclose(method(episode), runs[0])


def test_the_records_replay_the_updates_and_leave_them_unchanged():
    """θ_T rebuilt from θ_0 and the recorded gates and gradients, one update at a time,
    θ_t = f_t θ_{t-1} - i_t ∇_t, is the adapted learner; recording changes nothing; the loss
    recorded first is the learner's support loss at θ_0, computed here from scratch."""
    torch.manual_seed(3)
    method = _tiny(inner_steps=3).eval()
    episode = _episode()
    params = dict(method.network.named_parameters())
    record: list = []
    with torch.no_grad():
        adapted = method.adapt(params, episode.support_x[0], episode.support_y[0], record=record)
        plain = method.adapt(params, episode.support_x[0], episode.support_y[0])
    assert len(record) == 3 and all(torch.equal(adapted[n], plain[n]) for n in params)
    for name in params:
        theta = params[name].detach()
        for update in record:
            assert ((update.forget[name] > 0) & (update.forget[name] < 1)).all()
            theta = update.forget[name] * theta - update.input_gate[name] * update.grad[name]
        torch.testing.assert_close(theta, adapted[name], rtol=0, atol=1e-12)
    with torch.no_grad():
        logits = method.query_forward(method.network, params, episode.support_x[0],
                                      episode.support_x[0])
    first_loss = F.cross_entropy(logits, episode.support_y[0]).item()
    assert record[0].loss == pytest.approx(first_loss, rel=1e-12)


def _with_torch_batch_norm(network: nn.Module) -> nn.Module:
    """A copy of ``network`` whose TaskBatchNorm2d layers are torch's stateful BatchNorm2d
    (momentum 0.1, fresh running averages), with the same weights."""
    reference = copy.deepcopy(network)
    for parent in list(reference.modules()):
        for name, child in parent.named_children():
            if isinstance(child, TaskBatchNorm2d):
                norm = nn.BatchNorm2d(child.weight.numel(), eps=child.eps, momentum=0.1).double()
                norm.weight, norm.bias = child.weight, child.bias
                setattr(parent, name, norm)
    return reference


def test_the_authors_batch_norm_averages_the_support_batches_and_scores_queries_alone(
        monkeypatch):
    """running_batch_norm: torch's BatchNorm2d, reset for the task, run in training mode on
    each support mini-batch at the θ_{t-1} the LSTM reads, then in eval mode on the queries
    at θ_T, gives the same logits. The updates are unchanged, each query is scored on its own
    (one at a time, the same logits), nothing carries over to the next task, and training
    ignores the flag."""
    torch.manual_seed(4)
    method = _tiny(blocks=2, inner_steps=3, inner_batch=2).eval()
    episode = _episode(k_shot=2, tasks=2)
    params = dict(method.network.named_parameters())
    support_x, support_y, query_x = episode.support_x[0], episode.support_y[0], episode.query_x[0]
    thetas: list[Tensor] = []
    forward = method.optimiser.forward

    def read_theta(theta: Tensor, *args: object) -> tuple:
        thetas.append(theta.detach().clone())
        return forward(theta, *args)

    monkeypatch.setattr(method.optimiser, "forward", read_theta)
    method.running_batch_norm = True
    with torch.no_grad():
        logits = method(episode)
        one_at_a_time = torch.cat([method(_task(episode, 0, query))[0] for query in range(6)])
        second_alone = method(_task(episode, 1))[0]
    reference = _with_torch_batch_norm(method.network).train()
    names = list(params)
    with torch.no_grad():
        for theta, (x, _) in zip(thetas[:3], method.support_batches(support_x, support_y, 3),
                                 strict=True):  # the first task's three updates
            functional_call(reference, unflatten_params(theta, params, names), (x,))
        method.running_batch_norm = False
        adapted = method.adapt(params, support_x, support_y)  # the same updates
        expected = functional_call(reference.eval(), adapted, (query_x,))
        transductive = method(episode)
    torch.testing.assert_close(logits[0], expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(one_at_a_time, logits[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(second_alone, logits[1], rtol=0, atol=1e-12)
    assert not torch.allclose(transductive[0], logits[0])
    assert all(m.running is None for m in method.modules() if isinstance(m, TaskBatchNorm2d))
    method.train()
    training_logits = method(episode)
    method.running_batch_norm = True
    torch.testing.assert_close(method(episode), training_logits, rtol=0, atol=0)


def _task(episode: Episode, task: int, query: int | None = None) -> Episode:
    """Task ``task`` of ``episode`` alone, with all its queries or query ``query`` only."""
    rows = slice(None) if query is None else slice(query, query + 1)
    return Episode(support_x=episode.support_x[task:task + 1],
                   support_y=episode.support_y[task:task + 1],
                   query_x=episode.query_x[task:task + 1, rows],
                   query_y=episode.query_y[task:task + 1, rows],
                   classes=episode.classes[task:task + 1], n_way=episode.n_way)


def test_a_few_adam_steps_lower_the_query_loss(omniglot_small):
    torch.manual_seed(0)
    method = MetaLSTM(n_way=5, hidden_channels=8, blocks=2, inner_steps=3, max_grad_norm=None)
    episode = EpisodeSampler(omniglot_small, 5, 1, 3, seed=1).episode(0)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    method.train()
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss, _ = method.training_step(episode)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    # the optimiser alone, theta_0 left as it was, learns to take better steps
    torch.manual_seed(0)
    method = MetaLSTM(n_way=5, hidden_channels=8, blocks=2, inner_steps=3, max_grad_norm=None)
    optimizer = torch.optim.Adam(method.optimiser.parameters(), lr=3e-2)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss, _ = method.training_step(episode)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


def test_its_errors_say_what_to_do():
    with pytest.raises(ValueError, match="inner_batch must be a positive integer"):
        MetaLSTM(inner_batch=0)
    with pytest.raises(ValueError, match="max_grad_norm must be positive"):
        MetaLSTM(max_grad_norm=0.0)
    with pytest.raises(ValueError, match="scores 2-way episodes only"):
        _tiny()(_episode(n_way=3))


def test_mini_batches_take_one_of_each_class_in_turn():
    method = _tiny(inner_batch=3)
    sx = torch.arange(6.0).view(6, 1, 1, 1)  # class-major: class 0 is images 0-2
    sy = torch.tensor([0, 0, 0, 1, 1, 1])
    batches = method.support_batches(sx, sy, 3)
    assert [b[1].tolist() for b in batches] == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    assert [b[0].flatten().tolist() for b in batches][:2] == [[0, 3, 1], [4, 2, 5]]


# --- checkpoints and the command line ----------------------------------------------------------


def test_checkpoints_round_trip(tmp_path):
    torch.manual_seed(0)
    method = MetaLSTM(n_way=2, image_size=4, hidden_channels=2, blocks=1, hidden_size=3,
                      inner_steps=2).eval()
    save_checkpoint(tmp_path, method)
    loaded, record = load_checkpoint(tmp_path)
    assert isinstance(loaded, MetaLSTM) and record["hparams"] == method.hparams
    episode = _episode()
    episode = Episode(episode.support_x.float(), episode.support_y, episode.query_x.float(),
                      episode.query_y, episode.classes, 2)
    with torch.no_grad():
        assert torch.equal(loaded(episode), method(episode))


def test_a_resumed_run_ends_with_the_same_weights(omniglot_small, tmp_path):
    def fresh(seed: int) -> MetaLSTM:
        torch.manual_seed(seed)
        return MetaLSTM(n_way=5, hidden_channels=4, blocks=2, inner_steps=2, hidden_size=4)

    config = TrainingConfig(n_way=5, k_shot=1, n_query=1, batch_size=1, episodes=3,
                            val_every=2, val_episodes=2, val_way=5, val_query=1,
                            checkpoint_every=1, seed=3)
    train_interrupted_and_straight(fresh, omniglot_small, config, tmp_path, omniglot_small,
                                   crash_after=1)


def test_registered_with_its_help_and_trained_by_the_cli(tmp_path, capsys):
    assert METHODS["metalstm"] is MetaLSTM
    with pytest.raises(SystemExit) as exit_code:
        main(["train", "metalstm", "--help"])
    assert exit_code.value.code == 0
    help_text = capsys.readouterr().out
    assert "--hidden-size" in help_text and "--max-grad-norm" in help_text
    out = tmp_path / "run"
    assert main(["train", "metalstm", "--inner-steps", "1", "--query", "1", "--episodes", "1",
                 "--val-every", "1", "--val-episodes", "2", "--checkpoint-every", "1",
                 "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "best" / "checkpoint.json").read_text())
    assert record["method"] == "metalstm"
    assert record["hparams"]["inner_steps"] == 1 and record["hparams"]["hidden_size"] == 20
    capsys.readouterr()
    assert main(["report", str(out), "--split", "val", "--episodes", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # a head of 5 classes: the 5-way settings only; no published Omniglot figure to set beside
    assert [(r["n_way"], r["k_shot"]) for r in report["results"]] == [(5, 1), (5, 5)]
    assert [r["paper_accuracy"] for r in report["results"]] == [None, None]
