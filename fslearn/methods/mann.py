"""Memory-augmented neural network (Santoro et al. 2016) and its LSTM baseline.

A MANN is an LSTM *controller* with an external memory ``M`` of ``slots x width`` numbers. At
every step the controller emits, for each of its read heads, a key ``k_t`` (tanh) and a write gate
``sigmoid(alpha_t)``; the memory is written and then read by content::

    controller:  h_t = LSTM([x_t ; r_{t-1}], h_{t-1})          k_t = tanh(W_k h_t)
    least used:  w^lu_{t-1}(i) = 1 if w^u_{t-1}(i) is among the n smallest usages, else 0
    write:       w^w_t = sigmoid(alpha_t) w^r_{t-1} + (1 - sigmoid(alpha_t)) w^lu_{t-1}
                 M_t(i) = M_{t-1}(i) [least-used slot set to 0] + sum_heads w^w_t(i) k_t
    read:        w^r_t(i) = softmax_i( cos(k_t, M_t(i)) )       r_t = sum_i w^r_t(i) M_t(i)
    usage:       w^u_t = gamma w^u_{t-1} + sum_heads (w^r_t + w^w_t)
    output:      logits_t = W_o [h_t ; r_t] + b_o

Least Recently Used Access (LRUA) writes either where a head just read (to refine a memory) or to
the least-used slots (to store something new); the gate chooses. ``n`` is the number of read
heads, and the least-used slot is the one with the smallest ``w^u_{t-1}`` (ties: lowest index).

Where the public reproductions differ, this module chooses:

* one write head per read head (each head writes its own key with its own gate), not one shared
  write head;
* the key itself is written (the paper's equation), not a separate tanh "add" vector;
* the memory is read *after* this step's write, from ``M_t`` as in the paper's equations;
* ``alpha`` is emitted by the controller at every step, per head (a "dynamic scalar gate"), not a
  single learned constant;
* ``w^lu`` marks all ``n`` least-used slots for every head (the equation as written), so each head
  spreads ``1 - sigmoid(alpha)`` over each of them, rather than head ``j`` taking the ``j``-th
  least-used slot;
* usage decays with ``gamma = 0.95`` (every reproduction's value), a constant, not learned.

Initial state (as in every reproduction): memory filled with ``1e-6``, usage and every head's
read weights one-hot at slot 0, read vectors and LSTM state zero.

String labels: the logits are ``string_length`` groups of ``symbols`` (one softmax per
character); the loss sums the characters' cross-entropies (the negative log-probability of the
whole string), and a string counts as correct only when every character is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import NamedTuple

import torch
from torch import Tensor, nn

from fslearn.data.sequences import SequenceEpisode
from fslearn.methods.options import Option

# the family base and its scores live in fslearn.methods.sequence; re-exported here, where they
# were first defined, so that existing imports keep working
from fslearn.methods.sequence import (
    SequenceMethod,
    accuracy_by_presentation,
    correct_steps,
    predictions,
    sequence_loss,
)
from fslearn.results import PaperFigures

__all__ = [
    "MANN",
    "LSTMBaseline",
    "MANNState",
    "MemoryTrace",
    "SequenceMethod",
    "accuracy_by_presentation",
    "correct_steps",
    "cosine_read",
    "cosine_similarity",
    "least_used",
    "lrua_write_weights",
    "predictions",
    "sequence_loss",
    "update_usage",
    "write_memory",
]


# --- the memory operations, as pure functions of tensors ------------------------------------


def cosine_similarity(memory: Tensor, keys: Tensor, eps: float = 1e-8) -> Tensor:
    """``K(k, M(i)) = k . M(i) / (|k| |M(i)| + eps)`` for every head and slot.

    Args:
        memory: ``[batch, slots, width]``.
        keys: ``[batch, heads, width]``.

    Returns:
        ``[batch, heads, slots]``; 0 for an all-zero slot.
    """
    dot = keys @ memory.transpose(1, 2)
    norms = keys.norm(dim=2).unsqueeze(2) * memory.norm(dim=2).unsqueeze(1)
    return dot / (norms + eps)


def cosine_read(memory: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
    """Content-based read: softmax over slots of the cosine similarity (no sharpening).

    Args:
        memory: ``[batch, slots, width]``.
        keys: ``[batch, heads, width]``.

    Returns:
        weights: ``[batch, heads, slots]`` ``w^r``, each row sums to 1.
        vectors: ``[batch, heads, width]`` ``r = sum_i w^r(i) M(i)``.
    """
    weights = torch.softmax(cosine_similarity(memory, keys), dim=2)
    return weights, weights @ memory


def least_used(usage: Tensor, n: int) -> Tensor:
    """``usage: [batch, slots]`` -> ``[batch, slots]``: 1.0 at the ``n`` least-used slots, else 0.

    Ties go to the lowest slot index (a stable sort), so the result is the same on every device
    and the single least-used slot (``n = 1``) is always one of the ``n`` marked.
    """
    order = torch.argsort(usage, dim=1, stable=True)[:, :n]
    return torch.zeros_like(usage).scatter_(1, order, 1.0)


def lrua_write_weights(gate: Tensor, prev_read_weights: Tensor, prev_least_used: Tensor) -> Tensor:
    """``w^w_t = sigmoid(alpha) w^r_{t-1} + (1 - sigmoid(alpha)) w^lu_{t-1}``.

    Args:
        gate: ``[batch, heads]`` ``sigmoid(alpha_t)`` in ``(0, 1)``.
        prev_read_weights: ``[batch, heads, slots]`` ``w^r_{t-1}``.
        prev_least_used: ``[batch, slots]`` ``w^lu_{t-1}``, from :func:`least_used`.

    Returns:
        ``[batch, heads, slots]``.
    """
    gate = gate.unsqueeze(2)
    return gate * prev_read_weights + (1 - gate) * prev_least_used.unsqueeze(1)


def write_memory(memory: Tensor, write_weights: Tensor, keys: Tensor, prev_usage: Tensor
                 ) -> Tensor:
    """Zero the least-used slot, then add every head's key: ``M(i) += sum_h w^w_h(i) k_h``.

    Args:
        memory: ``[batch, slots, width]`` ``M_{t-1}``.
        write_weights: ``[batch, heads, slots]`` ``w^w_t``.
        keys: ``[batch, heads, width]`` ``k_t``.
        prev_usage: ``[batch, slots]`` ``w^u_{t-1}``, which decides the slot that is cleared.

    Returns:
        ``[batch, slots, width]`` ``M_t``.
    """
    # Clearing makes room: without it a new key would be added on top of an old memory in the
    # slot that is about to be reused, and the two would blur together.
    keep = 1 - least_used(prev_usage, 1)
    return memory * keep.unsqueeze(2) + write_weights.transpose(1, 2) @ keys


def update_usage(usage: Tensor, read_weights: Tensor, write_weights: Tensor, gamma: float
                 ) -> Tensor:
    """``w^u_t = gamma w^u_{t-1} + sum_heads (w^r_t + w^w_t)``.

    Args:
        usage: ``[batch, slots]`` ``w^u_{t-1}``.
        read_weights, write_weights: ``[batch, heads, slots]``.
        gamma: decay per step.

    Returns:
        ``[batch, slots]``.
    """
    return gamma * usage + read_weights.sum(1) + write_weights.sum(1)


# --- the models ---------------------------------------------------------------------------------


#: Santoro, Bartunov, Botvinick, Wierstra and Lillicrap (2016), Table 1: Omniglot sequence
#: episodes, 5-way, one-hot labels, accuracy on the 1st, 2nd, 3rd, 4th, 5th and 10th
#: presentation of a class; with the paper's human participants and feedforward network, for
#: reference. row -> n_way -> presentation -> accuracy
SANTORO_2016_TABLE_1 = PaperFigures(
    "Santoro, Bartunov, Botvinick, Wierstra and Lillicrap (2016), Meta-Learning with "
    "Memory-Augmented Neural Networks, ICML, Table 1 (Omniglot, 5-way, one-hot labels)",
    table={
        "mann": {5: {1: 0.364, 2: 0.828, 3: 0.910, 4: 0.926, 5: 0.949, 10: 0.981}},
        "lstm": {5: {1: 0.244, 2: 0.495, 3: 0.553, 4: 0.610, 5: 0.636, 10: 0.625}},
        "human": {5: {1: 0.345, 2: 0.573, 3: 0.701, 4: 0.718, 5: 0.814, 10: 0.924}},
        "feedforward": {5: {1: 0.244, 2: 0.196, 3: 0.211, 4: 0.199, 5: 0.228, 10: 0.195}},
    })


class MANNState(NamedTuple):
    """Everything a MANN carries from one step to the next.

    Attributes:
        h, c: ``[batch, controller_size]`` LSTM state.
        memory: ``[batch, slots, width]`` ``M_{t-1}``.
        usage: ``[batch, slots]`` ``w^u_{t-1}``.
        read_weights: ``[batch, heads, slots]`` ``w^r_{t-1}``.
        read_vectors: ``[batch, heads, width]`` ``r_{t-1}``.
    """

    h: Tensor
    c: Tensor
    memory: Tensor
    usage: Tensor
    read_weights: Tensor
    read_vectors: Tensor


@dataclass(frozen=True)
class MemoryTrace:
    """What a MANN did with its memory at every step, for plots.

    Attributes:
        read_weights: ``[batch, time, heads, slots]`` ``w^r_t``.
        write_weights: ``[batch, time, heads, slots]`` ``w^w_t``.
        usage: ``[batch, time, slots]`` ``w^u_t``.
        write_gate: ``[batch, time, heads]`` ``sigmoid(alpha_t)``: 1 = write where last read,
            0 = write to the least-used slots.
        memory: ``[batch, slots, width]`` the memory after the last step.
    """

    read_weights: Tensor
    write_weights: Tensor
    usage: Tensor
    write_gate: Tensor
    memory: Tensor


class MANN(SequenceMethod):
    """LSTM controller + external memory with LRUA writes (see the module docstring).

    Args:
        input_features: numbers per step, image plus label code (``episode.features``; 405 for
            5-way with 20x20 images).
        num_outputs: logits per step (``episode.num_outputs``: ``n_way``, or 25 for strings).
        controller_size: LSTM units (200 in the paper).
        memory_slots, memory_width: memory size (128 x 40 in the paper).
        read_heads: read heads, and write heads (4 in the paper).
        gamma: usage decay per step.
    """

    name = "mann"
    paper_figures = MappingProxyType({"sequences": replace(
        SANTORO_2016_TABLE_1, figures=SANTORO_2016_TABLE_1.table["mann"])})
    cli_options = (
        *SequenceMethod.cli_options,
        Option(("--controller-size",), "LSTM units of the controller", type=int,
               exclusive=True, positive=True),
        Option(("--memory-slots",), "memory rows", type=int, exclusive=True, positive=True),
        Option(("--memory-width",), "numbers per memory row", type=int, exclusive=True,
               positive=True),
        Option(("--read-heads",), "read (and write) heads", type=int, exclusive=True,
               positive=True),
    )

    def __init__(
        self,
        input_features: int = 405,
        num_outputs: int = 5,
        controller_size: int = 200,
        memory_slots: int = 128,
        memory_width: int = 40,
        read_heads: int = 4,
        gamma: float = 0.95,
    ) -> None:
        super().__init__()
        if read_heads > memory_slots:
            raise ValueError(f"read_heads={read_heads} needs at least as many memory slots, got "
                             f"memory_slots={memory_slots}")
        self.hparams = dict(input_features=input_features, num_outputs=num_outputs,
                            controller_size=controller_size, memory_slots=memory_slots,
                            memory_width=memory_width, read_heads=read_heads, gamma=gamma)
        self.slots, self.width, self.heads, self.gamma = (memory_slots, memory_width, read_heads,
                                                          gamma)
        reads = read_heads * memory_width
        self.controller = nn.LSTMCell(input_features + reads, controller_size)
        self.key = nn.Linear(controller_size, reads)
        self.alpha = nn.Linear(controller_size, read_heads)
        self.output = nn.Linear(controller_size + reads, num_outputs)

    def initial_state(self, batch: int, like: Tensor) -> MANNState:
        """The state before the first step, with ``like``'s dtype and device."""
        zeros = like.new_zeros
        first_slot = zeros(self.slots)
        first_slot[0] = 1.0
        return MANNState(
            h=zeros(batch, self.controller.hidden_size),
            c=zeros(batch, self.controller.hidden_size),
            # Not zero: the cosine divides by each slot's norm, and the reproductions report
            # that training from an all-zero memory fails.
            memory=like.new_full((batch, self.slots, self.width), 1e-6),
            usage=first_slot.expand(batch, -1).clone(),
            read_weights=first_slot.expand(batch, self.heads, -1).clone(),
            read_vectors=zeros(batch, self.heads, self.width),
        )

    def step(self, x: Tensor, state: MANNState) -> tuple[Tensor, MANNState, Tensor, Tensor]:
        """One time step.

        Args:
            x: ``[batch, input_features]``.
            state: the state after the previous step.

        Returns:
            logits: ``[batch, num_outputs]``.
            state: the new state.
            write_weights: ``[batch, heads, slots]`` ``w^w_t``.
            gate: ``[batch, heads]`` ``sigmoid(alpha_t)``.
        """
        h, c = self.controller(torch.cat([x, state.read_vectors.flatten(1)], 1),
                               (state.h, state.c))
        keys = torch.tanh(self.key(h)).view(-1, self.heads, self.width)
        gate = torch.sigmoid(self.alpha(h))
        write_weights = lrua_write_weights(gate, state.read_weights,
                                           least_used(state.usage, self.heads))
        memory = write_memory(state.memory, write_weights, keys, state.usage)
        read_weights, read_vectors = cosine_read(memory, keys)
        usage = update_usage(state.usage, read_weights, write_weights, self.gamma)
        logits = self.output(torch.cat([h, read_vectors.flatten(1)], 1))
        return logits, MANNState(h, c, memory, usage, read_weights, read_vectors), \
            write_weights, gate

    def forward(self, inputs: SequenceEpisode | Tensor,  # type: ignore[override]
                trace: bool = False) -> Tensor | tuple[Tensor, MemoryTrace]:
        """``inputs: [batch, time, input_features]`` (or a :class:`SequenceEpisode`) ->
        ``logits: [batch, time, num_outputs]``.

        With ``trace=True``, also the per-step read and write weights, usage and write gates
        (a :class:`MemoryTrace`).
        """
        inputs = self._inputs(inputs)
        state = self.initial_state(inputs.shape[0], inputs)
        logits, reads, writes, usages, gates = [], [], [], [], []
        for t in range(inputs.shape[1]):
            out, state, write_weights, gate = self.step(inputs[:, t], state)
            logits.append(out)
            if trace:
                reads.append(state.read_weights)
                writes.append(write_weights)
                usages.append(state.usage)
                gates.append(gate)
        stacked = torch.stack(logits, 1)
        if not trace:
            return stacked
        return stacked, MemoryTrace(
            read_weights=torch.stack(reads, 1).detach(),
            write_weights=torch.stack(writes, 1).detach(),
            usage=torch.stack(usages, 1).detach(),
            write_gate=torch.stack(gates, 1).detach(),
            memory=state.memory.detach(),
        )


