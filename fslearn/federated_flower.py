"""The federated functions of :mod:`fslearn.federated` on Flower, the federated-learning engine
people deploy with (``pip install 'fslearn[federated]'``).

Flower (Beutel et al. 2020, ``flwr``) carries the weights between a server and clients that run
anywhere (phones, hospitals' machines, a simulation on one computer) and handles who takes part
in a round, failures and transport; this module only plugs the package's client step and server
step into it, so the arithmetic is the same as :func:`fslearn.federated.run_federated`'s:

* :class:`FewShotClient`, a ``NumPyClient``: on ``fit`` it loads the server's weights and
  returns :func:`~fslearn.federated.client_update` (FedAvg's weights or FedMeta's
  meta-gradient) with its number of examples;
* :class:`FewShotStrategy`, a Flower ``FedAvg`` strategy whose aggregation is
  :func:`~fslearn.federated.aggregate` followed by :func:`~fslearn.federated.apply_update` on
  the server's copy of the model (for FedMeta: the server's gradient step);
* :func:`run_flower_simulation`: Flower's simulation of ``len(clients)`` clients on this machine
  (Flower runs it on Ray, which ``flwr[simulation]`` installs).

Every client takes part in every round here (Flower's sampling of clients is not seeded), so a
simulation ends with the weights :func:`~fslearn.federated.run_federated` gives.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from fslearn.federated import (
    ALGORITHMS,
    Client,
    ClientUpdate,
    LocalTraining,
    aggregate,
    apply_update,
    client_seed,
    client_update,
    get_weights,
    set_weights,
)
from fslearn.methods.base import FewShotMethod

try:
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import Context, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(f"fslearn.federated_flower needs Flower ({error}): pip install "
                      f"'fslearn[federated]'.") from error

__all__ = ["FewShotClient", "FewShotStrategy", "client_app", "run_flower_simulation",
           "server_app"]


class FewShotClient(NumPyClient):
    """One data owner under Flower: its model, its data and its index among the clients.

    Args:
        method: a model of the server's architecture (its weights are replaced by the
            server's at every round).
        client: its data, which never leaves it.
        index: its number among the clients: the seed of its episodes, and the order of the
            server's sum.
        local: its local training.
        seed: the run's seed; round ``r``'s episodes use ``client_seed(seed, r - 1, index)``
            (Flower counts rounds from 1).
    """

    def __init__(self, method: FewShotMethod, client: Client, index: int,
                 local: LocalTraining, seed: int = 0) -> None:
        self.method, self.client, self.index = method, client, index
        self.local, self.seed = local, seed

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return get_weights(self.method)

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]
            ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        set_weights(self.method, parameters)
        round_index = int(config["server_round"]) - 1
        update = client_update(str(config["algorithm"]), self.method, self.client, self.local,
                               client_seed(self.seed, round_index, self.index), self.index)
        return update.arrays, update.num_examples, {"client": self.index, **update.metrics}


class FewShotStrategy(FedAvg):
    """Flower's FedAvg strategy with the package's aggregation and server step.

    Args:
        method: the server's model, updated in place after every round.
        algorithm: ``"fedavg"`` or ``"fedmeta"`` (sent to the clients with each round).
        num_clients: how many clients there are; all of them take part in every round.
        server_lr, server_optimizer: FedMeta's server step (see
            :func:`~fslearn.federated.apply_update`).
        **kwargs: more of Flower's ``FedAvg`` options (e.g. ``evaluate_fn``).
    """

    def __init__(self, method: FewShotMethod, algorithm: str, num_clients: int,
                 server_lr: float = 1.0, server_optimizer: torch.optim.Optimizer | None = None,
                 **kwargs: Any) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}: choose one of "
                             f"{', '.join(ALGORITHMS)}.")
        options = {"fraction_fit": 1.0, "fraction_evaluate": 0.0,
                   "min_fit_clients": num_clients, "min_available_clients": num_clients,
                   **kwargs}
        super().__init__(initial_parameters=ndarrays_to_parameters(get_weights(method)),
                         on_fit_config_fn=self.fit_config, **options)
        self.method, self.algorithm = method, algorithm
        self.server_lr, self.server_optimizer = server_lr, server_optimizer
        self.history: list[dict[str, Any]] = []

    def fit_config(self, server_round: int) -> dict[str, Any]:
        """What each client is told with the weights: the round and the algorithm."""
        return {"server_round": server_round, "algorithm": self.algorithm}

    def aggregate_fit(self, server_round: int, results: list, failures: list
                      ) -> tuple[Any, dict[str, Any]]:
        """Average the clients' arrays by their numbers of examples, take the server's step,
        and hand Flower the new global weights."""
        if not results or (failures and not self.accept_failures):
            return None, {}
        updates = [ClientUpdate(parameters_to_ndarrays(res.parameters), res.num_examples,
                                int(res.metrics["client"]),
                                {k: float(v) for k, v in res.metrics.items() if k != "client"})
                   for _, res in results]
        apply_update(self.method, self.algorithm, aggregate(updates), self.server_lr,
                     self.server_optimizer)
        losses = [u.metrics["loss"] for u in updates if "loss" in u.metrics]
        metrics = {"clients": len(updates)}
        if losses:
            metrics["client_loss"] = float(np.mean(losses))
        self.history.append({"round": server_round, **metrics})
        return ndarrays_to_parameters(get_weights(self.method)), metrics


def client_app(method: FewShotMethod, clients: Sequence[Client], local: LocalTraining,
               seed: int = 0) -> ClientApp:
    """A Flower ``ClientApp``: simulated node ``k`` (its ``partition-id``) is ``clients[k]``
    with a copy of ``method``."""

    def client_fn(context: Context) -> Any:
        index = int(context.node_config["partition-id"])
        return FewShotClient(copy.deepcopy(method), clients[index], index, local,
                             seed).to_client()

    return ClientApp(client_fn=client_fn)


def server_app(strategy: FewShotStrategy, rounds: int) -> ServerApp:
    """A Flower ``ServerApp`` that runs ``strategy`` for ``rounds`` rounds."""

    def server_fn(context: Context) -> ServerAppComponents:
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=rounds))

    return ServerApp(server_fn=server_fn)


def run_flower_simulation(
    method: FewShotMethod,
    clients: Sequence[Client],
    rounds: int,
    algorithm: str = "fedavg",
    local: LocalTraining | None = None,
    *,
    seed: int = 0,
    server_lr: float = 1.0,
    server_optimizer: torch.optim.Optimizer | None = None,
    backend_config: dict[str, Any] | None = None,
    strategy_factory: Callable[..., FewShotStrategy] = FewShotStrategy,
) -> FewShotStrategy:
    """Train ``method`` (updated in place) with Flower's simulation of one node per client.

    The arguments are :func:`~fslearn.federated.run_federated`'s (all clients take part in
    every round); ``backend_config`` goes to ``flwr.simulation.run_simulation`` (default: one
    CPU per client). Returns the strategy, whose ``history`` has each round's metrics.
    """
    from flwr.simulation import run_simulation

    local = local or LocalTraining()
    strategy = strategy_factory(method, algorithm, len(clients), server_lr=server_lr,
                                server_optimizer=server_optimizer)
    run_simulation(server_app=server_app(strategy, rounds),
                   client_app=client_app(method, clients, local, seed),
                   num_supernodes=len(clients),
                   backend_config=backend_config or {"client_resources": {"num_cpus": 1}})
    return strategy
