"""Same/different pairs and triplets: what Siamese networks are trained on.

A Siamese network is not trained on N-way K-shot episodes but on *verification*: are these two
images of the same class? A :class:`PairSampler` draws batches of pairs, exactly half of them of
one class (``same = 1``) and half of two different classes (``same = 0``), so that a network
that always answers "different" scores 50%, not the 99.9% it would on pairs drawn at random from
4112 classes. A :class:`TripletSampler` draws (anchor, positive, negative) triplets: the anchor
and the positive are two different images of one class, the negative an image of another class.

How a pair is drawn: a same pair picks a class uniformly, then two different images of it; a
different pair picks two different classes uniformly, then one image of each. So every class is
as likely as any other, however many images it has. A triplet picks the anchor's class
uniformly, two different images of it, then another class uniformly and one of its images.

Batch ``i`` of a sampler depends only on ``(seed, i)``, as in
:class:`~fslearn.data.episodes.EpisodeSampler`: training can resume at batch ``i`` and see
exactly the pairs an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fslearn.data.dataset import FewShotDataset, to_float

__all__ = ["PairBatch", "PairSampler", "TripletBatch", "TripletSampler"]


@dataclass(frozen=True)
class PairBatch:
    """A batch of image pairs.

    Attributes:
        first, second: ``[batch, C, H, W]`` float images in ``[0, 1]``; pair ``i`` is
            ``(first[i], second[i])``.
        same: ``[batch]`` float, 1.0 where both images are of one class, 0.0 where not (the
            binary cross-entropy target). The first half of the batch are the same pairs.
        indices: ``[batch, 2]`` int64 dataset index of each pair's two images.
        classes: ``[batch, 2]`` int64 dataset class of each pair's two images.
    """

    first: Tensor
    second: Tensor
    same: Tensor
    indices: Tensor
    classes: Tensor

    @property
    def batch(self) -> int:
        return int(self.same.shape[0])

    def to(self, device: torch.device | str) -> PairBatch:
        """The same pairs with their tensors on ``device``."""
        return PairBatch(*(t.to(device, non_blocking=True) for t in (
            self.first, self.second, self.same, self.indices, self.classes)))


@dataclass(frozen=True)
class TripletBatch:
    """A batch of (anchor, positive, negative) triplets.

    Attributes:
        anchor, positive, negative: ``[batch, C, H, W]`` float images in ``[0, 1]``; the anchor
            and the positive are two different images of one class, the negative is of another.
        indices: ``[batch, 3]`` int64 dataset index of the anchor, positive and negative.
        classes: ``[batch, 3]`` int64 their dataset classes (``classes[:, 0] == classes[:, 1]
            != classes[:, 2]``).
    """

    anchor: Tensor
    positive: Tensor
    negative: Tensor
    indices: Tensor
    classes: Tensor

    @property
    def batch(self) -> int:
        return int(self.indices.shape[0])

    def to(self, device: torch.device | str) -> TripletBatch:
        """The same triplets with their tensors on ``device``."""
        return TripletBatch(*(t.to(device, non_blocking=True) for t in (
            self.anchor, self.positive, self.negative, self.indices, self.classes)))


class _ClassPairs:
    """What both samplers share: the checks, the class table, and the draws within a class."""

    def __init__(self, dataset: FewShotDataset, batch: int, seed: int, what: str) -> None:
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"batch must be a positive integer ({what} per batch), got "
                             f"{batch!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if dataset.num_classes < 2:
            raise ValueError(
                f"{what.capitalize()} need images of at least 2 different classes, but "
                f"{dataset.name} has {dataset.num_classes} class"
                f"{'es' * (dataset.num_classes != 1)}: add classes.")
        table, counts = dataset.indices_by_class()
        smallest = int(torch.argmin(counts))
        if int(counts[smallest]) < 2:
            short = int((counts < 2).sum())
            raise ValueError(
                f"{what.capitalize()} need 2 different images of a class, but class "
                f"{dataset.class_names[smallest]!r} of {dataset.name} has only "
                f"{int(counts[smallest])} image{'s' * (int(counts[smallest]) != 1)} ({short} of "
                f"{dataset.num_classes} classes have fewer than 2): leave those classes out.")
        self.dataset, self.batch, self.seed = dataset, batch, seed
        self._table, self._counts = table.numpy(), counts.numpy()

    def _rng(self, index: int) -> np.random.Generator:
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"index must be a non-negative integer, got {index!r}")
        return np.random.default_rng([self.seed, index])

    def _two_of_a_class(self, rng: np.random.Generator, size: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``size`` classes drawn uniformly and two different images of each:
        ``(classes, first images, second images)``."""
        classes = rng.integers(0, len(self._counts), size)
        counts = self._counts[classes]
        i = rng.integers(0, counts)
        j = rng.integers(0, counts - 1)
        j += j >= i  # a position uniform among the others
        return classes, self._table[classes, i], self._table[classes, j]

    def _other_class(self, rng: np.random.Generator, classes: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """For each of ``classes``, another class drawn uniformly and one of its images:
        ``(other classes, images)``."""
        other = rng.integers(0, len(self._counts) - 1, len(classes))
        other += other >= classes
        return other, self._one_image(rng, other)

    def _one_image(self, rng: np.random.Generator, classes: np.ndarray) -> np.ndarray:
        return self._table[classes, rng.integers(0, self._counts[classes])]

    def _images(self, indices: Tensor) -> Tensor:
        return to_float(self.dataset.images[indices])


class PairSampler(_ClassPairs):
    """Draws reproducible batches of balanced same/different pairs from a dataset's classes.

    Args:
        dataset: where the classes and images come from.
        batch: pairs per batch, an even number: ``batch / 2`` same pairs, then ``batch / 2``
            different ones (128 in Koch et al.).
        seed: batch ``i`` is a pure function of ``(seed, i)``.

    Raises:
        ValueError: for an odd or non-positive batch, fewer than 2 classes, or a class with fewer
            than 2 images (no same pair can be drawn from it); the message names the numbers.
    """

    def __init__(self, dataset: FewShotDataset, batch: int = 128, seed: int = 0) -> None:
        super().__init__(dataset, batch, seed, "pairs")
        if batch % 2:
            nearest = f"{batch + 1}" if batch == 1 else f"{batch - 1} or {batch + 1}"
            raise ValueError(f"batch must be an even number of pairs, half same and half "
                             f"different, got {batch}: use {nearest}.")

    def __repr__(self) -> str:
        return f"PairSampler({self.dataset.name}, batch={self.batch}, seed={self.seed})"

    def indices(self, index: int) -> tuple[Tensor, Tensor]:
        """``([batch, 2] dataset image indices, [batch] same)`` of batch ``index``: the first
        half same pairs (``same = 1``), the second half different pairs (a pure function of
        seed and index)."""
        rng = self._rng(index)
        half = self.batch // 2
        _, same_first, same_second = self._two_of_a_class(rng, half)
        first_classes = rng.integers(0, len(self._counts), half)
        different_first = self._one_image(rng, first_classes)
        _, different_second = self._other_class(rng, first_classes)
        pairs = np.stack([np.concatenate([same_first, different_first]),
                          np.concatenate([same_second, different_second])], axis=1)
        same = torch.cat([torch.ones(half), torch.zeros(half)])
        return torch.from_numpy(pairs), same

    def episode(self, index: int) -> PairBatch:
        """Batch ``index`` of pairs, with float images in ``[0, 1]``. (Named as every sampler's
        draw: the training loop draws batch ``i`` of any sampler with ``sampler.episode(i)``.)"""
        pairs, same = self.indices(index)
        return PairBatch(first=self._images(pairs[:, 0]), second=self._images(pairs[:, 1]),
                         same=same, indices=pairs, classes=self.dataset.labels[pairs])

    def __iter__(self) -> Iterator[PairBatch]:
        """Batches 0, 1, 2, ... without end."""
        index = 0
        while True:
            yield self.episode(index)
            index += 1


class TripletSampler(_ClassPairs):
    """Draws reproducible batches of (anchor, positive, negative) triplets from a dataset.

    Args:
        dataset: where the classes and images come from.
        batch: triplets per batch.
        seed: batch ``i`` is a pure function of ``(seed, i)``.

    Raises:
        ValueError: for a non-positive batch, fewer than 2 classes, or a class with fewer than 2
            images (no anchor and positive can be drawn from it); the message names the numbers.
    """

    def __init__(self, dataset: FewShotDataset, batch: int = 128, seed: int = 0) -> None:
        super().__init__(dataset, batch, seed, "triplets")

    def __repr__(self) -> str:
        return f"TripletSampler({self.dataset.name}, batch={self.batch}, seed={self.seed})"

    def indices(self, index: int) -> Tensor:
        """``[batch, 3]`` dataset indices of the anchor, positive and negative of each triplet
        of batch ``index`` (a pure function of seed and index)."""
        rng = self._rng(index)
        classes, anchor, positive = self._two_of_a_class(rng, self.batch)
        _, negative = self._other_class(rng, classes)
        return torch.from_numpy(np.stack([anchor, positive, negative], axis=1))

    def episode(self, index: int) -> TripletBatch:
        """Batch ``index`` of triplets, with float images in ``[0, 1]`` (named as every
        sampler's draw, for the training loop)."""
        triplets = self.indices(index)
        return TripletBatch(anchor=self._images(triplets[:, 0]),
                            positive=self._images(triplets[:, 1]),
                            negative=self._images(triplets[:, 2]), indices=triplets,
                            classes=self.dataset.labels[triplets])

    def __iter__(self) -> Iterator[TripletBatch]:
        """Batches 0, 1, 2, ... without end."""
        index = 0
        while True:
            yield self.episode(index)
            index += 1