class LSTMBaseline(SequenceMethod):
    """The same LSTM controller with no external memory: ``logits_t = W_o h_t + b_o``.

    Args:
        input_features, num_outputs, controller_size: as for :class:`MANN`.
    """

    name = "lstm"
    paper_figures = MappingProxyType({"sequences": replace(
        SANTORO_2016_TABLE_1, figures=SANTORO_2016_TABLE_1.table["lstm"])})
    cli_options = (*SequenceMethod.cli_options, *(
        option for option in MANN.cli_options if option.flags == ("--controller-size",)))

    def __init__(self, input_features: int = 405, num_outputs: int = 5,
                 controller_size: int = 200) -> None:
        super().__init__()
        self.hparams = dict(input_features=input_features, num_outputs=num_outputs,
                            controller_size=controller_size)
        self.controller = nn.LSTM(input_features, controller_size, batch_first=True)
        self.output = nn.Linear(controller_size, num_outputs)

    def forward(self, inputs: SequenceEpisode | Tensor) -> Tensor:  # type: ignore[override]
        """``inputs: [batch, time, input_features]`` (or a :class:`SequenceEpisode`) ->
        ``logits: [batch, time, num_outputs]``."""
        hidden, _ = self.controller(self._inputs(inputs))
        return self.output(hidden)
