r"""Federated meta-learning: few-shot learners trained by clients that never pool their images.

Each client holds its own classes (here: one Omniglot background alphabet each, so the clients'
data differ as much as alphabets do: strongly non-IID). A *round* of training has three steps:

1. the server sends the global weights :math:`\theta_r` to the round's clients;
2. client :math:`k` works on its own data only and sends back an update and its number of
   examples :math:`n_k`;
3. the server combines the updates, weighted by :math:`n_k / \sum_j n_j`.

Two ways to do step 2 and 3:

* **FedAvg** (McMahan et al. 2017), here of a few-shot learner: client :math:`k` takes
  ``steps`` episodic training steps from :math:`\theta_r` on its own episodes and sends the
  weights :math:`\theta_k` it ends with; the server averages them,

  .. math:: \theta_{r+1} = \sum_k \frac{n_k}{\sum_j n_j}\, \theta_k.

* **FedMeta** (Chen et al. 2018): client :math:`k` sends the meta-gradient at
  :math:`\theta_r`, :math:`g_k = \nabla_\theta \mathcal{L}_k(\theta_r)`, the gradient of the
  method's loss on query sets (for a Prototypical Network, its episode loss; for MAML, the
  loss after its inner loop), averaged over ``steps`` of its episodes; the server takes one
  step with the weighted average,

  .. math:: \theta_{r+1} = \theta_r - \beta \sum_k \frac{n_k}{\sum_j n_j}\, g_k

  (or gives that average to an optimizer such as Adam). With one local step of plain SGD the
  two coincide (FedSGD); they part with more local steps.

**Personalisation**: a few adaptation steps of the global model on one client's own data
(:func:`personalise`).

Buffers (batch norm's running statistics) are averaged by both algorithms, as weights are. Every
client's episodes come from a generator seeded with ``(seed, round, client)``: runs are
deterministic, and the same in-process (:func:`run_federated`) as under Flower
(:mod:`fslearn.federated_flower`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import EpisodeSampler
from fslearn.methods.base import FewShotMethod

__all__ = [
    "ALGORITHMS",
    "Client",
    "ClientUpdate",
    "LocalTraining",
    "RoundRecord",
    "aggregate",
    "alphabet_clients",
    "apply_update",
    "client_seed",
    "client_update",
    "fedavg_update",
    "fedmeta_update",
    "get_weights",
    "personalise",
    "run_federated",
    "set_weights",
]

Algorithm = Literal["fedavg", "fedmeta"]
ALGORITHMS: tuple[str, ...] = ("fedavg", "fedmeta")


@dataclass(frozen=True)
class Client:
    """One data owner: a name and the classes it holds (never sent anywhere).

    Attributes:
        name: e.g. the alphabet, ``"Greek"``.
        dataset: its images, ``images: [n_k, C, H, W]``.
    """

    name: str
    dataset: FewShotDataset

    @property
    def num_examples(self) -> int:
        """:math:`n_k`, its weight in the server's average: its number of images."""
        return len(self.dataset)


@dataclass(frozen=True)
class LocalTraining:
    """What a client does with the global weights in one round.

    Attributes:
        n_way, k_shot, n_query: its episodes (drawn from its own classes only).
        steps: FedAvg and personalisation: optimizer steps, one episode each; FedMeta: episodes
            whose meta-gradients are averaged.
        lr: the local optimizer's learning rate (FedAvg and personalisation).
        optimizer: ``"adam"`` (a fresh one each round, as clients keep no state) or ``"sgd"``.
    """

    n_way: int = 5
    k_shot: int = 1
    n_query: int = 5
    steps: int = 5
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"

    def __post_init__(self) -> None:
        for name in ("n_way", "k_shot", "n_query", "steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LocalTraining.{name} must be a positive integer, got "
                                 f"{value!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"LocalTraining.optimizer must be 'adam' or 'sgd', got "
                             f"{self.optimizer!r}")


