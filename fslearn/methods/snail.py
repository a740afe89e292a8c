r"""SNAIL, a simple neural attentive meta-learner (Mishra, Rohaninejad, Chen and Abbeel, ICLR 2018).

SNAIL reads a few-shot task as a *sequence*. Each support image is one step, its embedding
beside its one-hot label; the query comes last, its label all zeros (unknown),

.. math:: x_t = \big[\, \phi(x_t),\ \mathrm{onehot}(y_t) \,\big], \quad t = 1..NK, \qquad
          x_{NK+1} = \big[\, \phi(\hat x),\ \mathbf 0 \,\big] ,

and a *causal* sequence model, whose output at step :math:`t` depends on steps
:math:`1..t` only, predicts the query's label from the last step's output. Two kinds of layer
alternate, each appending its output to its input (dense connections: a step keeps every
feature it had):

* a **dense block** is a causal convolution of kernel 2 and dilation :math:`R` (step
  :math:`t` reads steps :math:`t` and :math:`t - R`) with a gated activation,
  :math:`\tanh(W_f * x) \odot \sigma(W_g * x)`, of :math:`D` filters; a **TC block** stacks
  :math:`\lceil \log_2 T \rceil` of them with dilations :math:`2, 4, 8, \dots` (the paper's
  pseudocode: :math:`2^i` for :math:`i = 1..\lceil \log_2 T \rceil`), so that the stack looks
  back over the whole sequence;
* an **attention block** is causal soft attention: keys and queries are affine maps of the
  steps of size :math:`K`, values of size :math:`V`, and step :math:`t` reads
  :math:`\sum_{s \le t} \operatorname{softmax}_s(q_t \cdot k_s / \sqrt K)\, v_s`, the future
  masked out (a step sees itself).

The Omniglot model (the paper's appendix, as the reproductions build it) is: the embedding,
then AttentionBlock(64, 32), TCBlock(T, 128), AttentionBlock(256, 128), TCBlock(T, 128),
AttentionBlock(512, 256), and a 1x1 convolution (a linear map of each step) to :math:`N`
logits.

Conventions, checked against the paper's pseudocode as written out in TensorFlow in
``google-research/tensor2robot`` (``layers/snail.py``) and the reproduction
``eambutu/snail-pytorch`` (whose own figures are 98.31 / 99.26 / 93.75 / 97.88):

* **Embedding**: four blocks of a 3x3 convolution of 64 filters, batch norm, ReLU and 2x2
  max-pooling (:class:`~fslearn.backbones.Conv4`): a 28x28 image becomes 64 numbers.
* **Dilations**: :math:`2^i`, :math:`i = 1..\lceil \log_2 T \rceil`, as the paper's pseudocode
  and tensor2robot have them (some reproductions start at 1). With every dilation even, the
  convolutions alone reach back only an even number of steps (offsets up to
  :math:`2^{n+1} - 2` for :math:`n` dense blocks); the attention blocks reach every earlier step.
  A dense block's two convolutions (:math:`W_f`, :math:`W_g`) are computed as one convolution
  of :math:`2D` filters, split in two: the same maps.
* **Causal softmax**: step :math:`t` attends to steps :math:`1..t`, itself included
  (tensor2robot's ``CausallyMaskedSoftmax``); scaled by :math:`1/\sqrt K`; computed by
  :func:`torch.nn.functional.scaled_dot_product_attention` with ``is_causal=True``.
* **The prediction** is read at the last step, the query's (the paper reports the accuracy of
  the :math:`(NK+1)`-th step); training is cross-entropy on it alone (as ``eambutu``'s
  training does). The query's label features are zeros (``eambutu``'s too).
* **One model per N, any K**: :math:`N` is fixed when the model is built (its label features
  and logits: :attr:`SNAIL.fixed_way`); the convolutions and attention run on sequences of any
  length, so one model scores every K. The depth of the TC blocks is set by the longest
  sequence it trains on, :math:`T = N \cdot \mathrm{max\_shot} + 1` (``--max-shot``, 5: the
  paper's K from 1 to 5); longer sequences still run, their convolutions then looking back
  less far than the sequence (the attention still sees all of it).
* **Training batches**: every step draws its K uniformly from ``1..max_shot`` (the same K for
  the step's tasks, which are then stacked as one episode) and shuffles each task's support
  order (:class:`AnyShotSampler`; ``eambutu``'s sampler shuffles the support of every
  sequence too). ``--shot`` is
  the shot of validation (and of ``evaluate``), not of training.
* **Support order in** :meth:`SNAIL.scores`: before the sequence is built, the support set is
  put in one fixed pseudo-random order (:func:`support_order`: the same for every episode of a
  size). Evaluation episodes come class-major (every image of class 0, then class 1...), an
  order a model trained on shuffled supports would rarely see; the fixed permutation makes
  them look like the shuffled training ones, while the training sampler's uniformly random
  orders stay uniformly random. SNAIL's scores depend on the order of the support set.
* **One sequence per query**: every query of an episode gets its own sequence, sharing the
  task's support steps (each image is embedded once), so a query's scores do not depend on
  the other queries (in evaluation; in training the embedding's batch norm normalises over the
  whole batch, as in every method of the package). Causality makes the support steps' outputs
  the same in every sequence of a task, so :meth:`SNAILNetwork.query_logits` computes them once
  and then only each query's last step (every layer's ``extend``): the same logits as the
  whole sequences through :meth:`SNAILNetwork.forward`, for about :math:`T + q` steps of work
  per task instead of :math:`q \cdot T`.

Not reproduced: the paper's mini-ImageNet embedding; its optimiser settings beyond Adam (the
training settings here are :attr:`SNAIL.training_defaults`, fslearn's choices).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fslearn.backbones import Conv4
from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.methods.base import MetricMethod, check_query_labels, check_support
from fslearn.methods.options import Option
from fslearn.results import PaperFigures
from fslearn.training_config import TrainingConfig

__all__ = [
    "SNAIL",
    "AnyShotSampler",
    "AttentionBlock",
    "CausalConv1d",
    "DenseBlock",
    "SNAILNetwork",
    "TCBlock",
    "dense_dilations",
    "query_sequences",
    "sequence_steps",
    "support_order",
]

#: the Omniglot model's attention blocks (key size, value size), in order
ATTENTION_SIZES = ((64, 32), (256, 128), (512, 256))
#: filters of every dense block of the Omniglot model's TC blocks
TC_FILTERS = 128
#: seed of the fixed order the support set enters a sequence in (:func:`support_order`)
SUPPORT_ORDER_SEED = 2018


def dense_dilations(steps: int) -> list[int]:
    """The dilations of a TC block for sequences of ``steps`` steps: ``2**i`` for ``i`` in
    ``1..ceil(log2(steps))`` (the paper's pseudocode); none for a single step."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"a TC block needs a sequence length of at least 1 step, got {steps!r}")
    return [2**i for i in range(1, math.ceil(math.log2(steps)) + 1)]


class CausalConv1d(nn.Module):
    """A causal dilated convolution along the steps: ``x`` ``[batch, T, C]`` -> ``[batch, T,
    out]``, step ``t`` reading steps ``t - (kernel_size - 1) * dilation, ..., t`` (zeros
    before the first step)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int,
                 kernel_size: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: Tensor) -> Tensor:
        # padding on the left only: no step reads a later one
        out = self.conv(F.pad(x.transpose(1, 2), (self.left, 0)))
        return out.transpose(1, 2)

    def last(self, history: Tensor, current: Tensor) -> Tensor:
        """The output at the step after ``history`` ``[batch, n, C]`` for each of the
        alternatives ``current`` ``[batch, q, C]``: ``[batch, q, out]``, equal to
        ``forward(cat([history, current_j]))[:, -1]`` for every ``j``."""
        n, dilation = history.shape[1], self.conv.dilation[0]
        weight, bias = self.conv.weight, self.conv.bias  # weight [out, C, kernel]
        kernel = weight.shape[-1]
        out = current @ weight[:, :, -1].T + bias
        for tap in range(kernel - 1):  # tap k reads step n - (kernel - 1 - k) * dilation
            back = (kernel - 1 - tap) * dilation
            if back <= n:  # earlier steps are the zero padding
                out = out + (history[:, n - back] @ weight[:, :, tap].T).unsqueeze(1)
        return out


class DenseBlock(nn.Module):
    """``x`` ``[batch, T, C]`` -> ``[batch, T, C + filters]``: ``x`` and
    ``tanh(W_f * x) * sigmoid(W_g * x)``, two causal convolutions of kernel 2 and ``dilation``
    (computed as one of ``2 * filters`` outputs)."""

    def __init__(self, in_channels: int, dilation: int, filters: int) -> None:
        super().__init__()
        self.conv = CausalConv1d(in_channels, 2 * filters, dilation)
        self.out_channels = in_channels + filters

    def forward(self, x: Tensor) -> Tensor:
        f, g = self.conv(x).chunk(2, dim=-1)
        return torch.cat([x, torch.tanh(f) * torch.sigmoid(g)], dim=-1)

    def extend(self, history: Tensor, current: Tensor) -> tuple[Tensor, Tensor]:
        """``(forward(history), the output at the next step for each of current)``; shapes
        ``[batch, n, C]``, ``[batch, q, C]`` -> ``[batch, n, C + D]``, ``[batch, q, C + D]``."""
        f, g = self.conv.last(history, current).chunk(2, dim=-1)
        return self(history), torch.cat([current, torch.tanh(f) * torch.sigmoid(g)], dim=-1)


class TCBlock(nn.Module):
    """Dense blocks of dilations :func:`dense_dilations` ``(steps)``: ``[batch, T, C]`` ->
    ``[batch, T, C + filters * ceil(log2(steps))]``.

    Args:
        in_channels: features ``C`` of a step.
        steps: the longest sequence it is built for (its depth).
        filters: ``D`` of every dense block.
    """

    def __init__(self, in_channels: int, steps: int, filters: int) -> None:
        super().__init__()
        blocks = []
        for dilation in dense_dilations(steps):
            blocks.append(DenseBlock(in_channels, dilation, filters))
            in_channels = blocks[-1].out_channels
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def extend(self, history: Tensor, current: Tensor) -> tuple[Tensor, Tensor]:
        """``(forward(history), the output at the next step for each of current)`` (see
        :meth:`DenseBlock.extend`)."""
        for block in self.blocks:
            history, current = block.extend(history, current)
        return history, current


class AttentionBlock(nn.Module):
    """Causal soft attention: ``x`` ``[batch, T, C]`` -> ``[batch, T, C + value_size]``, ``x``
    and each step's read ``sum_{s <= t} softmax_s(q_t . k_s / sqrt(key_size)) v_s``, with
    ``q``, ``k`` (``key_size``) and ``v`` (``value_size``) affine maps of the steps."""

    def __init__(self, in_channels: int, key_size: int, value_size: int) -> None:
        super().__init__()
        self.query = nn.Linear(in_channels, key_size)
        self.key = nn.Linear(in_channels, key_size)
        self.value = nn.Linear(in_channels, value_size)
        self.out_channels = in_channels + value_size

    def forward(self, x: Tensor) -> Tensor:
        # is_causal masks s > t (a step sees itself); the default scale is 1/sqrt(key_size)
        read = F.scaled_dot_product_attention(self.query(x), self.key(x), self.value(x),
                                              is_causal=True)
        return torch.cat([x, read], dim=-1)

    def weights(self, x: Tensor) -> Tensor:
        """The attention weights ``[batch, T, T]`` of steps ``x`` ``[batch, T, C]``: row ``t``
        is ``softmax_s(q_t . k_s / sqrt(key_size))`` over ``s <= t`` and zero beyond, so that
        step ``t``'s read is ``weights(x)[:, t] @ value(x)``."""
        logits = self.query(x) @ self.key(x).transpose(1, 2) / math.sqrt(self.query.out_features)
        future = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).triu(1)
        return logits.masked_fill(future, -math.inf).softmax(dim=-1)

    def extend(self, history: Tensor, current: Tensor) -> tuple[Tensor, Tensor]:
        """``(forward(history), the output at the next step for each of current)``: each of
        ``current`` ``[batch, q, C]`` attends to the ``n`` steps of ``history`` ``[batch, n,
        C]`` and to itself, not to the other ``q - 1``."""
        keys, values = self.key(history), self.value(history)  # [batch, n, K], [batch, n, V]
        read = F.scaled_dot_product_attention(self.query(history), keys, values, is_causal=True)
        query = self.query(current)  # [batch, q, K]
        logits = torch.cat([query @ keys.transpose(1, 2),
                            (query * self.key(current)).sum(-1, keepdim=True)], dim=-1)
        weights = (logits / math.sqrt(query.shape[-1])).softmax(dim=-1)  # [batch, q, n + 1]
        current_read = weights[..., :-1] @ values + weights[..., -1:] * self.value(current)
        return (torch.cat([history, read], dim=-1),
                torch.cat([current, current_read], dim=-1))


