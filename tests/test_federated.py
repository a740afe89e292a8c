"""Federated meta-learning: the server's weighted average, one FedAvg and one FedMeta round
against a hand computation, determinism, personalisation, and the clients of Omniglot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fslearn.data import FewShotDataset, load_omniglot
from fslearn.data.episodes import EpisodeSampler
from fslearn.federated import (
    Client,
    ClientUpdate,
    LocalTraining,
    aggregate,
    alphabet_clients,
    apply_update,
    client_seed,
    fedavg_update,
    fedmeta_update,
    get_weights,
    personalise,
    run_federated,
    set_weights,
)
from fslearn.methods import PrototypicalNetwork


def tiny_protonet(seed: int = 0, batch_norm: bool = False) -> PrototypicalNetwork:
    """A Prototypical Network whose embedding is one linear map of a 2x2 image to 2 numbers."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(4, 2)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(2))
    return PrototypicalNetwork(backbone=nn.Sequential(*layers))


def tiny_clients(counts: tuple[tuple[int, int], ...] = ((2, 4), (3, 4), (5, 4))) -> list[Client]:
    """Clients with (classes, images per class): 8, 12 and 20 images, weights 0.2, 0.3, 0.5."""
    generator = torch.Generator().manual_seed(7)
    clients = []
    for number, (classes, per_class) in enumerate(counts):
        images = torch.randint(0, 256, (classes * per_class, 1, 2, 2), dtype=torch.uint8,
                               generator=generator)
        labels = torch.arange(classes).repeat_interleave(per_class)
        names = [f"alphabet{number}/character{c}" for c in range(classes)]
        clients.append(Client(f"alphabet{number}", FewShotDataset(images, labels, names)))
    return clients


#: one SGD step on one 2-way 1-shot episode with one query per class
ONE_STEP = LocalTraining(n_way=2, k_shot=1, n_query=1, steps=1, lr=0.1, optimizer="sgd")