@dataclass(frozen=True)
class ClientUpdate:
    """What a client sends back: arrays in :func:`get_weights`'s order and its :math:`n_k`.

    Attributes:
        arrays: FedAvg: its weights (parameters and buffers); FedMeta: the meta-gradient of
            each parameter, and its buffers.
        num_examples: :math:`n_k`.
        client: the client's index (the server orders updates by it, so that the sum is the
            same whatever order they arrive in).
        metrics: e.g. its mean training loss.
    """

    arrays: list[np.ndarray]
    num_examples: int
    client: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


def alphabet_clients(dataset: FewShotDataset) -> list[Client]:
    """One client per alphabet: classes grouped by the first part of their names
    (``"Greek/character01"`` -> ``"Greek"``), in order of first appearance.

    ``alphabet_clients(load_omniglot("train", "lake"))`` gives the 30 background alphabets.
    """
    groups = dataset.classes_by_alphabet()
    if len(groups) < 2:
        raise ValueError(f"{dataset.name} has classes of {len(groups)} alphabet: clients need "
                         f"class names 'Alphabet/character' from at least two alphabets.")
    return [Client(name, dataset.select_classes(classes)) for name, classes in groups.items()]


def get_weights(method: FewShotMethod) -> list[np.ndarray]:
    """Every parameter and buffer of ``method`` as NumPy arrays (copies), in
    ``state_dict`` order: what travels between server and clients."""
    return [value.detach().cpu().numpy().copy() for value in method.state_dict().values()]


def set_weights(method: FewShotMethod, arrays: Sequence[np.ndarray]) -> None:
    """Load arrays in :func:`get_weights`'s order into ``method``.

    Raises:
        ValueError: a different number of arrays, or a shape that does not match.
    """
    state = method.state_dict()
    if len(arrays) != len(state):
        raise ValueError(f"{len(arrays)} arrays were received for a model with {len(state)} "
                         f"parameters and buffers: the server and the clients must build the "
                         f"same model.")
    loaded = {}
    for (name, current), array in zip(state.items(), arrays, strict=True):
        if tuple(array.shape) != tuple(current.shape):
            raise ValueError(f"{name} has shape {tuple(current.shape)} but the array received "
                             f"has {tuple(array.shape)}: the server and the clients must build "
                             f"the same model.")
        loaded[name] = torch.as_tensor(np.asarray(array), dtype=current.dtype)
    method.load_state_dict(loaded)


def client_seed(seed: int, round_index: int, client: int) -> int:
    """The seed of client ``client``'s episodes in round ``round_index`` (a pure function)."""
    return int(np.random.SeedSequence([seed, round_index, client]).generate_state(1)[0])


def _episodes(dataset: FewShotDataset, local: LocalTraining, seed: int) -> EpisodeSampler:
    return EpisodeSampler(dataset, local.n_way, local.k_shot, local.n_query, seed=seed)


def _train_locally(method: FewShotMethod, dataset: FewShotDataset, local: LocalTraining,
                   seed: int) -> tuple[FewShotMethod, list[float]]:
    local_method = copy.deepcopy(method)
    local_method.train()
    parameters = [p for p in local_method.parameters() if p.requires_grad]
    optimizer: torch.optim.Optimizer = (torch.optim.Adam(parameters, lr=local.lr)
                                        if local.optimizer == "adam"
                                        else torch.optim.SGD(parameters, lr=local.lr))
    sampler = _episodes(dataset, local, seed)
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # methods that draw random numbers draw the same every run
        for step in range(local.steps):
            optimizer.zero_grad(set_to_none=True)
            loss, _ = local_method.training_step(sampler.episode(step))
            optimizer.step()
            losses.append(float(loss))
    return local_method, losses


