"""The federated functions under Flower: the client and the strategy give the in-process
arithmetic, and Flower's simulation of three clients ends with the weights of
``run_federated``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr", reason="Flower is not installed: pip install 'fslearn[federated]' "
                    "(tools/setup.sh installs it, so CI runs this test)")

from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from test_federated import tiny_clients, tiny_protonet

from fslearn.federated import LocalTraining, get_weights, run_federated
from fslearn.federated_flower import (
    FewShotClient,
    FewShotStrategy,
    run_flower_simulation,
)

LOCAL = LocalTraining(n_way=2, k_shot=1, n_query=2, steps=2, lr=0.05, optimizer="sgd")


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.allclose(x, y, rtol=0, atol=1e-7)
                                    for x, y in zip(a, b, strict=True))


def test_client_and_strategy_do_what_run_federated_does() -> None:
    """One FedAvg round through Flower's client and strategy objects, without transport, with
    the clients' answers arriving in reverse order."""
    clients = tiny_clients()
    server = tiny_protonet()
    strategy = FewShotStrategy(server, "fedavg", num_clients=3)
    config = strategy.fit_config(1)
    start = get_weights(server)
    results = []
    for index, client in enumerate(clients):
        arrays, count, metrics = FewShotClient(tiny_protonet(seed=9), client, index, LOCAL,
                                               seed=4).fit(start, config)
        status = Status(code=Code.OK, message="")
        results.append((None, FitRes(status, ndarrays_to_parameters(arrays), count, metrics)))
    parameters, metrics = strategy.aggregate_fit(1, results[::-1], [])
    assert parameters is not None and metrics["clients"] == 3
    reference = tiny_protonet()
    run_federated(reference, clients, 1, "fedavg", LOCAL, seed=4)
    assert _same(get_weights(server), get_weights(reference))


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'fedsgd'"):
        FewShotStrategy(tiny_protonet(), "fedsgd", num_clients=2)


def test_flower_simulation_of_three_clients_matches_run_federated() -> None:
    """FedMeta for two rounds in Flower's simulation (each client in its own Ray worker)."""
    clients = tiny_clients()
    simulated = tiny_protonet()
    strategy = run_flower_simulation(simulated, clients, rounds=2, algorithm="fedmeta",
                                     local=LOCAL, seed=2, server_lr=0.5)
    assert [entry["round"] for entry in strategy.history] == [1, 2]
    assert all(entry["clients"] == 3 for entry in strategy.history)
    reference = tiny_protonet()
    run_federated(reference, clients, 2, "fedmeta", LOCAL, seed=2, server_lr=0.5)
    assert _same(get_weights(simulated), get_weights(reference))
    assert not _same(get_weights(simulated), get_weights(tiny_protonet()))
