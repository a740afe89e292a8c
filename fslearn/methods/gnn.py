r"""Graph neural networks for few-shot learning (Garcia and Bruna, ICLR 2018).

Each query is classified by a small graph: one node per support image and one for the query.
A node's features are its image's embedding concatenated with its label, one-hot for a support
image and uniform (:math:`1/N` everywhere) for the query, whose label is unknown,

.. math:: x^{(0)}_i = \big[\, \phi(x_i),\ h(y_i) \,\big] .

A graph-convolution block first *learns the edges*: a small network (an MLP on the absolute
difference of two nodes' features) scores every pair, and a softmax over each node's neighbours
(itself excluded) turns the scores into an adjacency matrix,

.. math:: A^{(k)}_{ij} = \operatorname{softmax}_{j \neq i}\,
          \psi^{(k)}\big(\lvert x^{(k)}_i - x^{(k)}_j \rvert\big) .

It then mixes each node with its neighbours: the node's own features and the
adjacency-weighted mean of its neighbours', side by side, through a linear layer and batch norm,

.. math:: x^{(k+1)}_i = \rho\Big(\operatorname{BN}\big(W^{(k)} \big[\, x^{(k)}_i,\
          \textstyle\sum_j A^{(k)}_{ij} x^{(k)}_j \,\big]\big)\Big) ,

and the new features are appended to the old ones (dense connections: a node keeps everything
it had). The last block outputs :math:`N` numbers per node; the query node's are its logits,
trained by cross-entropy. The graph is a function of the *set* of support images: permuting
them permutes the nodes and changes nothing else, so the query's logits do not depend on the
order of the support set.

Conventions of the authors' code (``vgsatorras/few-shot-gnn``: ``models/models.py``,
``models/gnn_iclr.py``, ``main.py``, ``data/generator.py``; the Omniglot model
``GNN_nl_omniglot``), kept here:

* **Embedding** (``EmbeddingOmniglot``): four 3x3 convolutions of 64 filters without bias, each
  followed by batch norm and a leaky ReLU of slope 0.1; the first two are padded and followed by
  2x2 max-pooling (before the ReLU), the last two are unpadded and not pooled (28 -> 14 -> 7 ->
  5 -> 3), then a fully connected layer (no bias) from the 64x3x3 map to 64 numbers, batch norm
  and a leaky ReLU of slope 0.01. (The paper describes four blocks of convolution, batch norm,
  max-pooling and leaky ReLU; the code, followed here, pools twice.)
* **Blocks**: three. The first two have an edge network on their input features
  :math:`F_k` (:math:`F_0 = 64 + N`, :math:`F_{k+1} = F_k + 48`) with hidden layers of
  :math:`2F_k, \lfloor 1.5F_k \rfloor, F_k, F_k` units (each a linear map on the pair's
  features, batch norm and a leaky ReLU of slope 0.01), then one output; their graph convolution
  makes 48 new features (batch norm, leaky ReLU 0.01). The last block's edge network has hidden
  layers :math:`2F_1, \lfloor 1.5F_1 \rfloor, F_1, F_1` on its :math:`F_2` inputs, with
  dropout 0.3 after the first; its graph convolution makes the :math:`N` logits, through batch
  norm and no activation.
* **Adjacency**: the softmax runs over each node's other nodes (the authors subtract 1e8 from
  the diagonal's scores); the graph convolution sees the identity and the learned adjacency,
  :math:`[x_i, \sum_j A_{ij} x_j]` (their operator ``J2``).
* **Episodes**: one query per graph, node 0 (the authors' batches of tasks have one query each;
  here every query of an episode gets its own graph, sharing the episode's support set);
  ``n_way`` is fixed when the model is built (its label features and its logits), one model per
  setting; Adam at 1e-3, halved every 10,000 steps; batches of 300 graphs for 5-way 1-shot
  (100,000 steps) and 100 for 5-way 5-shot and 20-way 1-shot (80,000 steps); rotations as new
  classes; 28x28 images. Built so, a 5-way model has 276,930 parameters in its graph network
  and 148,672 in its embedding (the paper speaks of about 300K).

Departures: the query's label is uniform, as the paper says; the authors' code feeds zeros
(``query_label="zeros"`` does too). Images are the package's (ink 1, background 0, in
``[0, 1]``) rather than the authors' (``[-1, 1]``, background 1); the batch norm after every
convolution absorbs most of that difference. The split and validation are the package's (the
Vinyals split with validation classes), while the authors split the characters at random and
report the test accuracy of the last model. Evaluation uses the batch-norm running averages, as
theirs does (``eval()``); it scores the graphs of a few queries at a time
(:data:`GRAPH_PAIRS_PER_CHUNK`), which gives the same scores in bounded memory.
"""