def personalise(method: FewShotMethod, dataset: FewShotDataset, local: LocalTraining,
                seed: int = 0) -> FewShotMethod:
    """A copy of ``method`` after ``local.steps`` episodic training steps on ``dataset`` (a
    client's own data), with a fresh optimizer; ``method`` is left as it was. The same local
    training is FedAvg's client step."""
    return _train_locally(method, dataset, local, seed)[0]


def fedavg_update(method: FewShotMethod, client: Client, local: LocalTraining, seed: int,
                  index: int = 0) -> ClientUpdate:
    """FedAvg's client step: train a copy of the global ``method`` on the client's episodes
    (:func:`personalise`) and send its weights."""
    trained, losses = _train_locally(method, client.dataset, local, seed)
    return ClientUpdate(get_weights(trained), client.num_examples, index,
                        {"loss": float(np.mean(losses))})


def fedmeta_update(method: FewShotMethod, client: Client, local: LocalTraining, seed: int,
                   index: int = 0) -> ClientUpdate:
    """FedMeta's client step: the meta-gradient at the global weights, averaged over
    ``local.steps`` of the client's episodes, with the buffers those episodes leave.

    Returns:
        arrays: for each entry of ``state_dict``, the mean gradient (parameters; zeros for a
        parameter without one) or the buffer's new value.
    """
    local_method = copy.deepcopy(method)
    local_method.train()
    local_method.zero_grad(set_to_none=True)
    sampler = _episodes(client.dataset, local, seed)
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in range(local.steps):
            loss, _ = local_method.training_step(sampler.episode(step))
            losses.append(float(loss))
    parameters = dict(local_method.named_parameters())
    arrays = []
    for name, value in local_method.state_dict().items():
        if name in parameters:
            grad = parameters[name].grad
            value = torch.zeros_like(value) if grad is None else grad / local.steps
        arrays.append(value.detach().cpu().numpy().copy())
    return ClientUpdate(arrays, client.num_examples, index, {"loss": float(np.mean(losses))})


def client_update(algorithm: str, method: FewShotMethod, client: Client, local: LocalTraining,
                  seed: int, index: int = 0) -> ClientUpdate:
    """The client step of ``algorithm`` (``"fedavg"`` or ``"fedmeta"``)."""
    if algorithm == "fedavg":
        return fedavg_update(method, client, local, seed, index)
    if algorithm == "fedmeta":
        return fedmeta_update(method, client, local, seed, index)
    raise ValueError(f"unknown algorithm {algorithm!r}: choose one of {', '.join(ALGORITHMS)}.")


def aggregate(updates: Sequence[ClientUpdate]) -> list[np.ndarray]:
    r"""The server's weighted average :math:`\sum_k n_k a_k / \sum_k n_k` of each array.

    The sum runs in float64, over the clients in order of their index (the same bits whatever
    order the updates arrived in); each result has its array's dtype (integer buffers, such as
    batch norm's count of batches, are rounded).

    Raises:
        ValueError: no updates, a client without examples, or updates of different shapes.
    """
    if not updates:
        raise ValueError("no client updates to aggregate: at least one client must answer.")
    ordered = sorted(updates, key=lambda update: update.client)
    counts = np.array([update.num_examples for update in ordered], dtype=np.float64)
    if (counts <= 0).any():
        raise ValueError(f"every client must have examples; got counts {counts.tolist()}")
    shapes = {tuple(a.shape for a in update.arrays) for update in ordered}
    if len(shapes) != 1:
        raise ValueError("the clients sent arrays of different shapes: they must all train "
                         "the same model.")
    weights = counts / counts.sum()
    averaged = []
    for arrays in zip(*(update.arrays for update in ordered), strict=True):
        total = np.zeros(arrays[0].shape, dtype=np.float64)
        for weight, array in zip(weights, arrays, strict=True):
            total += weight * np.asarray(array, dtype=np.float64)
        kind = arrays[0].dtype
        averaged.append(np.rint(total).astype(kind) if np.issubdtype(kind, np.integer)
                        else total.astype(kind))
    return averaged


