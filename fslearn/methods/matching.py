r"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra, 2016).

A query :math:`\hat x` is labelled by attention over the support set
:math:`S = \{(x_i, y_i)\}`, a soft nearest neighbour: the attention is a softmax over cosine
similarities of embeddings,

.. math:: a(\hat x, x_i) = \frac{\exp c(f(\hat x), g(x_i))}{\sum_j \exp c(f(\hat x), g(x_j))},
          \qquad c(u, v) = \frac{u \cdot v}{\lVert u \rVert\, \lVert v \rVert},

and the prediction is the attention-weighted sum of the support labels (one-hot vectors)

.. math:: \hat y = \sum_i a(\hat x, x_i)\, y_i ,

a probability vector over the episode's classes. With ``scale`` :math:`\gamma \neq 1` the
attention is a softmax over :math:`\gamma\, c(f(\hat x), g(x_i))`, a departure from the paper
(below). Training
minimises :math:`-\log \hat y_{y}`,
the negative log of the probability of the true class.

Numerically, :math:`\log \hat y_n = \log \sum_{i:\,y_i=n} a(\hat x, x_i)` is computed as a
log-sum-exp of the log-attentions :math:`\log a = c - \operatorname{logsumexp}_j c_j` over the
support images of class :math:`n`; no probability is formed and then logged, so none is rounded
to zero. :meth:`MatchingNetwork.forward` returns these log-probabilities: their softmax is
:math:`\hat y` itself, and cross-entropy on them is the paper's loss.

Without full context embeddings (FCE) both :math:`f` and :math:`g` are the Conv4 embedding
:math:`f'` (:math:`= g'`). With FCE (paper, appendix A) each support embedding is read in the
context of the whole support set by a bidirectional LSTM, with a skip connection,

.. math:: g(x_i, S) = \overrightarrow{h}_i + \overleftarrow{h}_i + g'(x_i),

and each query by an LSTM that attends over :math:`g(S)` for :math:`K` processing steps,