from __future__ import annotations

import itertools
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fslearn.data.episodes import Episode
from fslearn.methods.base import MetricMethod, check_query_labels, check_support
from fslearn.methods.options import Option
from fslearn.results import PaperFigures

__all__ = [
    "GRAPH_PAIRS_PER_CHUNK",
    "QUERY_LABELS",
    "EdgeNetwork",
    "GNNEmbedding",
    "GraphConvolution",
    "GraphNetwork",
    "GraphNeuralNetwork",
    "query_graphs",
]

#: in evaluation mode, graphs are scored a few at a time so that the node pairs of one chunk
#: (graphs x nodes x nodes) stay below this (bounds the memory of 20-way evaluations)
GRAPH_PAIRS_PER_CHUNK = 60_000
#: the query node's label features: uniform (the paper) or zeros (the authors' code)
QUERY_LABELS = ("uniform", "zeros")
#: the authors' sizes: embedding, new features per block, blocks
EMBEDDING_SIZE, NEW_FEATURES, BLOCKS = 64, 48, 3


class GNNEmbedding(nn.Module):
    """The authors' Omniglot embedding: ``[batch, C, H, W]`` -> ``[batch, 64]`` (see the module
    docstring).

    Args:
        in_channels: image channels.
        image_size: side of the square images (28: the 3x3 map the fully connected layer
            reads); at least 20 pixels.
        channels: filters of the convolutions (64).
        size: numbers of the embedding (64).
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, channels: int = 64,
                 size: int = EMBEDDING_SIZE) -> None:
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.Conv2d(channels, channels, 3, bias=False),
            nn.Conv2d(channels, channels, 3, bias=False),
        ])
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(4))
        self.side = self.output_side(image_size)
        self.fc = nn.Linear(channels * self.side * self.side, size, bias=False)
        self.fc_norm = nn.BatchNorm1d(size)
        self.in_channels, self.image_size = in_channels, image_size

    @staticmethod
    def output_side(image_size: int) -> int:
        """Side of the last feature map: two 2x2 pools, then two unpadded 3x3 convolutions."""
        return image_size // 2 // 2 - 4

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.in_channels, self.image_size,
                                                  self.image_size):
            raise ValueError(
                f"GNNEmbedding was built for images [batch, {self.in_channels}, "
                f"{self.image_size}, {self.image_size}] (its fully connected layer has a fixed "
                f"input size), got shape {tuple(x.shape)}: give it {self.image_size}x"
                f"{self.image_size} images.")
        for index, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            x = norm(conv(x))
            if index < 2:
                x = F.max_pool2d(x, 2)
            x = F.leaky_relu(x, 0.1)
        return F.leaky_relu(self.fc_norm(self.fc(x.flatten(1))))


def _mlp_layer(in_features: int, out_features: int) -> nn.ModuleList:
    return nn.ModuleList([nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features)])


class EdgeNetwork(nn.Module):
    r"""The learned adjacency of a block: ``x`` ``[graphs, nodes, F]`` -> ``A`` ``[graphs,
    nodes, nodes]``, a softmax over each node's other nodes of :math:`\psi(\lvert x_i - x_j
    \rvert)` (rows sum to 1, zero diagonal).

    :math:`\psi` is four layers of a linear map, batch norm (over all pairs of all graphs) and a
    leaky ReLU (0.01), of ``2h, 1.5h, h, h`` units for ``hidden = h``, then a linear map to one
    score: the authors' 1x1 convolutions over the pairs, written as linear maps.

    Args:
        in_features: features ``F`` of a node.
        hidden: ``h``.
        dropout: after the first layer (the authors': 0.3 in the last block, else 0).
    """

    def __init__(self, in_features: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        sizes = [in_features, 2 * hidden, int(1.5 * hidden), hidden, hidden]
        self.layers = nn.ModuleList(_mlp_layer(a, b) for a, b in itertools.pairwise(sizes))
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.score = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        graphs, nodes, _ = x.shape
        pairs = (x.unsqueeze(2) - x.unsqueeze(1)).abs()  # [graphs, i, j, F]
        h = pairs.flatten(0, 2)
        for index, (linear, norm) in enumerate(self.layers):
            h = F.leaky_relu(norm(linear(h)))
            if index == 0 and self.dropout is not None:
                h = self.dropout(h)
        scores = self.score(h).view(graphs, nodes, nodes)
        itself = torch.eye(nodes, dtype=torch.bool, device=x.device)
        return scores.masked_fill(itself, float("-inf")).softmax(dim=-1)


class GraphConvolution(nn.Module):
    """``x`` ``[graphs, nodes, F]`` and ``A`` ``[graphs, nodes, nodes]`` -> ``[graphs, nodes,
    out]``: a linear map of ``[x_i, sum_j A_ij x_j]``, then batch norm (over all nodes of all
    graphs) where ``norm``.
    """

    def __init__(self, in_features: int, out_features: int, norm: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * in_features, out_features)
        self.norm = nn.BatchNorm1d(out_features) if norm else None

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        out = self.linear(torch.cat([x, adjacency @ x], dim=-1))
        if self.norm is not None:
            out = self.norm(out.flatten(0, 1)).view(out.shape)
        return out


class GraphNetwork(nn.Module):
    """The authors' three blocks (``GNN_nl_omniglot``): node features ``[graphs, nodes, 64 + N]``
    -> logits ``[graphs, nodes, N]`` of every node (the query's are node 0's).

    Args:
        in_features: features of a node (the embedding's and the label's).
        n_way: outputs of the last block.
    """

    def __init__(self, in_features: int, n_way: int) -> None:
        super().__init__()
        sizes = [in_features + NEW_FEATURES * k for k in range(BLOCKS)]
        self.edges = nn.ModuleList(EdgeNetwork(size, size) for size in sizes[:-1])
        self.convs = nn.ModuleList(GraphConvolution(size, NEW_FEATURES) for size in sizes[:-1])
        self.last_edges = EdgeNetwork(sizes[-1], sizes[-2], dropout=0.3)
        self.last_conv = GraphConvolution(sizes[-1], n_way)

    def forward(self, x: Tensor) -> Tensor:
        for edges, conv in zip(self.edges, self.convs, strict=True):
            x = torch.cat([x, F.leaky_relu(conv(x, edges(x)))], dim=-1)  # dense connections
        return self.last_conv(x, self.last_edges(x))

    def adjacencies(self, x: Tensor) -> list[Tensor]:
        """The learned adjacency ``[graphs, nodes, nodes]`` of each block, in order, for node
        features ``x`` (the same computation as :meth:`forward`)."""
        found = []
        for edges, conv in zip(self.edges, self.convs, strict=True):
            found.append(edges(x))
            x = torch.cat([x, F.leaky_relu(conv(x, found[-1]))], dim=-1)
        return [*found, self.last_edges(x)]


def query_graphs(support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int,
                 query_label: str = "uniform") -> Tensor:
    """The node features of one graph per query: the query first, then the support set.

    Args:
        support_z: ``[tasks, n, D]`` support embeddings.
        support_y: ``[tasks, n]`` labels in ``0..n_way-1``.
        query_z: ``[tasks, q, D]`` query embeddings.
        n_way: number of classes ``N``.
        query_label: the query node's label features, ``"uniform"`` (``1/N``) or ``"zeros"``.

    Returns:
        ``[tasks * q, 1 + n, D + N]``: graph ``t * q + j`` is query ``j`` of task ``t``.
    """
    if query_label not in QUERY_LABELS:
        raise ValueError(f"query_label must be one of {', '.join(QUERY_LABELS)}, got "
                         f"{query_label!r}")
    tasks, n, _ = support_z.shape
    q = query_z.shape[1]
    labels = F.one_hot(support_y, n_way).to(support_z.dtype)
    support = torch.cat([support_z, labels], dim=-1)  # [tasks, n, D+N]
    fill = 1.0 / n_way if query_label == "uniform" else 0.0
    query = torch.cat([query_z, query_z.new_full((tasks, q, n_way), fill)], dim=-1)
    support = support.unsqueeze(1).expand(tasks, q, n, support.shape[-1])
    return torch.cat([query.unsqueeze(2), support], dim=2).flatten(0, 1)


class GraphNeuralNetwork(MetricMethod):
    """Classify each query by a graph neural network over it and the support set (see the module
    docstring).

    Args:
        in_channels: image channels.
        image_size: side of the square images (28; sizes the embedding's last layer).
        n_way: classes per episode, fixed when the model is built (``fslearn train`` sets it
            from ``--way``).
        query_label: the query node's label features, ``"uniform"`` (the paper) or ``"zeros"``
            (the authors' code).

    :meth:`forward` returns logits ``[tasks, n_query_total, n_way]``.
    """

    name = "gnn"
    #: Garcia and Bruna (2018), Table 1; one model trained per setting
    paper_figures = MappingProxyType({"classification": PaperFigures(
        "Garcia and Bruna (2018), Few-Shot Learning with Graph Neural Networks, ICLR, Table 1 "
        "(Omniglot; one model per setting)",
        {(5, 1): 0.992, (5, 5): 0.997, (20, 1): 0.974, (20, 5): 0.990})})
    cli_options = (
        Option(("--query-label",), "the query node's label features: uniform, 1/N for every "
               "class (the paper), or zeros (the authors' code)", choices=QUERY_LABELS),
    )
    # the authors' 5-way 1-shot setting: 300 graphs per step (60 tasks of 5 queries, one per
    # class); their learning rate schedule (1e-3 halved every 10,000 steps) is given on the
    # command line, which reads only these fields from here
    training_defaults = MappingProxyType({"n_way": 5, "k_shot": 1, "n_query": 1,
                                          "batch_size": 60})

    def __init__(self, in_channels: int = 1, image_size: int = 28, n_way: int = 5,
                 query_label: str = "uniform") -> None:
        if not isinstance(image_size, int) or GNNEmbedding.output_side(image_size) < 1:
            raise ValueError(f"{self.name} needs images of at least 20x20 pixels (its embedding "
                             f"halves them twice, then trims 4 pixels); got "
                             f"image_size={image_size!r}. Use a larger image size.")
        if not isinstance(n_way, int) or isinstance(n_way, bool) or n_way < 2:
            raise ValueError(f"n_way must be an integer of at least 2 (the classes of every "
                             f"episode the model scores), got {n_way!r}")
        if query_label not in QUERY_LABELS:
            raise ValueError(f"query_label must be one of {', '.join(QUERY_LABELS)}, got "
                             f"{query_label!r}")
        super().__init__(GNNEmbedding(in_channels, image_size))
        self.graph = GraphNetwork(EMBEDDING_SIZE + n_way, n_way)
        self.n_way, self.query_label = n_way, query_label
        self.hparams = {"in_channels": in_channels, "image_size": image_size, "n_way": n_way,
                        "query_label": query_label}

    @property
    def fixed_way(self) -> int:
        """The model's ``n_way``: its label features and logits have that many entries."""
        return self.n_way

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        """Logits ``[tasks, n_query_total, n_way]``: node 0's outputs of each query's graph."""
        check_support(self.name, support_z, support_y, query_z, n_way)
        if n_way != self.n_way:
            raise ValueError(f"{self.name} was built for {self.n_way}-way episodes (its label "
                             f"features and logits have {self.n_way} entries), got n_way="
                             f"{n_way}: train a model for {n_way}-way episodes (--way {n_way}).")
        if support_z.shape[-1] != EMBEDDING_SIZE:
            raise ValueError(f"{self.name} expects embeddings of {EMBEDDING_SIZE} numbers, got "
                             f"{support_z.shape[-1]}")
        tasks, q = query_z.shape[:2]
        nodes = 1 + support_z.shape[1]
        if self.training:  # one batch, so batch norm sees every graph of the episode
            graphs = query_graphs(support_z, support_y, query_z, n_way, self.query_label)
            return self.graph(graphs)[:, 0].view(tasks, q, n_way)
        # in evaluation (batch norm uses its running averages) a few queries at a time: the
        # same scores in bounded memory
        per_chunk = max(1, GRAPH_PAIRS_PER_CHUNK // (nodes * nodes))
        chunks = []
        for task in range(tasks):
            for start in range(0, q, per_chunk):
                graphs = query_graphs(support_z[task : task + 1], support_y[task : task + 1],
                                      query_z[task : task + 1, start : start + per_chunk], n_way,
                                      self.query_label)
                chunks.append(self.graph(graphs)[:, 0])
        return torch.cat(chunks).view(tasks, q, n_way)

    @torch.no_grad()
    def query_adjacency(self, episode: Episode) -> list[Tensor]:
        """Where each query node looks: for every block in order, its row of the learned
        adjacency, ``[tasks, q, n]`` weights on the ``n`` support nodes in the episode's order
        (each row sums to 1: a node has no edge to itself)."""
        z = self.embed(torch.cat([episode.support_x.flatten(0, 1),
                                  episode.query_x.flatten(0, 1)]))
        tasks, n = episode.support_y.shape
        support_z, query_z = z[: tasks * n].view(tasks, n, -1), z[tasks * n :].view(tasks, -1,
                                                                                  z.shape[-1])
        graphs = query_graphs(support_z, episode.support_y, query_z, episode.n_way,
                              self.query_label)
        return [a[:, 0, 1:].reshape(tasks, query_z.shape[1], n)
                for a in self.graph.adjacencies(graphs)]

    def loss(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """Cross-entropy of the query nodes' logits; and the logits."""
        check_query_labels(self.name, episode.query_y, episode.n_way)
        return super().loss(episode)