def apply_update(method: FewShotMethod, algorithm: str, averaged: Sequence[np.ndarray],
                 server_lr: float = 1.0, optimizer: torch.optim.Optimizer | None = None) -> None:
    r"""The server's step with the aggregated arrays: FedAvg loads them as the new weights;
    FedMeta sets the parameters to :math:`\theta - \beta \bar g` (``server_lr`` :math:`=\beta`),
    or gives :math:`\bar g` to ``optimizer`` as the gradient, and loads the averaged buffers."""
    if algorithm == "fedavg":
        set_weights(method, averaged)
        return
    if algorithm != "fedmeta":
        raise ValueError(f"unknown algorithm {algorithm!r}: choose one of "
                         f"{', '.join(ALGORITHMS)}.")
    parameters = dict(method.named_parameters())
    buffers = []
    for (name, value), array in zip(method.state_dict().items(), averaged, strict=True):
        if name not in parameters:
            buffers.append((name, array))
            continue
        gradient = torch.as_tensor(array, dtype=value.dtype, device=value.device)
        if optimizer is None:
            with torch.no_grad():
                parameters[name] -= server_lr * gradient
        else:
            parameters[name].grad = gradient
    if optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    state = method.state_dict()
    for name, array in buffers:
        state[name].copy_(torch.as_tensor(array, dtype=state[name].dtype))


@dataclass(frozen=True)
class RoundRecord:
    """One round of :func:`run_federated`: who took part, their mean local loss, and
    whatever ``evaluate`` returned."""

    round: int
    clients: list[int]
    metrics: dict[str, Any]


def _participants(clients: int, per_round: int | None, seed: int, round_index: int
                  ) -> list[int]:
    if per_round is None or per_round >= clients:
        return list(range(clients))
    chosen = np.random.default_rng([seed, round_index]).choice(clients, per_round,
                                                               replace=False)
    return sorted(int(c) for c in chosen)


def run_federated(
    method: FewShotMethod,
    clients: Sequence[Client],
    rounds: int,
    algorithm: str = "fedavg",
    local: LocalTraining | None = None,
    *,
    clients_per_round: int | None = None,
    server_lr: float = 1.0,
    server_optimizer: torch.optim.Optimizer | None = None,
    seed: int = 0,
    evaluate: Callable[[int, FewShotMethod], dict[str, Any]] | None = None,
) -> list[RoundRecord]:
    """Train ``method`` (the global model, updated in place) for ``rounds`` rounds, in this
    process: no networking, the same arithmetic as the Flower wrapping.

    Args:
        clients: the data owners; client ``k``'s episodes in round ``r`` are seeded with
            ``client_seed(seed, r, k)``.
        algorithm: ``"fedavg"`` or ``"fedmeta"``.
        local: the clients' local training (default :class:`LocalTraining`).
        clients_per_round: how many clients take part in each round, drawn from
            ``(seed, round)`` (default: all).
        server_lr, server_optimizer: FedMeta's server step (see :func:`apply_update`).
        evaluate: called after each round with ``(round, method)``; its dict goes into the
            round's record.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}: choose one of "
                         f"{', '.join(ALGORITHMS)}.")
    if not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds must be a non-negative integer, got {rounds!r}")
    local = local or LocalTraining()
    history = []
    for round_index in range(rounds):
        chosen = _participants(len(clients), clients_per_round, seed, round_index)
        updates = [client_update(algorithm, method, clients[k], local,
                                 client_seed(seed, round_index, k), k) for k in chosen]
        apply_update(method, algorithm, aggregate(updates), server_lr, server_optimizer)
        metrics: dict[str, Any] = {}
        losses = [u.metrics["loss"] for u in updates if "loss" in u.metrics]
        if losses:
            metrics["client_loss"] = float(np.mean(losses))
        if evaluate is not None:
            metrics.update(evaluate(round_index, method))
        history.append(RoundRecord(round_index, chosen, metrics))
    return history
