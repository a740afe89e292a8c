r"""Relation Networks (Sung, Yang, Zhang, Xiang, Torr and Hospedales, 2018).

Where Matching and Prototypical Networks compare embeddings with a fixed similarity (cosine,
Euclidean), a Relation Network *learns* the comparison. An embedding module :math:`f_\varphi`
turns each image into a feature map (not flattened); the support feature maps of class
:math:`n` are combined into one, :math:`s_n`; and a relation module :math:`g_\phi` reads the
channel-wise concatenation of :math:`s_n` with a query's feature map and outputs a relation score
in :math:`[0, 1]`,

.. math:: r_{q,n} = g_\phi\big(\mathcal{C}(s_n, f_\varphi(x_q))\big),
          \qquad s_n = \sum_{i:\, y_i = n} f_\varphi(x_i).

The scores are regressed onto the one-hot targets by mean squared error,

.. math:: \mathcal{L} = \frac{1}{Q N} \sum_{q=1}^{Q} \sum_{n=1}^{N}
          \big(r_{q,n} - \mathbf{1}[y_q = n]\big)^2 ,

and a query gets the class with the highest score.

K-shot: the support feature maps of a class are **summed**, as in the authors' code
(``torch.sum(sample_features, 1)``) and as the paper's text says ("element-wise sum over the
embedding module outputs of all samples from each training class"). A sum is not a mean: a
model trained on K-shot episodes sees class features about K times larger than a 1-shot model,
so, like the authors (one model per setting), train it with the shots it will be tested with.
``aggregate="mean"`` averages them instead (a departure): class features then have the scale of
one image's for any K, so one model serves every number of shots. With one shot the two are the
same. Every class of an episode must have the same number of support images.

Architecture, the authors' Omniglot code (``omniglot_train_few_shot.py``): the embedding module
is four blocks of 3x3 convolution (64 channels), batch norm and ReLU, the first two unpadded and
followed by 2x2 max-pooling, the last two padded and not pooled, so a 28x28 image (the size the
authors resize Omniglot to) becomes a 64x5x5 feature map; the relation module is two blocks of
padded 3x3 convolution (64 channels), batch norm, ReLU and 2x2 max-pooling on the 128x5x5 pair
(5x5 -> 2x2 -> 1x1), then fully connected layers 64 -> 8 (ReLU) -> 1 (sigmoid). Weights are
initialised as in their ``weights_init``.

Departures from the authors' script, on purpose: batch norm keeps running averages (PyTorch's
default momentum) and evaluation runs in evaluation mode, while their script sets
``momentum=1`` and never calls ``eval()``, so it normalises test episodes by their own
statistics. Their gradient-norm clipping at 0.5, separately for each module, is kept
(``max_grad_norm``).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fslearn.backbones import batch_statistics, channels_last
from fslearn.data.episodes import Episode
from fslearn.methods.base import MetricMethod, check_query_labels, check_support
from fslearn.methods.options import Option
from fslearn.results import PaperFigures

__all__ = [
    "AGGREGATES",
    "RelationEncoder",
    "RelationModule",
    "RelationNetwork",
    "class_feature_maps",
    "encoder_output_size",
    "one_hot_targets",
    "relation_pairs",
]

#: image pairs the relation module scores at once in evaluation mode (bounds the memory of
#: 20-way evaluations over many episodes; in training all pairs go together, so batch norm sees
#: the whole episode)
PAIRS_PER_CHUNK = 4096
#: how the K support feature maps of a class are combined: the authors' sum, or a mean
AGGREGATES = ("sum", "mean")


def _block(in_channels: int, out_channels: int, padding: int, pool: bool) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU and, if ``pool``, 2x2 max-pooling: the authors' order."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=padding),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def _authors_init(module: nn.Module) -> None:
    """The authors' ``weights_init``: convolutions N(0, 2/(3*3*out_channels)) and zero bias;
    batch norm scale 1, shift 0; linear layers N(0, 0.01^2) and bias 1."""
    if isinstance(module, nn.Conv2d):
        fan = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        nn.init.normal_(module.weight, 0.0, (2.0 / fan) ** 0.5)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.01)
        nn.init.ones_(module.bias)


def encoder_output_size(image_size: int) -> int:
    """Side of the embedding module's feature maps: two unpadded 3x3 convolutions, each followed
    by a 2x2 max-pool (28 -> 26 -> 13 -> 11 -> 5); the padded ones keep the size."""
    side = image_size
    for _ in range(2):
        side = (side - 2) // 2
    return side


class RelationEncoder(nn.Module):
    """The embedding module f: ``[batch, C, H, W]`` -> ``[batch, 64, h, w]`` feature maps
    (64x5x5 for 28x28 images)."""

    def __init__(self, in_channels: int = 1, channels: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(in_channels, channels, padding=0, pool=True),
            _block(channels, channels, padding=0, pool=True),
            _block(channels, channels, padding=1, pool=False),
            _block(channels, channels, padding=1, pool=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        # channels-last maps: faster convolutions, batch norm and pooling on a CPU, where batch
        # norm uses its running averages (see fslearn.backbones.channels_last)
        return self.features(x if batch_statistics(self) else channels_last(x))


class RelationModule(nn.Module):
    """The relation module g: ``[pairs, 2*64, h, w]`` concatenated feature maps -> ``[pairs]``
    relation scores in ``[0, 1]``.

    Args:
        channels: channels of one feature map (the pair has twice as many).
        side: side ``h = w`` of the feature maps (5 for 28x28 images).
        hidden: units of the first fully connected layer (8 in the authors' code).
    """

    def __init__(self, channels: int = 64, side: int = 5, hidden: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(2 * channels, channels, padding=1, pool=True),
            _block(channels, channels, padding=1, pool=True),
        )
        pooled = side // 2 // 2
        self.fc1 = nn.Linear(channels * pooled * pooled, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, pairs: Tensor) -> Tensor:
        return self.after_first_convolution(self.features[0][0](pairs))

    def after_first_convolution(self, maps: Tensor) -> Tensor:
        """The rest of the module: ``[pairs, 64, h, w]`` outputs of its first convolution ->
        ``[pairs]`` scores."""
        hidden = self.features[1](self.features[0][1:](maps))
        hidden = F.relu(self.fc1(hidden.flatten(1)))
        return torch.sigmoid(self.fc2(hidden)).squeeze(-1)

    def score_all_pairs(self, class_maps: Tensor, query_maps: Tensor,
                        pairs_per_chunk: int | None = None) -> Tensor:
        """The scores of every (query, class) pair, ``self(relation_pairs(class_maps,
        query_maps))``, without concatenating the pairs.

        The first convolution of a pair ``[s_n, f(x_q)]`` is the convolution of ``s_n`` with
        the weights of the first half of its input channels plus that of ``f(x_q)`` with the
        second half. So each class map and each query map is convolved once, and only the sums,
        one per pair, go through the rest of the module: the same scores (up to float rounding)
        for a sixth (5-way 1-shot, 15 queries per class) to a tenth (20-way) of the
        multiplications, since that convolution, on twice the channels, is most of the module's.

        Args:
            class_maps: ``[tasks, n_way, C, h, w]``.
            query_maps: ``[tasks, n_query_total, C, h, w]``.
            pairs_per_chunk: score about this many pairs at a time (a few queries' rows; bounds
                the memory of large evaluations); None: all at once, as training needs, so that
                batch norm sees every pair of the episode.

        Returns:
            ``[tasks, n_query_total, n_way]``.
        """
        conv, channels = self.features[0][0], class_maps.shape[2]
        (tasks, n_way), n_query = class_maps.shape[:2], query_maps.shape[1]
        if not batch_statistics(self):  # running averages: faster channels-last maps
            class_maps, query_maps = (channels_last(maps.flatten(0, 1)).unflatten(0, maps.shape[:2])
                                      for maps in (class_maps, query_maps))
        class_part = F.conv2d(class_maps.flatten(0, 1), conv.weight[:, :channels], None,
                              conv.stride, conv.padding).unflatten(0, (tasks, n_way))
        query_part = F.conv2d(query_maps.flatten(0, 1), conv.weight[:, channels:], conv.bias,
                              conv.stride, conv.padding)  # [tasks*n_query_total, 64, h, w]
        if pairs_per_chunk is None:
            query_part = query_part.unflatten(0, (tasks, n_query))
            summed = class_part.unsqueeze(1) + query_part.unsqueeze(2)  # [tasks, q, n, ...]
            return self.after_first_convolution(summed.flatten(0, 2)).view(tasks, n_query, n_way)
        rows = torch.arange(tasks * n_query, device=query_maps.device)
        chunks = []
        for part in rows.split(max(1, pairs_per_chunk // n_way)):
            summed = class_part[part // n_query] + query_part[part].unsqueeze(1)
            chunks.append(self.after_first_convolution(summed.flatten(0, 1)).view(len(part), n_way))
        return torch.cat(chunks).view(tasks, n_query, n_way)


def class_feature_maps(support_z: Tensor, support_y: Tensor, n_way: int,
                       aggregate: str = "sum") -> Tensor:
    """The **sum** of the support feature maps of each class, ``s_n = sum_{y_i = n} f(x_i)``
    (or, with ``aggregate="mean"``, their mean).

    Args:
        support_z: ``[tasks, n_support, ...]`` support feature maps (flattened or not).
        support_y: ``[tasks, n_support]`` labels in ``0..n_way-1``.
        n_way: number of classes.
        aggregate: ``"sum"`` (the authors') or ``"mean"``.

    Returns:
        ``[tasks, n_way, ...]``.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    one_hot = F.one_hot(support_y, n_way).to(support_z.dtype)  # [tasks, n_support, n_way]
    sums = one_hot.transpose(1, 2) @ support_z.flatten(2)  # [tasks, n_way, numbers per map]
    if aggregate == "mean":  # a class without support images keeps its zero sum
        sums = sums / one_hot.sum(1).clamp_min(1).unsqueeze(-1)
    return sums.view(*sums.shape[:2], *support_z.shape[2:])


def relation_pairs(class_maps: Tensor, query_maps: Tensor) -> Tensor:
    """Every (query, class) pair, concatenated along channels as ``[class, query]`` (the
    authors' order).

    Args:
        class_maps: ``[tasks, n_way, C, h, w]``.
        query_maps: ``[tasks, n_query_total, C, h, w]``.

    Returns:
        ``[tasks, n_query_total, n_way, 2C, h, w]``.
    """
    n_way, n_query = class_maps.shape[1], query_maps.shape[1]
    classes = class_maps.unsqueeze(1).expand(-1, n_query, -1, -1, -1, -1)
    queries = query_maps.unsqueeze(2).expand(-1, -1, n_way, -1, -1, -1)
    return torch.cat([classes, queries], dim=3)


def one_hot_targets(query_y: Tensor, n_way: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The regression targets: 1 for a query's own class, 0 for every other,
    ``[tasks, n_query_total]`` -> ``[tasks, n_query_total, n_way]``."""
    return F.one_hot(query_y, n_way).to(dtype)


class RelationNetwork(MetricMethod):
    """Score every (query, class) pair with a learned relation module, trained by mean squared
    error on one-hot targets.

    Args:
        in_channels: image channels (1 for Omniglot).
        image_size: side of the square images (28 for Omniglot, as the authors'); it fixes the
            size of the relation module's first fully connected layer, so the method takes only
            images of this size (at least 22 pixels).
        max_grad_norm: in training, clip the gradient norm of the embedding module and of the
            relation module, each, to this (0.5 in the authors' code); None: no clipping.
        aggregate: ``"sum"``, the authors' (train with the shots you test with), or
            ``"mean"`` (a departure: one model for any number of shots); see the module's
            docstring.

    :meth:`forward` returns the relation scores ``[tasks, n_query_total, n_way]`` in ``[0, 1]``,
    not logits; :meth:`probabilities` rescales them to sum to 1 per query (a ranking, not a
    calibrated probability).
    """

    name = "relationnet"
    #: Sung et al. (2018), Table 1 (+/- 0.2 / 0.1 / 0.2 / 0.1); one model trained per setting,
    #: 1,000,000 episodes each
    paper_figures = MappingProxyType({"classification": PaperFigures(
        "Sung, Yang, Zhang, Xiang, Torr and Hospedales (2018), Learning to Compare: Relation "
        "Network for Few-Shot Learning, CVPR, Table 1 (Omniglot)",
        {(5, 1): 0.996, (5, 5): 0.998, (20, 1): 0.976, (20, 5): 0.991})})
    cli_options = (
        Option(("--aggregate",), "how a class's K support feature maps are combined: sum, the "
               "authors' (train with the shots you will test with), or mean (one model for any "
               "number of shots; the same as sum with one shot)", choices=AGGREGATES),
    )

    def __init__(self, in_channels: int = 1, image_size: int = 28,
                 max_grad_norm: float | None = 0.5, aggregate: str = "sum") -> None:
        side = encoder_output_size(image_size)
        if side // 4 < 1:
            raise ValueError(
                f"{self.name} needs images of at least 22x22 pixels (its embedding module makes "
                f"{side}x{side} feature maps of {image_size}x{image_size} images, and the "
                f"relation module halves them twice); got {image_size}. Use a larger image size.")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm!r}")
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)} (how a class's "
                             f"support feature maps are combined), got {aggregate!r}")
        super().__init__(RelationEncoder(in_channels))
        self.relation = RelationModule(64, side)
        self.apply(_authors_init)
        self.feature_shape = (64, side, side)
        self.max_grad_norm = max_grad_norm
        self.hparams = {"in_channels": in_channels, "image_size": image_size,
                        "max_grad_norm": max_grad_norm, "aggregate": aggregate}
        self.aggregate = aggregate

    def embed(self, x: Tensor) -> Tensor:
        """``x: [batch, C, H, W]`` -> ``[batch, 64*h*w]`` feature maps, flattened for storage
        (evaluation embeds each image once); :meth:`scores` unflattens them."""
        channels, size = self.hparams["in_channels"], self.hparams["image_size"]
        if x.dim() != 4 or tuple(x.shape[1:]) != (channels, size, size):
            raise ValueError(
                f"{self.name} was built for images [batch, {channels}, {size}, {size}] (the "
                f"relation module's first layer has a fixed input size), got shape "
                f"{tuple(x.shape)}: give it {size}x{size} images.")
        return self.backbone(x).flatten(1)

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        """Relation scores ``[tasks, n_query_total, n_way]`` from flattened feature maps."""
        counts = check_support(self.name, support_z, support_y, query_z, n_way)
        numbers = self.feature_shape[0] * self.feature_shape[1] * self.feature_shape[2]
        if support_z.shape[-1] != numbers:
            raise ValueError(f"{self.name} expects feature maps of {numbers} numbers "
                             f"({'x'.join(map(str, self.feature_shape))}), got "
                             f"{support_z.shape[-1]}")
        if bool((counts != counts[:, :1]).any()):
            raise ValueError(
                f"{self.name} combines the support feature maps of each class, so every class "
                f"needs the same number of support images; got {counts.tolist()} per class")
        class_maps = class_feature_maps(support_z, support_y, n_way, self.aggregate).unflatten(
            2, self.feature_shape)
        query_maps = query_z.unflatten(2, self.feature_shape)
        # in training all pairs together, so that batch norm sees every pair of the episode; in
        # evaluation (batch norm uses its running averages) a few queries at a time: the same
        # scores in bounded memory
        return self.relation.score_all_pairs(class_maps, query_maps,
                                             None if self.training else PAIRS_PER_CHUNK)

    def loss(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """Mean squared error between the relation scores and the one-hot targets; and the
        scores."""
        check_query_labels(self.name, episode.query_y, episode.n_way)
        relations = self(episode)
        targets = one_hot_targets(episode.query_y, episode.n_way, relations.dtype)
        return F.mse_loss(relations, targets), relations

    def training_step(self, episode: Episode) -> tuple[Tensor, Tensor]:
        """The gradient of :meth:`loss`, each module's clipped to ``max_grad_norm`` (the
        authors clip the embedding and relation modules separately)."""
        loss, relations = self.loss(episode)
        loss.backward()
        if self.max_grad_norm is not None:
            for module in (self.backbone, self.relation):
                nn.utils.clip_grad_norm_(module.parameters(), self.max_grad_norm)
        return loss.detach(), relations.detach()

    def probabilities(self, scores: Tensor) -> Tensor:
        """The relation scores rescaled to sum to 1 over the classes (for ``fslearn predict``;
        the scores are independent sigmoids, so this is a ranking, not a calibrated
        probability)."""
        return scores / scores.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