.. math::
    \hat h_k, c_k &= \operatorname{LSTM}(f'(\hat x), [h_{k-1}, r_{k-1}], c_{k-1}), \\
    h_k &= \hat h_k + f'(\hat x), \\
    r_{k-1} &= \sum_i \operatorname{softmax}_i\big(h_{k-1}^\top g(x_i, S)\big)\, g(x_i, S),

:math:`f(\hat x, S) = h_K`. The paper does not say how the recursion starts; here
:math:`h_0 = f'(\hat x)` (:math:`\hat h_0 = 0`) and :math:`c_0 = 0`. The bidirectional LSTM reads
the support set in the episode's order (class-major), so with FCE the support order matters.

Why a scale: a cosine lies in :math:`[-1, 1]`, so without one the attention can favour one
support image over another by a factor :math:`e^2 \approx 7.4` at most. Over a 20-way support
set the true image's attention then stays below :math:`e / (e + 19 e^{-1}) \approx 0.28` even
when the embedding is perfect, and the loss keeps pushing every cosine to :math:`\pm 1`. A scale
:math:`\gamma` (a temperature :math:`1/\gamma`), as Baseline++'s cosine head has, lifts that
ceiling; the paper's
attention is ``scale=1``, the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fslearn._modes import evaluation_mode
from fslearn.backbones import Conv4
from fslearn.data.episodes import Episode
from fslearn.methods.base import MetricMethod, check_query_labels, check_support
from fslearn.methods.options import Option
from fslearn.results import PaperFigures

if TYPE_CHECKING:
    from fslearn.training import TrainingConfig

__all__ = [
    "DEFAULT_FCE_STEPS",
    "AttentionLSTM",
    "MatchingNetwork",
    "SupportContext",
    "cosine_similarity",
    "matching_log_probabilities",
]

#: processing steps K of the query's attention LSTM when none is given. The paper does not
#: state K for its experiments; 2 is the default of a widely used reproduction
#: (Knagg's few-shot library, ``unrolling_steps``).
DEFAULT_FCE_STEPS = 2


def cosine_similarity(query_z: Tensor, support_z: Tensor) -> Tensor:
    """``c(q, s) = q.s / (|q| |s|)`` for every query and support embedding.

    Args:
        query_z: ``[tasks, n_query_total, D]``.
        support_z: ``[tasks, n_support, D]``.

    Returns:
        ``[tasks, n_query_total, n_support]`` in ``[-1, 1]`` (a zero vector has similarity 0
        with everything).
    """
    return F.normalize(query_z, dim=-1) @ F.normalize(support_z, dim=-1).transpose(1, 2)


def matching_log_probabilities(similarities: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    """``log y_hat``: the log of the attention-weighted vote of the support labels.

    Args:
        similarities: ``[tasks, n_query_total, n_support]`` the attention logits (cosine
            similarities in Matching Networks).
        support_y: ``[tasks, n_support]`` labels in ``0..n_way-1``.
        n_way: number of classes.

    Returns:
        ``[tasks, n_query_total, n_way]``; ``exp`` of row ``q`` is ``sum_i a(q, i) onehot(y_i)``
        with ``a(q, .) = softmax(similarities[q])``. A class without support images gets
        ``-inf`` (probability 0).
    """
    log_attention = similarities.log_softmax(dim=-1)  # log a(x, x_i)
    # log of the one-hot labels: 0 where y_i = n, -inf elsewhere; [tasks, 1, n_support, n_way]
    log_one_hot = F.one_hot(support_y, n_way).to(similarities.dtype).log().unsqueeze(1)
    return (log_attention.unsqueeze(-1) + log_one_hot).logsumexp(dim=2)


class SupportContext(nn.Module):
    """FCE for the support set: ``g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i)``, a bidirectional
    LSTM over the support embeddings in the episode's order, with a skip connection.

    Args:
        dim: embedding size D (the LSTM's input and hidden size, so the three terms add up).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)

    def forward(self, support_z: Tensor) -> Tensor:
        """``support_z: [tasks, n_support, D]`` -> ``[tasks, n_support, D]``."""
        hidden, _ = self.lstm(support_z)  # [tasks, n_support, 2D]: forward then backward
        forward, backward = hidden.chunk(2, dim=-1)
        return forward + backward + support_z


class AttentionLSTM(nn.Module):
    """FCE for a query: ``f(x, S) = attLSTM(f'(x), g(S), K)``, ``K`` processing steps of an
    LSTM whose hidden state is ``[h_{k-1}, r_{k-1}]``, the last output and a read-out of the
    support set by dot-product attention (paper, appendix A.1).

    The LSTM cell is written out: its gates are one linear map of the input ``f'(x)`` and the
    hidden state ``[h, r]`` (``D + 2D`` numbers), its cell state and output have D.

    Args:
        dim: embedding size D.
        steps: processing steps K (at least 1).
    """

    def __init__(self, dim: int, steps: int) -> None:
        super().__init__()
        self.gates = nn.Linear(3 * dim, 4 * dim)  # input, forget, cell and output gates
        self.steps = steps

    def forward(self, query_z: Tensor, support_g: Tensor) -> Tensor:
        """``query_z: [tasks, n_query_total, D]`` (``f'``), ``support_g: [tasks, n_support, D]``
        (``g(S)``) -> ``[tasks, n_query_total, D]`` (``h_K``)."""
        h, c = query_z, torch.zeros_like(query_z)  # h_0 = f'(x), c_0 = 0
        for _ in range(self.steps):
            attention = (h @ support_g.transpose(1, 2)).softmax(dim=-1)  # softmax(h^T g(x_i))
            r = attention @ support_g  # read-out r_{k-1}
            i, f, g, o = self.gates(torch.cat([query_z, h, r], dim=-1)).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c) + query_z  # h_k = h_hat_k + f'(x)
        return h


class MatchingNetwork(MetricMethod):
    """Label queries by cosine attention over the support set, with or without full context
    embeddings.

    Args:
        backbone: the embedding ``f' = g'``; a :class:`~fslearn.backbones.Conv4` with
            ``in_channels`` input channels when omitted.
        in_channels: image channels for the default backbone.
        image_size: side of the images; with FCE it fixes the embedding size D of the LSTMs
            (64 for Conv4 on 28x28 images).
        fce: use full context embeddings (a bidirectional LSTM over the support set and an
            attention LSTM for each query).
        fce_steps: processing steps K of the attention LSTM (FCE only; default
            :data:`DEFAULT_FCE_STEPS`).
        scale: ``gamma``, the attention logits are ``gamma * cosine``; 1 is the paper's attention, a
            larger one a departure from it (see the module's docstring).

    :meth:`forward` returns ``log y_hat`` ``[tasks, n_query_total, n_way]``: log-probabilities,
    so their arg-max is the prediction and their softmax the probabilities ``y_hat``.
    """

    name = "matchingnet"
    #: Vinyals et al. (2016), Table 1, "Matching Nets" (cosine attention; whether these
    #: Omniglot figures used full context embeddings is not confirmed)
    paper_figures = MappingProxyType({"classification": PaperFigures(
        "Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra (2016), Matching Networks for "
        "One Shot Learning, NeurIPS, Table 1 (Omniglot)",
        {(5, 1): 0.981, (5, 5): 0.989, (20, 1): 0.938, (20, 5): 0.985})})
    cli_options = (
        Option(("--fce",), "full context embeddings: a bidirectional LSTM over the support set "
               "and an attention LSTM for each query (default: off, cosine attention over the "
               "Conv4 embeddings alone)", flag=True),
        Option(("--fce-steps",), "with --fce: processing steps K of the query's attention LSTM",
               type=int, default_text=str(DEFAULT_FCE_STEPS),
               needs=("fce", "sets the processing steps of full context embeddings")),
        Option(("--scale",), "the attention's logits are scale * cosine (1: the paper's)",
               type=float),
    )

    @classmethod
    def describe_training(cls, config: TrainingConfig, options: Mapping[str, Any]
                          ) -> tuple[str, str]:
        """N-way K-shot episodes; runs with full context embeddings are named ``...-fce``."""
        shape, words = super().describe_training(config, options)
        return shape + ("-fce" if options["fce"] else ""), words

    def __init__(
        self,
        backbone: nn.Module | None = None,
        in_channels: int = 1,
        image_size: int = 28,
        fce: bool = False,
        fce_steps: int | None = None,
        scale: float = 1.0,
    ) -> None:
        super().__init__(backbone if backbone is not None else Conv4(in_channels))
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (
                0 < scale < float("inf")):
            raise ValueError(f"scale must be a positive finite number (the attention's "
                             f"logits are scale * cosine; 1 is the paper's), got {scale!r}")
        if not isinstance(fce, bool):
            raise ValueError(f"fce must be True or False, got {fce!r}")
        if fce_steps is not None and not fce:
            raise ValueError(f"fce_steps={fce_steps} sets the processing steps of full context "
                             f"embeddings, which are off: pass fce=True too (--fce with "
                             f"--fce-steps).")
        if fce:
            fce_steps = DEFAULT_FCE_STEPS if fce_steps is None else fce_steps
            if not isinstance(fce_steps, int) or isinstance(fce_steps, bool) or fce_steps < 1:
                raise ValueError(f"fce_steps must be a positive integer, got {fce_steps!r}")
        self.hparams = {"in_channels": in_channels, "image_size": image_size, "fce": fce,
                        "fce_steps": fce_steps, "scale": float(scale)}
        self.scale = float(scale)
        self.embedding_dim: int | None = None
        self.support_context: SupportContext | None = None
        self.query_attention: AttentionLSTM | None = None
        if fce:
            assert fce_steps is not None
            self.embedding_dim = self._embedding_dim(in_channels, image_size)
            self.support_context = SupportContext(self.embedding_dim)
            self.query_attention = AttentionLSTM(self.embedding_dim, fce_steps)

    def _embedding_dim(self, in_channels: int, image_size: int) -> int:
        """D, the size of the backbone's output for one ``image_size`` image."""
        with evaluation_mode(self.backbone), torch.no_grad():
            probe = torch.zeros(1, in_channels, image_size, image_size)
            return int(self.backbone(probe).shape[-1])

    def support_embeddings(self, support_z: Tensor) -> Tensor:
        """``g(x_i, S)``: ``support_z`` itself without FCE, in its context with FCE.
        ``[tasks, n_support, D]`` -> ``[tasks, n_support, D]``."""
        return support_z if self.support_context is None else self.support_context(support_z)

    def query_embeddings(self, query_z: Tensor, support_g: Tensor) -> Tensor:
        """``f(x, S)``: ``query_z`` itself without FCE, after K attention steps over
        ``support_g = g(S)`` with FCE. ``[tasks, n_query_total, D]`` -> the same shape."""
        if self.query_attention is None:
            return query_z
        return self.query_attention(query_z, support_g)

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        """``log y_hat`` ``[tasks, n_query_total, n_way]`` from the embeddings ``f'``, ``g'``."""
        check_support(self.name, support_z, support_y, query_z, n_way)
        if self.embedding_dim is not None and support_z.shape[-1] != self.embedding_dim:
            size = self.hparams["image_size"]
            raise ValueError(
                f"{self.name} with full context embeddings was built for embeddings of "
                f"{self.embedding_dim} numbers ({size}x{size} images), got "
                f"{support_z.shape[-1]}: give it images of the size it was built for.")
        support_g = self.support_embeddings(support_z)
        query_f = self.query_embeddings(query_z, support_g)
        return matching_log_probabilities(self.attention_logits(query_f, support_g), support_y,
                                          n_way)

    def attention_logits(self, query_f: Tensor, support_g: Tensor) -> Tensor:
        """``gamma * c(f(x), g(x_i))``, whose softmax over the support set is the attention.
        ``query_f: [tasks, n_query_total, D]``, ``support_g: [tasks, n_support, D]`` ->
        ``[tasks, n_query_total, n_support]``."""
        return self.scale * cosine_similarity(query_f, support_g)

    def loss(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """``-log y_hat[true class]``, the mean over the queries; and ``log y_hat``."""
        check_query_labels(self.name, episode.query_y, episode.n_way)
        log_probabilities = self(episode)
        loss = F.nll_loss(log_probabilities.flatten(0, 1), episode.query_y.flatten())
        return loss, log_probabilities
