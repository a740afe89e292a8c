"""Reptile's inner Adam as the authors' code runs it: one optimizer, never reset, whose state
carries from task to task in training and from which every test task starts. The reference is
torch.optim.Adam kept across tasks while the network's weights are put back between them."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from fslearn.checkpoints import load_checkpoint, save_checkpoint
from fslearn.data import Episode
from fslearn.methods import Reptile
from fslearn.methods.inner_loop import AdamState, inner_loop

SMALL = {"n_way": 3, "in_channels": 1, "image_size": 8, "hidden_channels": 3, "blocks": 2}
INTERLEAVED = torch.tensor([0, 2, 4, 1, 3, 5])  # class-major support, one class at a time


def _episode(seed: int, tasks: int = 2, dtype: torch.dtype = torch.float64) -> Episode:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(3)
    return Episode(
        support_x=torch.rand(tasks, 6, 1, 8, 8, generator=generator, dtype=dtype),
        support_y=labels.repeat_interleave(2).expand(tasks, -1).contiguous(),
        query_x=torch.rand(tasks, 6, 1, 8, 8, generator=generator, dtype=dtype),
        query_y=labels.repeat_interleave(2).expand(tasks, -1).contiguous(),
        classes=labels.expand(tasks, -1).contiguous(), n_way=3)


def _persistent(**kwargs) -> Reptile:
    torch.manual_seed(0)
    options = {"inner_steps": 3, "inner_lr": 1e-2, "inner_batch": 4, "test_inner_steps": 4,
               "test_inner_batch": 3, "inner_adam_state": "persistent", **kwargs}
    return Reptile(**SMALL, **options).double()


def _torch_adam_task(net, optimizer, x, y, steps: int, batch: int) -> None:
    for step in range(steps):
        rows = torch.arange(batch * step, batch * (step + 1)) % x.shape[0]
        optimizer.zero_grad()
        F.cross_entropy(net(x[rows]), y[rows]).backward()
        optimizer.step()


def test_persistent_state_carries_across_tasks_and_outer_steps_as_one_torch_adam():
    model = _persistent()
    net = copy.deepcopy(model.network)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.0, 0.999), eps=1e-8)
    for seed in (1, 2):  # two outer steps of two tasks each: four tasks on one optimizer
        episode = _episode(seed)
        model.zero_grad(set_to_none=True)
        model.training_step(episode)
        theta = {name: p.detach().clone() for name, p in model.network.named_parameters()}
        expected = {name: torch.zeros_like(p) for name, p in theta.items()}
        for t in range(episode.tasks):
            with torch.no_grad():  # the weights go back to theta; the optimizer's state stays
                for name, p in net.named_parameters():
                    p.copy_(theta[name])
            x, y = (episode.support_x[t][INTERLEAVED], episode.support_y[t][INTERLEAVED])
            _torch_adam_task(net, optimizer, x, y, steps=3, batch=4)
            for name, p in net.named_parameters():
                expected[name] += (theta[name] - p.detach()) / episode.tasks
        for name, p in model.network.named_parameters():
            assert torch.allclose(p.grad, expected[name], rtol=1e-9, atol=1e-8), name
        with torch.no_grad():  # an outer step, so that the next tasks start elsewhere
            for p in model.network.parameters():
                p.sub_(0.5 * p.grad)
        with torch.no_grad():
            for p, q in zip(net.parameters(), model.network.parameters(), strict=True):
                p.copy_(q)
    stored = model._stored_adam_state()
    assert stored is not None and stored.steps == 12 == int(model.adam_steps)
    for name, p in net.named_parameters():
        state = optimizer.state[p]
        assert int(state["step"]) == 12
        assert torch.allclose(stored.squares[name], state["exp_avg_sq"], rtol=1e-9,
                              atol=1e-30), name


def test_test_tasks_start_from_the_trained_state_and_leave_it_unchanged():
    model = _persistent()
    model.training_step(_episode(1))
    before = model.adam_squares.clone(), int(model.adam_steps)
    assert before[1] == 6 and before[0].abs().sum() > 0
    model.eval()
    episode = _episode(3, tasks=1)
    params = {name: p.detach() for name, p in model.network.named_parameters()}
    phi = inner_loop(model.network, params, episode.support_x[0][INTERLEAVED],
                     episode.support_y[0][INTERLEAVED], 4, model.step_sizes(),
                     optimizer="adam", batch_size=3,
                     adam_state=model._stored_adam_state())
    expected = torch.func.functional_call(model.network, phi, (episode.query_x[0],))
    with torch.no_grad():
        first, second = model(episode)[0], model(episode)[0]
    assert torch.allclose(first, expected, rtol=1e-10, atol=1e-12)
    assert torch.equal(first, second)  # the second test task started from the same state
    assert torch.equal(model.adam_squares, before[0]) and int(model.adam_steps) == before[1]
    fresh = inner_loop(model.network, params, episode.support_x[0][INTERLEAVED],
                       episode.support_y[0][INTERLEAVED], 4, model.step_sizes(),
                       optimizer="adam", batch_size=3)
    assert any(not torch.allclose(phi[name], fresh[name]) for name in phi)


def test_an_inner_loop_continues_a_state_as_one_longer_loop_would():
    """Hand-checkable: two calls of 2 steps on the same data, the state carried, take the same
    steps as one call of 4 (the bias correction counts the steps of both calls)."""
    model = _persistent()
    episode = _episode(4, tasks=1)
    x, y = episode.support_x[0], episode.support_y[0]
    params = {name: p.detach() for name, p in model.network.named_parameters()}
    once = inner_loop(model.network, params, x, y, 4, model.step_sizes(), optimizer="adam")
    state = AdamState()
    halfway = inner_loop(model.network, params, x, y, 2, model.step_sizes(), optimizer="adam",
                         adam_state=state)
    assert state.steps == 2
    twice = inner_loop(model.network, halfway, x, y, 2, model.step_sizes(), optimizer="adam",
                       adam_state=state)
    assert state.steps == 4
    for name in once:
        assert torch.allclose(once[name], twice[name], rtol=1e-12, atol=1e-14), name


def test_the_state_is_saved_with_the_checkpoint_and_old_records_load_fresh(tmp_path):
    model = _persistent().float()
    model.training_step(_episode(1, dtype=torch.float32))
    save_checkpoint(tmp_path / "run", model)
    loaded, record = load_checkpoint(tmp_path / "run")
    assert record["hparams"]["inner_adam_state"] == "persistent"
    assert torch.equal(loaded.adam_squares, model.adam_squares)
    assert int(loaded.adam_steps) == 6
    fresh = Reptile(**SMALL)
    assert "inner_adam_state" not in fresh.hparams  # as every record before the option
    assert fresh.inner_adam_state == "fresh" and not hasattr(fresh, "adam_squares")


def test_a_persistent_state_needs_adam():
    with pytest.raises(ValueError, match="inner_adam_state='persistent' keeps the inner "
                                         "Adam's state: use it with inner_optimizer='adam'"):
        Reptile(**SMALL, inner_optimizer="sgd", inner_adam_state="persistent")
    with pytest.raises(ValueError, match="inner_adam_state must be one of fresh, persistent"):
        Reptile(**SMALL, inner_adam_state="kept")


def test_a_persistent_state_refuses_a_distributed_run(monkeypatch):
    """Each process would keep a state of its own tasks: no single state to save."""
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match="train it on one process, or with "
                                         "inner_adam_state='fresh'"):
        _persistent().training_step(_episode(1))
    Reptile(**SMALL).double().training_step(_episode(1))  # fresh: each task stands alone


def test_the_shipped_checkpoint_carries_the_state_its_training_left():
    """reptile-omniglot-5way was trained with the authors' Adam: its saved state counts every
    inner step of its run (steps x tasks x inner steps), so its tests start from it."""
    method, record = load_checkpoint("reptile-omniglot-5way")
    assert record["hparams"]["inner_adam_state"] == "persistent"
    assert "--inner-adam-state persistent" in record["command"]
    config = record["config"]
    assert int(method.adam_steps) == record["episode"] * config["batch_size"] * method.inner_steps
    assert bool((method.adam_squares > 0).all())


def test_both_engines_start_test_tasks_from_the_stored_state():
    """vmap (the engine on a GPU) reads the same state as the loop over tasks."""
    model = _persistent()
    model.training_step(_episode(1))
    model.eval()
    episode = _episode(3)
    with torch.no_grad():
        model.engine = "loop"
        loop = model(episode)
        model.engine = "vmap"
        vectorised = model(episode)
    assert torch.allclose(loop, vectorised, rtol=1e-10, atol=1e-12)
