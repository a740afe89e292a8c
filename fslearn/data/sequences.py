"""Sequence episodes for memory-augmented networks (Santoro et al. 2016).

A memory-augmented network does not get a support set and a query set. It sees one image at a
time and must say which of ``n_way`` labels it has; the correct label arrives one step *later*,
as part of the next input. An episode is ``n_way`` classes x ``per_class`` drawings, presented
in a shuffled order, so the first time a class is shown the model can only guess, and from the
second time on it can answer from what it stored::

    step t:   input  = [image x_t ; one-hot label y_{t-1}]   (zeros at t = 0)
              target = y_t

The class-to-label assignment is drawn anew for every episode, so no weight can memorise which
character carries which label: only what the model writes into its memory during the episode
helps.

Images: the dataset's images are downsampled to ``image_size`` (20x20 in the paper) with area
averaging, augmented, and each is divided by its own maximum so that faint and bold drawings
reach the same peak (the reproductions report that the model learns badly without this per-image
normalisation). The 90-degree rotations that make extra classes are already part of the Vinyals
class set (:func:`fslearn.data.load_omniglot` with ``protocol="vinyals"``), so they are *not*
applied again here. The augmentation is, per image, a random rotation uniform in
``[-max_rotation, max_rotation]`` degrees (default 15) and a random shift uniform in
``[-max_shift, max_shift]`` pixels along each axis (default 2 of 20 pixels). The paper only says
"small"; the public reproductions use about +-10 of 105 pixels (the 2 of 20 here) and +-30
degrees (or, through a radians-for-degrees slip, +-0.5 degrees): 15 degrees keeps the drawings
well apart from the 90-degree classes. It is done with :func:`torch.nn.functional.affine_grid`
and :func:`~torch.nn.functional.grid_sample` on the whole batch at once, not image by image.

String labels (the paper's 15-way experiment): each of the ``n_way`` classes gets a distinct
random string of ``string_length`` characters over ``symbols`` symbols (5 and 5: 3125 strings),
the label input is the concatenation of the characters' one-hot codes (25 numbers), and the
target is the ``[string_length]`` symbol indices, predicted by one softmax per character.

Episode batch ``i`` of a sampler depends only on ``(seed, i)``, as in
:class:`~fslearn.data.episodes.EpisodeSampler`: a :class:`torch.Generator` seeded from the pair
draws everything, so training can resume mid-run and evaluation is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.data.dataset import FewShotDataset, to_float

__all__ = [
    "LABEL_KINDS",
    "SequenceEpisode",
    "SequenceSampler",
    "SequenceTasks",
    "augment_images",
    "offset_label_inputs",
    "presentation_counts",
]

#: the two ways of encoding labels: one one-hot per class, or a string of one-hot characters
LABEL_KINDS = ("one_hot", "string")


@dataclass(frozen=True)
class SequenceEpisode:
    """A batch of sequence episodes.

    Attributes:
        inputs: ``[batch, time, features]`` float; ``features = image_features + label_features``,
            the flattened image of step t followed by the label code of step t-1 (zeros at t=0).
        targets: ``[batch, time]`` int64 episode labels in ``0..n_way-1`` (one-hot kind), or
            ``[batch, time, string_length]`` int64 symbol indices in ``0..symbols-1`` (string
            kind).
        labels: ``[batch, time]`` int64 episode label ``0..n_way-1`` of each step, for both kinds
            (for strings: which of the episode's ``n_way`` strings).
        presentation: ``[batch, time]`` int64, how many times the step's class has been shown so
            far in the episode, this step included (1 at its first appearance).
        classes: ``[batch, n_way]`` int64 dataset class behind each episode label.
        indices: ``[batch, time]`` int64 dataset index of each step's image.
        strings: ``[batch, n_way, string_length]`` int64 the string of each episode label
            (string kind), or ``[batch, n_way, 0]`` (one-hot kind).
        n_way: classes per episode.
        symbols: size of the label alphabet: ``n_way`` (one-hot kind) or the string symbols.
        label_kind: ``"one_hot"`` or ``"string"``.
    """

    inputs: Tensor
    targets: Tensor
    labels: Tensor
    presentation: Tensor
    classes: Tensor
    indices: Tensor
    strings: Tensor
    n_way: int
    symbols: int
    label_kind: str = "one_hot"

    @property
    def batch(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def time(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def features(self) -> int:
        """Input features per step: what a model's ``input_features`` must be."""
        return int(self.inputs.shape[2])

    @property
    def per_class(self) -> int:
        return self.time // self.n_way

    @property
    def string_length(self) -> int:
        """Characters per label string (0 for one-hot labels)."""
        return int(self.strings.shape[2])

    @property
    def label_features(self) -> int:
        """Numbers that encode one label: ``n_way`` or ``string_length * symbols``."""
        return self.n_way if self.label_kind == "one_hot" else self.string_length * self.symbols

    @property
    def num_outputs(self) -> int:
        """Logits per step a model must produce (the same as :attr:`label_features`)."""
        return self.label_features

    @property
    def image_features(self) -> int:
        return self.features - self.label_features

    def to(self, device: torch.device | str) -> SequenceEpisode:
        """The same episodes with their tensors on ``device``."""
        return SequenceEpisode(
            inputs=self.inputs.to(device, non_blocking=True),
            targets=self.targets.to(device, non_blocking=True),
            labels=self.labels.to(device, non_blocking=True),
            presentation=self.presentation.to(device, non_blocking=True),
            classes=self.classes.to(device, non_blocking=True),
            indices=self.indices.to(device, non_blocking=True),
            strings=self.strings.to(device, non_blocking=True),
            n_way=self.n_way,
            symbols=self.symbols,
            label_kind=self.label_kind,
        )


def offset_label_inputs(images: Tensor, label_codes: Tensor) -> Tensor:
    """The network's inputs: step t gets its own image and the label code of step t-1.

    Args:
        images: ``[batch, time, image_features]``.
        label_codes: ``[batch, time, label_features]`` the code (one-hot, or concatenated one-hot
            characters) of each step's *own* label.

    Returns:
        ``[batch, time, image_features + label_features]``; the label part of step 0 is zeros.
    """
    # The shift by one step is the whole point of the task: were the current label visible,
    # copying it would score 100% without any memory.
    previous = torch.cat([torch.zeros_like(label_codes[:, :1]), label_codes[:, :-1]], dim=1)
    return torch.cat([images, previous.to(images.dtype)], dim=2)


def presentation_counts(labels: Tensor, n_way: int) -> Tensor:
    """``labels: [batch, time]`` in ``0..n_way-1`` -> ``[batch, time]`` 1-based count of how many
    times that label has appeared up to and including each step."""
    seen = torch.cumsum(F.one_hot(labels, n_way), dim=1)
    return seen.gather(2, labels.unsqueeze(2)).squeeze(2)


def augment_images(images: Tensor, angles: Tensor, shifts: Tensor) -> Tensor:
    """Rotate and shift a batch of images with one bilinear resampling.

    Args:
        images: ``[n, C, H, W]`` float, background 0 (what moves in from outside the frame).
        angles: ``[n]`` degrees, counter-clockwise as displayed (90 equals ``torch.rot90`` with
            ``k=1`` on square images).
        shifts: ``[n, 2]`` pixels ``(right, down)``.

    Returns:
        ``[n, C, H, W]``; with values in ``[0, 1]`` in, the values stay in ``[0, 1]`` (bilinear
        weights are convex and the padding is 0).
    """
    n, _, height, width = images.shape
    radians = angles.to(images.dtype) * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    # affine_grid maps each *output* position to where it samples the input, so the matrix is
    # the inverse of the motion: rotate back by the angle, after undoing the shift.
    inverse = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=images.dtype, device=images.device)
    offset = -(inverse @ (shifts.to(images.dtype) * scale).unsqueeze(2))
    theta = torch.cat([inverse, offset], dim=2)  # [n, 2, 3]
    grid = F.affine_grid(theta, [n, images.shape[1], height, width], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class SequenceSampler:
    """Draws reproducible batches of sequence episodes from a :class:`FewShotDataset`.

    Args:
        dataset: where the classes and drawings come from.
        n_way: classes per episode (5 in the paper; 15 with string labels).
        per_class: drawings of each class per episode (10 in the paper); ``time = n_way *
            per_class``.
        batch: episodes per batch (16 in the paper).
        seed: batch ``i`` is a pure function of ``(seed, i)``.
        labels: ``"one_hot"`` or ``"string"`` (see the module docstring).
        image_size: side of the square images the model sees (20 in the paper).
        augment: apply the random rotation and shift (turn it off for evaluation if wanted).
        max_rotation: degrees, uniform in ``[-max_rotation, max_rotation]`` per image.
        max_shift: pixels (of ``image_size``), uniform in ``[-max_shift, max_shift]`` per axis.
        normalize: divide each image by its maximum (images stay in ``[0, 1]``).
        string_length, symbols: the label strings' length and alphabet (string labels only).

    Raises:
        ValueError: for a request the dataset cannot meet (more classes than it has, more
            drawings per class than some class has, more classes than distinct strings) or
            non-positive numbers; the message names the numbers and what to change.
    """

    def __init__(
        self,
        dataset: FewShotDataset,
        n_way: int = 5,
        per_class: int = 10,
        batch: int = 16,
        seed: int = 0,
        labels: str = "one_hot",
        image_size: int = 20,
        augment: bool = True,
        max_rotation: float = 15.0,
        max_shift: float = 2.0,
        normalize: bool = True,
        string_length: int = 5,
        symbols: int = 5,
    ) -> None:
        for name, value in (("n_way", n_way), ("per_class", per_class), ("batch", batch),
                            ("image_size", image_size), ("string_length", string_length),
                            ("symbols", symbols)):
            _positive_int(name, value)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if labels not in LABEL_KINDS:
            raise ValueError(f"labels must be one of {LABEL_KINDS}, got {labels!r}")
        if max_rotation < 0 or max_shift < 0:
            raise ValueError(f"max_rotation and max_shift must be >= 0, got {max_rotation} and "
                             f"{max_shift}")
        if n_way > dataset.num_classes:
            raise ValueError(
                f"n_way={n_way} classes per episode were requested, but {dataset.name} has only "
                f"{dataset.num_classes} classes: lower n_way to at most {dataset.num_classes}."
            )
        if labels == "string" and n_way > symbols**string_length:
            raise ValueError(
                f"n_way={n_way} classes need distinct label strings, but strings of "
                f"{string_length} characters over {symbols} symbols give only "
                f"{symbols**string_length}: lower n_way or lengthen the strings."
            )
        table, counts = dataset.indices_by_class()
        smallest = int(torch.argmin(counts))
        if int(counts[smallest]) < per_class:
            short = int((counts < per_class).sum())
            raise ValueError(
                f"per_class={per_class} drawings of each class are needed, but class "
                f"{dataset.class_names[smallest]!r} of {dataset.name} has only "
                f"{int(counts[smallest])} ({short} of {dataset.num_classes} classes have fewer "
                f"than {per_class}): lower per_class to at most {int(counts[smallest])}, or "
                f"leave those classes out."
            )
        self.dataset = dataset
        self.n_way, self.per_class, self.batch, self.seed = n_way, per_class, batch, seed
        self.labels, self.image_size, self.augment = labels, image_size, augment
        self.max_rotation, self.max_shift, self.normalize = max_rotation, max_shift, normalize
        self.string_length, self.symbols = string_length, symbols
        self._table, self._counts = table, counts

    def __repr__(self) -> str:
        return (
            f"SequenceSampler({self.dataset.name}, n_way={self.n_way}, "
            f"per_class={self.per_class}, batch={self.batch}, seed={self.seed}, "
            f"labels={self.labels!r}, image_size={self.image_size}, augment={self.augment})"
        )

    @property
    def time(self) -> int:
        """Steps per episode, ``n_way * per_class``."""
        return self.n_way * self.per_class

    def generator(self, index: int) -> torch.Generator:
        """The generator that draws batch ``index``, seeded from ``(seed, index)`` alone."""
        if not isinstance(index, int) or index < 0:
            raise ValueError(f"index must be a non-negative integer, got {index!r}")
        # SeedSequence mixes the pair, so (seed, index) and (seed + 1, index - 1) are unrelated.
        state = np.random.SeedSequence([self.seed, index]).generate_state(2, np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)

    def episode(self, index: int) -> SequenceEpisode:
        """Episode batch ``index`` (a pure function of ``seed`` and ``index``)."""
        g = self.generator(index)
        b, n, m, t = self.batch, self.n_way, self.per_class, self.time
        # Random keys sorted give uniform random subsets without a Python loop: the first n
        # classes of a random order, then the first m drawings of each, padding keyed +inf.
        classes = torch.rand(b, self.dataset.num_classes, generator=g).argsort(1)[:, :n]
        keys = torch.rand(b, n, self._table.shape[1], generator=g)
        keys[torch.arange(self._table.shape[1]) >= self._counts[classes].unsqueeze(2)] = math.inf
        picks = keys.argsort(2)[:, :, :m]
        drawings = self._table[classes].gather(2, picks)  # [b, n, m]
        order = torch.rand(b, t, generator=g).argsort(1)
        labels = torch.arange(n).repeat_interleave(m).expand(b, t).gather(1, order)
        indices = drawings.reshape(b, t).gather(1, order)

        images = self._images(indices.flatten(), g).reshape(b, t, -1)
        if self.labels == "one_hot":
            strings = torch.zeros(b, n, 0, dtype=torch.long)
            targets = labels
            codes = F.one_hot(labels, n)
        else:
            strings = self._strings(g)
            targets = strings.gather(1, labels.unsqueeze(2).expand(b, t, self.string_length))
            codes = F.one_hot(targets, self.symbols).flatten(2)
        return SequenceEpisode(
            inputs=offset_label_inputs(images, codes.to(images.dtype)),
            targets=targets,
            labels=labels,
            presentation=presentation_counts(labels, n),
            classes=classes,
            indices=indices,
            strings=strings,
            n_way=n,
            symbols=n if self.labels == "one_hot" else self.symbols,
            label_kind=self.labels,
        )

    def _strings(self, g: torch.Generator) -> Tensor:
        """``[batch, n_way, string_length]`` distinct random strings per episode."""
        total = self.symbols**self.string_length
        # Distinct integers in 0..total-1 written in base `symbols` are distinct strings.
        numbers = torch.rand(self.batch, total, generator=g).argsort(1)[:, : self.n_way]
        powers = self.symbols ** torch.arange(self.string_length - 1, -1, -1)
        return numbers.unsqueeze(2) // powers % self.symbols

    def _images(self, indices: Tensor, g: torch.Generator) -> Tensor:
        """``indices: [k]`` -> ``[k, C, image_size, image_size]`` float in ``[0, 1]``."""
        images = to_float(self.dataset.images[indices])
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="area")
        if self.augment:
            k = images.shape[0]
            angles = (torch.rand(k, generator=g) * 2 - 1) * self.max_rotation
            shifts = (torch.rand(k, 2, generator=g) * 2 - 1) * self.max_shift
            images = augment_images(images, angles, shifts)
        if self.normalize:
            peak = images.flatten(1).amax(1).clamp_min(1e-6)  # an empty image stays empty
            images = images / peak.view(-1, 1, 1, 1)
        return images.clamp_(0.0, 1.0)

    def __iter__(self) -> Iterator[SequenceEpisode]:
        """Batches 0, 1, 2, ... without end."""
        index = 0
        while True:
            yield self.episode(index)
            index += 1