class SNAILNetwork(nn.Module):
    """The Omniglot model's sequence part: steps ``[batch, T, F]`` -> logits ``[batch, T,
    n_way]`` at every step (step ``t``'s from steps ``1..t`` only).

    Args:
        in_features: ``F`` of a step (the embedding's and the label's).
        n_way: logits per step.
        steps: the longest sequence it is built for (the TC blocks' depth).
    """

    def __init__(self, in_features: int, n_way: int, steps: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_features
        for index, (key_size, value_size) in enumerate(ATTENTION_SIZES):
            layers.append(AttentionBlock(channels, key_size, value_size))
            channels = layers[-1].out_channels
            if index < len(ATTENTION_SIZES) - 1:
                layers.append(TCBlock(channels, steps, TC_FILTERS))
                channels = layers[-1].out_channels
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(channels, n_way)  # the paper's 1x1 convolution

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.out(x)

    def query_logits(self, support: Tensor, queries: Tensor) -> Tensor:
        """The logits of the last step of each sequence ``[support, query_j]``, computing the
        support steps once: ``support`` ``[batch, n, F]`` and ``queries`` ``[batch, q, F]`` ->
        ``[batch, q, n_way]``, equal to ``forward(cat([support, queries[:, j:j+1]], 1))[:,
        -1]`` for every ``j`` (causality: the support steps' outputs do not depend on the
        query, so every query's sequence shares them)."""
        for layer in self.layers:
            support, queries = layer.extend(support, queries)
        return self.out(queries)


def support_order(n_support: int, device: torch.device | str = "cpu") -> Tensor:
    """The fixed pseudo-random order ``[n_support]`` in which the support set enters every
    sequence of that size (module docstring): a permutation of ``0..n_support-1``."""
    generator = torch.Generator().manual_seed(SUPPORT_ORDER_SEED + n_support)
    return torch.randperm(n_support, generator=generator).to(device)


def sequence_steps(support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int
                   ) -> tuple[Tensor, Tensor]:
    """The steps of the sequences: ``(support [tasks, n, D + N], queries [tasks, q, D + N])``,
    each support embedding beside its one-hot label, each query's beside zeros (shapes as in
    :func:`query_sequences`)."""
    labels = F.one_hot(support_y, n_way).to(support_z.dtype)
    unknown = query_z.new_zeros(*query_z.shape[:2], n_way)
    return torch.cat([support_z, labels], dim=-1), torch.cat([query_z, unknown], dim=-1)


def query_sequences(support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int
                    ) -> Tensor:
    """One sequence per query: the support steps in the given order, the query last.

    Args:
        support_z: ``[tasks, n, D]`` support embeddings.
        support_y: ``[tasks, n]`` labels in ``0..n_way-1``.
        query_z: ``[tasks, q, D]`` query embeddings.
        n_way: number of classes ``N``.

    Returns:
        ``[tasks * q, n + 1, D + N]``: sequence ``t * q + j`` is query ``j`` of task ``t``,
        whose last step holds the query's embedding and a label of zeros.
    """
    tasks, n, _ = support_z.shape
    q = query_z.shape[1]
    support, query = sequence_steps(support_z, support_y, query_z, n_way)
    support = support.unsqueeze(1).expand(tasks, q, n, support.shape[-1])
    return torch.cat([support, query.unsqueeze(2)], dim=2).flatten(0, 1)


class AnyShotSampler:
    """Training episodes of ``n_way`` classes whose shot is drawn for every step uniformly from
    ``1..max_shot``, each task's support set in a random order.

    Batch ``index`` is a pure function of ``(seed, index)``: its shot and support orders come
    from a generator of ``(seed, index)`` kept apart from the episode sampler's, and its images
    are those of episode ``index`` of an :class:`~fslearn.data.episodes.EpisodeSampler` of that
    shot and ``seed``.

    Args:
        dataset: the training classes.
        n_way: classes per task.
        max_shot: the largest shot drawn.
        n_query: queries per class (each one sequence).
        tasks: tasks per step (all of the step's shot).
        seed: the run's seed.
    """

    #: keeps this sampler's draws (shot, orders) apart from the episode sampler's
    STREAM = 24

    def __init__(self, dataset: FewShotDataset, n_way: int, max_shot: int, n_query: int,
                 tasks: int = 1, seed: int = 0) -> None:
        if not isinstance(max_shot, int) or isinstance(max_shot, bool) or max_shot < 1:
            raise ValueError(f"max_shot must be a positive integer (--max-shot), got "
                             f"{max_shot!r}")
        self.samplers = [
            EpisodeSampler(dataset, n_way, k_shot, n_query, tasks=tasks, seed=seed,
                           option_names=("n_way (--way)", "max_shot (--max-shot)",
                                         "n_query (--query)"))
            for k_shot in range(1, max_shot + 1)]
        self.n_way, self.max_shot, self.n_query = n_way, max_shot, n_query
        self.tasks, self.seed = tasks, seed

    def __repr__(self) -> str:
        return (f"AnyShotSampler(n_way={self.n_way}, max_shot={self.max_shot}, "
                f"n_query={self.n_query}, tasks={self.tasks}, seed={self.seed})")

    def episode(self, index: int) -> Episode:
        """Batch ``index``: ``tasks`` tasks of one shot, ``support_x`` ``[tasks, n_way*k,
        C, H, W]`` in a random order per task (``support_y`` permuted alike)."""
        if index < 0:
            raise ValueError(f"index must be non-negative, got {index}")
        rng = np.random.default_rng([self.seed, index, self.STREAM])
        k_shot = int(rng.integers(1, self.max_shot + 1))
        episode = self.samplers[k_shot - 1].episode(index)
        n_support = self.n_way * k_shot
        order = torch.from_numpy(np.stack([rng.permutation(n_support)
                                           for _ in range(self.tasks)]))
        rows = torch.arange(self.tasks).unsqueeze(1)
        return Episode(support_x=episode.support_x[rows, order],
                       support_y=episode.support_y[rows, order],
                       query_x=episode.query_x, query_y=episode.query_y,
                       classes=episode.classes, n_way=episode.n_way)


class SNAIL(MetricMethod):
    """Classify each query by a causal sequence model over the support set and the query
    (see the module docstring).

    Args:
        in_channels: image channels.
        image_size: side of the square images (28: a 64-number embedding).
        n_way: classes per episode, fixed when the model is built (``fslearn train`` sets it
            from ``--way``).
        max_shot: the largest shot it trains on; the TC blocks are built for sequences of
            ``n_way * max_shot + 1`` steps.

    :meth:`forward` returns logits ``[tasks, n_way*n_query, n_way]``, those of the last step
    of each query's sequence.
    """

    name = "snail"
    #: Mishra et al. (2018), Table 1 (Omniglot); one model per N, trained on K from 1 to 5
    paper_figures = MappingProxyType({"classification": PaperFigures(
        "Mishra, Rohaninejad, Chen and Abbeel (2018), A Simple Neural Attentive "
        "Meta-Learner, ICLR, Table 1 (Omniglot; one model per N, K from 1 to 5 in training)",
        {(5, 1): 0.9907, (5, 5): 0.9978, (20, 1): 0.9764, (20, 5): 0.9936})})
    cli_options = (
        Option(("--max-shot",), "the largest shot of training: every step draws its shot "
               "uniformly from 1 to this (--shot is the shot of validation)", type=int,
               metavar="K", positive=True),
    )
    # one query per class and task (each its own sequence); fslearn's choices (the paper
    # gives Adam and no batch size for Omniglot in our notes)
    training_defaults = MappingProxyType({"n_way": 5, "k_shot": 1, "n_query": 1,
                                          "batch_size": 16})

    def __init__(self, in_channels: int = 1, image_size: int = 28, n_way: int = 5,
                 max_shot: int = 5) -> None:
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 16:
            raise ValueError(f"{self.name} needs images of at least 16x16 pixels (its embedding "
                             f"halves them four times); got image_size={image_size!r}. Use a "
                             f"larger image size.")
        for option, value, least in (("n_way (--way)", n_way, 2),
                                     ("max_shot (--max-shot)", max_shot, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{option} must be an integer of at least {least}, got "
                                 f"{value!r}")
        super().__init__(Conv4(in_channels))
        self.embedding_size = 64 * (image_size // 16) ** 2
        self.network = SNAILNetwork(self.embedding_size + n_way, n_way, n_way * max_shot + 1)
        self.n_way, self.max_shot = n_way, max_shot
        self.hparams = {"in_channels": in_channels, "image_size": image_size, "n_way": n_way,
                        "max_shot": max_shot}

    @property
    def fixed_way(self) -> int:
        """The model's ``n_way``: its label features and logits have that many entries."""
        return self.n_way

    @classmethod
    def describe_training(cls, config: TrainingConfig, options: Mapping[str, Any]
                          ) -> tuple[str, str]:
        """``5w1-5s``, ``5-way 1- to 5-shot (the shot drawn every step)``."""
        max_shot = options["max_shot"]
        return (f"{config.n_way}w1-{max_shot}s",
                f"{config.n_way}-way 1- to {max_shot}-shot (the shot drawn every step)")

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        """Logits ``[tasks, n_query_total, n_way]``: the last step's of each query's sequence,
        the support set in the order :func:`support_order`."""
        check_support(self.name, support_z, support_y, query_z, n_way)
        if n_way != self.n_way:
            raise ValueError(f"{self.name} was built for {self.n_way}-way episodes (its label "
                             f"features and logits have {self.n_way} entries), got n_way="
                             f"{n_way}: train a model for {n_way}-way episodes (--way {n_way}).")
        if support_z.shape[-1] != self.embedding_size:
            raise ValueError(f"{self.name} expects embeddings of {self.embedding_size} numbers, "
                             f"got {support_z.shape[-1]}: give it images of the size it was "
                             f"built for.")
        order = support_order(support_z.shape[1], support_z.device)
        support, queries = sequence_steps(support_z[:, order], support_y[:, order], query_z,
                                          n_way)
        return self.network.query_logits(support, queries)

    @torch.no_grad()
    def query_attention(self, episode: Episode) -> list[Tensor]:
        """Where each query looks: for every attention block in order, the weights ``[tasks,
        q, n + 1]`` of each query's step on the ``n`` support images, in the episode's order
        (``support_x``'s, not the sequence's), and last on itself. Each row sums to 1."""
        z = self.embed(torch.cat([episode.support_x.flatten(0, 1),
                                  episode.query_x.flatten(0, 1)]))
        tasks, n = episode.support_y.shape
        support_z, query_z = z[: tasks * n].view(tasks, n, -1), z[tasks * n :].view(tasks, -1,
                                                                                  z.shape[-1])
        order = support_order(n, z.device)
        x = query_sequences(support_z[:, order], episode.support_y[:, order], query_z,
                            episode.n_way)
        found = []
        for layer in self.network.layers:
            if isinstance(layer, AttentionBlock):
                last = layer.weights(x)[:, -1]  # [tasks * q, n + 1], support in sequence order
                weights = torch.empty_like(last)
                weights[:, order], weights[:, -1] = last[:, :n], last[:, -1]
                found.append(weights.view(tasks, query_z.shape[1], n + 1))
            x = layer(x)
        return found

    def loss(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """Cross-entropy of the last steps' logits (the queries'); and the logits."""
        check_query_labels(self.name, episode.query_y, episode.n_way)
        return super().loss(episode)

    def training_sampler(self, data: Any, config: TrainingConfig) -> AnyShotSampler:
        """Episodes of ``config.n_way`` classes and a shot drawn from ``1..max_shot`` every
        step (:class:`AnyShotSampler`), ``config.batch_size`` tasks of them."""
        if not isinstance(data, FewShotDataset):
            raise ValueError(f"{self.name} learns from image episodes, not from "
                             f"{type(data).__name__}: train it on an image dataset.")
        if config.n_way != self.n_way:
            raise ValueError(f"{self.name} was built for {self.n_way}-way episodes, but the "
                             f"training episodes are {config.n_way}-way: pass --way "
                             f"{self.n_way}.")
        return AnyShotSampler(data, config.n_way, self.max_shot, config.n_query,
                              tasks=config.batch_size or 1, seed=config.seed)