def hand_gradient(weight: torch.Tensor, bias: torch.Tensor, client: Client, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The Prototypical Network's loss gradient on the client's episode, written out in
    float64: embeddings W x + b, prototypes = the single support embedding of each class,
    logits = -squared distances, cross-entropy over the queries."""
    episode = EpisodeSampler(client.dataset, 2, 1, 1, seed=seed).episode(0)
    w = weight.detach().double().requires_grad_()
    b = bias.detach().double().requires_grad_()
    support = episode.support_x[0].flatten(1).double() @ w.T + b  # [2, 2], class-major
    query = episode.query_x[0].flatten(1).double() @ w.T + b  # [2, 2]
    logits = -((query[:, None, :] - support[None, :, :]) ** 2).sum(-1)
    F.cross_entropy(logits, episode.query_y[0]).backward()
    assert w.grad is not None and b.grad is not None
    return w.grad, b.grad


def test_aggregate_is_the_weighted_average_exactly() -> None:
    updates = [ClientUpdate([np.array([3.0, -1.0]), np.array([5], dtype=np.int64)], 3, client=1),
               ClientUpdate([np.array([1.0, 2.0]), np.array([2], dtype=np.int64)], 1, client=0)]
    averaged = aggregate(updates)
    # (1 * [1, 2] + 3 * [3, -1]) / 4, and (2 + 3 * 5) / 4 = 4.25 rounded for an integer buffer
    assert averaged[0].tolist() == [2.5, -0.25] and averaged[0].dtype == np.float64
    assert averaged[1].tolist() == [4] and averaged[1].dtype == np.int64
    # the same bits whatever order the updates arrive in
    noisy = [ClientUpdate([np.random.default_rng(k).normal(size=5).astype(np.float32)], k + 1,
                          client=k) for k in range(5)]
    assert np.array_equal(aggregate(noisy)[0], aggregate(noisy[::-1])[0])


def test_aggregate_refuses_what_it_cannot_average() -> None:
    with pytest.raises(ValueError, match="no client updates"):
        aggregate([])
    with pytest.raises(ValueError, match="every client must have examples"):
        aggregate([ClientUpdate([np.zeros(2)], 0)])
    with pytest.raises(ValueError, match="different shapes"):
        aggregate([ClientUpdate([np.zeros(2)], 1), ClientUpdate([np.zeros(3)], 1, client=1)])


def test_one_fedavg_round_matches_the_hand_computation() -> None:
    model, clients = tiny_protonet(), tiny_clients()
    linear = model.backbone[1]
    weight, bias = linear.weight.detach().clone(), linear.bias.detach().clone()
    run_federated(model, clients, rounds=1, algorithm="fedavg", local=ONE_STEP, seed=3)
    expected_w = torch.zeros(2, 4, dtype=torch.float64)
    expected_b = torch.zeros(2, dtype=torch.float64)
    for k, share in zip(range(3), (0.2, 0.3, 0.5), strict=True):
        grad_w, grad_b = hand_gradient(weight, bias, clients[k], client_seed(3, 0, k))
        expected_w += share * (weight.double() - 0.1 * grad_w)
        expected_b += share * (bias.double() - 0.1 * grad_b)
    torch.testing.assert_close(linear.weight.double(), expected_w, atol=1e-6, rtol=0)
    torch.testing.assert_close(linear.bias.double(), expected_b, atol=1e-6, rtol=0)
    assert not torch.allclose(linear.weight, weight)  # it did move


def test_one_fedmeta_round_matches_the_hand_computation() -> None:
    model, clients = tiny_protonet(), tiny_clients()
    linear = model.backbone[1]
    weight, bias = linear.weight.detach().clone(), linear.bias.detach().clone()
    run_federated(model, clients, rounds=1, algorithm="fedmeta", local=ONE_STEP, seed=3,
                  server_lr=0.5)
    mean_w = torch.zeros(2, 4, dtype=torch.float64)
    mean_b = torch.zeros(2, dtype=torch.float64)
    for k, share in zip(range(3), (0.2, 0.3, 0.5), strict=True):
        grad_w, grad_b = hand_gradient(weight, bias, clients[k], client_seed(3, 0, k))
        mean_w += share * grad_w
        mean_b += share * grad_b
    torch.testing.assert_close(linear.weight.double(), weight.double() - 0.5 * mean_w,
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(linear.bias.double(), bias.double() - 0.5 * mean_b, atol=1e-6,
                               rtol=0)


def test_fedavg_with_one_sgd_step_is_fedmeta_and_parts_from_it_with_more() -> None:
    results = {}
    for steps in (1, 3):
        local = LocalTraining(n_way=2, k_shot=1, n_query=2, steps=steps, lr=0.05,
                              optimizer="sgd")
        for algorithm in ("fedavg", "fedmeta"):
            model = tiny_protonet()
            run_federated(model, tiny_clients(), 2, algorithm, local, seed=1, server_lr=0.05)
            results[steps, algorithm] = get_weights(model)
    for a, b in zip(results[1, "fedavg"], results[1, "fedmeta"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert not all(np.allclose(a, b, atol=1e-4)
                   for a, b in zip(results[3, "fedavg"], results[3, "fedmeta"], strict=True))


def test_runs_are_deterministic_and_seeded() -> None:
    local = LocalTraining(n_way=2, k_shot=1, n_query=1, steps=2, lr=0.01)
    runs = []
    for seed in (0, 0, 1):
        model = tiny_protonet()
        history = run_federated(model, tiny_clients(), 3, "fedavg", local, seed=seed,
                                clients_per_round=2)
        runs.append((get_weights(model), [r.clients for r in history]))
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], runs[1][0], strict=True))
    assert runs[0][1] == runs[1][1] and all(len(c) == 2 for c in runs[0][1])
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0][0], runs[2][0], strict=True))


def test_buffers_are_averaged_and_fedmeta_sends_gradients() -> None:
    model, clients = tiny_protonet(batch_norm=True), tiny_clients()
    local = LocalTraining(n_way=2, k_shot=1, n_query=1, steps=2)
    updates = [fedmeta_update(model, client, local, seed=k, index=k)
               for k, client in enumerate(clients)]
    names = list(model.state_dict())
    running = names.index("backbone.2.running_mean")
    counted = names.index("backbone.2.num_batches_tracked")
    # a buffer is the client's own value after its episodes; a parameter's entry is a gradient
    assert all(u.arrays[counted].item() == 2 for u in updates)
    assert not np.allclose(updates[0].arrays[running], updates[1].arrays[running])
    before = get_weights(model)
    apply_update(model, "fedmeta", aggregate(updates), server_lr=0.0)
    after = get_weights(model)
    shares = (0.2, 0.3, 0.5)
    expected = sum(s * u.arrays[running].astype(np.float64)
                   for s, u in zip(shares, updates, strict=True))
    np.testing.assert_allclose(after[running], expected, rtol=1e-6)
    assert after[counted].item() == 2
    weight = names.index("backbone.1.weight")
    assert np.array_equal(after[weight], before[weight])  # server_lr 0: parameters stay


def test_personalise_changes_a_copy_only() -> None:
    model, client = tiny_protonet(), tiny_clients()[2]
    before = get_weights(model)
    local = LocalTraining(n_way=3, k_shot=1, n_query=2, steps=4, lr=0.01)
    adapted = personalise(model, client.dataset, local, seed=5)
    again = personalise(model, client.dataset, local, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(before, get_weights(model), strict=True))
    assert all(np.array_equal(a, b) for a, b in
               zip(get_weights(adapted), get_weights(again), strict=True))
    assert not all(np.array_equal(a, b) for a, b in
                   zip(before, get_weights(adapted), strict=True))
    update = fedavg_update(model, client, local, seed=5, index=2)
    assert all(np.array_equal(a, b) for a, b in
               zip(update.arrays, get_weights(adapted), strict=True))
    assert update.num_examples == 20 and update.client == 2


def test_bad_arguments_are_one_line() -> None:
    model = tiny_protonet()
    with pytest.raises(ValueError, match="must build the same model"):
        set_weights(model, get_weights(model)[:-1])
    wrong = get_weights(model)
    wrong[0] = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"backbone\.1\.weight has shape \(2, 4\)"):
        set_weights(model, wrong)
    with pytest.raises(ValueError, match="unknown algorithm 'fedprox'"):
        run_federated(model, tiny_clients(), 1, "fedprox")
    with pytest.raises(ValueError, match=r"LocalTraining\.steps must be a positive integer"):
        LocalTraining(steps=0)
    with pytest.raises(ValueError, match="at least two alphabets"):
        alphabet_clients(tiny_clients()[0].dataset)


def test_omniglot_background_alphabets_are_thirty_clients(omniglot_root) -> None:
    background = load_omniglot("train", "lake", root=omniglot_root)
    clients = alphabet_clients(background)
    assert len(clients) == 30
    assert sum(c.dataset.num_classes for c in clients) == 964
    assert sum(c.num_examples for c in clients) == 964 * 20
    greek = next(c for c in clients if c.name == "Greek")
    assert greek.dataset.num_classes == 24
    assert all(name.startswith("Greek/") for name in greek.dataset.class_names)