@dataclass(frozen=True)
class SequenceTasks:
    """Sequence episodes over the classes of a dataset: what :func:`fslearn.training.train` and
    :func:`fslearn.evaluation.evaluate_sequences` take for memory-augmented networks, as they take
    a :class:`~fslearn.data.sinusoid.SinusoidRegression` for regression.

    It holds how the images are presented (size, augmentation, normalisation) and the string
    alphabet; the episode's shape (``n_way``, ``per_class``, episodes per batch, label kind)
    comes from the caller, the training run's :class:`~fslearn.training.TrainingConfig`, so that
    a resumed run checks it with the rest of the config. The arguments are those of
    :class:`SequenceSampler`.

    >>> tasks = SequenceTasks(load_omniglot("train"))                 # doctest: +SKIP
    >>> batch = tasks.sampler(n_way=5, per_class=10, batch=16).episode(0)  # doctest: +SKIP
    """

    dataset: FewShotDataset
    image_size: int = 20
    augment: bool = True
    max_rotation: float = 15.0
    max_shift: float = 2.0
    normalize: bool = True
    string_length: int = 5
    symbols: int = 5

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def sampler(self, n_way: int = 5, per_class: int = 10, batch: int = 16, seed: int = 0,
                labels: str = "one_hot", augment: bool | None = None) -> SequenceSampler:
        """Batches of ``batch`` episodes of ``n_way`` classes x ``per_class`` drawings;
        ``augment=None`` keeps this object's choice (evaluation passes False).

        Raises:
            ValueError: as :class:`SequenceSampler`, for a request the classes cannot meet.
        """
        return SequenceSampler(
            self.dataset, n_way=n_way, per_class=per_class, batch=batch, seed=seed,
            labels=labels, image_size=self.image_size,
            augment=self.augment if augment is None else augment,
            max_rotation=self.max_rotation, max_shift=self.max_shift, normalize=self.normalize,
            string_length=self.string_length, symbols=self.symbols)

    def with_dataset(self, dataset: FewShotDataset) -> SequenceTasks:
        """The same presentation of other classes (the validation or test split)."""
        return replace(self, dataset=dataset)

    def model_shape(self, n_way: int, labels: str = "one_hot") -> tuple[int, int]:
        """``(input_features, num_outputs)`` a model needs for these episodes: the flattened
        image plus the label code per step in, one logit per label code entry out."""
        if labels not in LABEL_KINDS:
            raise ValueError(f"labels must be one of {LABEL_KINDS}, got {labels!r}")
        outputs = n_way if labels == "one_hot" else self.string_length * self.symbols
        return self.dataset.image_shape[0] * self.image_size**2 + outputs, outputs
