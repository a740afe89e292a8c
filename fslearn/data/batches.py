"""Class-balanced mini-batches of labelled images: what the transfer baselines pre-train on.

Baseline and Baseline++ (Chen et al. 2019) do not learn from episodes: they pre-train an ordinary
classifier over *all* training classes, so their batches are labelled images whose labels are the
dataset's own class indices ``0..num_classes-1`` (global labels, not renumbered per episode).

How a batch is drawn, exactly: the sampler reads an endless stream of classes made of *rounds*;
round ``r`` is a permutation of all ``num_classes`` classes, drawn from ``(seed, "round", r)``.
Batch ``i`` takes positions ``i*batch .. (i+1)*batch - 1`` of the stream, and for each position
one image of that class, drawn uniformly from ``(seed, i)``. So after any number of batches every
class has been drawn the same number of times, give or take one, however many images each class
has (class-balanced); within a round no class comes twice. (Chen et al. shuffled images, not
classes; Omniglot's classes all have 20 images, so the two agree on average.)

Batch ``i`` depends only on ``(seed, i)``, as in :class:`~fslearn.data.episodes.EpisodeSampler`:
training can resume at batch ``i`` and see exactly the images an uninterrupted run would have
seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fslearn.data.dataset import FewShotDataset, to_float

__all__ = ["LabelledBatch", "LabelledBatchSampler"]

#: a tag that separates the class-order draws from the image draws of the same seed
_ROUND_STREAM = 1


@dataclass(frozen=True)
class LabelledBatch:
    """A mini-batch of images with their dataset classes.

    Attributes:
        x: ``[batch, C, H, W]`` float images in ``[0, 1]``.
        y: ``[batch]`` int64 dataset class of each image, in ``0..num_classes-1``.
        indices: ``[batch]`` int64 dataset index of each image.
    """

    x: Tensor
    y: Tensor
    indices: Tensor

    @property
    def batch(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> LabelledBatch:
        """The same batch with its tensors on ``device``."""
        return LabelledBatch(*(t.to(device, non_blocking=True)
                               for t in (self.x, self.y, self.indices)))


class LabelledBatchSampler:
    """Draws reproducible class-balanced mini-batches of labelled images from a dataset.

    Args:
        dataset: where the classes and images come from; labels are its class indices.
        batch: images per batch (16 in Chen et al.).
        seed: batch ``i`` is a pure function of ``(seed, i)``.

    Raises:
        ValueError: for a non-positive batch or negative seed, fewer than 2 classes, or a class
            without images; the message names the numbers.
    """

    def __init__(self, dataset: FewShotDataset, batch: int = 16, seed: int = 0) -> None:
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"batch must be a positive integer (images per batch), got "
                             f"{batch!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if dataset.num_classes < 2:
            raise ValueError(
                f"A classifier over the training classes needs at least 2 classes, but "
                f"{dataset.name} has {dataset.num_classes} class"
                f"{'es' * (dataset.num_classes != 1)}: add classes.")
        table, counts = dataset.indices_by_class()
        empty = int((counts == 0).sum())
        if empty:
            first = int(torch.nonzero(counts == 0)[0])
            raise ValueError(
                f"Class {dataset.class_names[first]!r} of {dataset.name} has no image ({empty} "
                f"of {dataset.num_classes} classes have none): leave those classes out.")
        self.dataset, self.batch, self.seed = dataset, batch, seed
        self._table, self._counts = table.numpy(), counts.numpy()

    def __repr__(self) -> str:
        return (f"LabelledBatchSampler({self.dataset.name}, batch={self.batch}, "
                f"seed={self.seed})")

    @property
    def num_classes(self) -> int:
        return len(self._counts)

    def _round(self, r: int) -> np.ndarray:
        return np.random.default_rng([self.seed, _ROUND_STREAM, r]).permutation(self.num_classes)

    def indices(self, index: int) -> tuple[Tensor, Tensor]:
        """``([batch] dataset image indices, [batch] their classes)`` of batch ``index`` (a pure
        function of seed and index)."""
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"index must be a non-negative integer, got {index!r}")
        start, stop = index * self.batch, (index + 1) * self.batch
        first, last = start // self.num_classes, (stop - 1) // self.num_classes
        stream = np.concatenate([self._round(r) for r in range(first, last + 1)])
        classes = stream[start - first * self.num_classes: stop - first * self.num_classes]
        rng = np.random.default_rng([self.seed, index])
        images = self._table[classes, rng.integers(0, self._counts[classes])]
        return torch.from_numpy(images), torch.from_numpy(classes).long()

    def episode(self, index: int) -> LabelledBatch:
        """Batch ``index``, with float images in ``[0, 1]``. (Named as every sampler's draw: the
        training loop draws batch ``i`` of any sampler with ``sampler.episode(i)``.)"""
        images, classes = self.indices(index)
        return LabelledBatch(x=to_float(self.dataset.images[images]), y=classes, indices=images)

    def __iter__(self) -> Iterator[LabelledBatch]:
        """Batches 0, 1, 2, ... without end."""
        index = 0
        while True:
            yield self.episode(index)
            index += 1
