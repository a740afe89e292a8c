"""The in-memory image dataset that every sampler, method and evaluation reads from.

Few-shot benchmarks are small (Omniglot at 28x28 is 25 MB as bytes), so the whole split lives in
one uint8 tensor. Sampling an episode is then a single indexing operation, with no DataLoader
workers and no per-image decoding in the training loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["FewShotDataset", "class_alphabet"]


def class_alphabet(class_name: str) -> str | None:
    """The alphabet (or script) a class belongs to, read from its name, or None.

    ``"Greek/character01/rot090"`` (Omniglot) -> ``"Greek"``; ``"Greek_U+03B1"`` (the printed
    glyphs of :mod:`fslearn.data.glyphs`) -> ``"Greek"``; any other name -> None.
    """
    if "/" in class_name:
        return class_name.split("/", 1)[0]
    if "_U+" in class_name:
        return class_name.rsplit("_U+", 1)[0]
    return None


@dataclass(frozen=True)
class FewShotDataset:
    """Images grouped into classes, held in memory.

    Attributes:
        images: ``[num_images, C, H, W]`` uint8, 0 = background, 255 = full ink/intensity.
        labels: ``[num_images]`` int64 class index in ``0..num_classes-1``.
        class_names: one name per class, e.g. ``"Angelic/character01/rot090"``.
        name: a short description shown in messages, e.g. ``"omniglot/vinyals/test"``.
    """

    images: Tensor
    labels: Tensor
    class_names: Sequence[str]
    name: str = "dataset"

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"{self.name}: images must be a uint8 tensor [num_images, C, H, W], got "
                f"{self.images.dtype} with shape {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"{self.name}: labels must have shape ({self.images.shape[0]},) to match the "
                f"images, got {tuple(self.labels.shape)}"
            )
        if len(self.labels) and (
            int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_names)
        ):
            raise ValueError(
                f"{self.name}: labels must lie in 0..{len(self.class_names) - 1} "
                f"(one per class name), got {int(self.labels.min())}..{int(self.labels.max())}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        """One image as float ``[C, H, W]`` in ``[0, 1]`` and its class index."""
        return to_float(self.images[index]), int(self.labels[index])

    def select_classes(self, classes: Sequence[int]) -> FewShotDataset:
        """A dataset of only these classes (relabelled ``0..len(classes)-1``, in that order)."""
        chosen = torch.as_tensor(list(classes), dtype=torch.long)
        if len(chosen) == 0 or int(chosen.min()) < 0 or int(chosen.max()) >= self.num_classes:
            raise ValueError(f"classes must be a non-empty list of indices in "
                             f"0..{self.num_classes - 1}")
        relabel = torch.full((self.num_classes,), -1, dtype=torch.long)
        relabel[chosen] = torch.arange(len(chosen))
        keep = relabel[self.labels] >= 0
        return FewShotDataset(
            images=self.images[keep],
            labels=relabel[self.labels[keep]],
            class_names=[self.class_names[int(c)] for c in chosen],
            name=f"{self.name}[{len(chosen)} classes]",
        )

    def classes_by_alphabet(self) -> dict[str, list[int]]:
        """The class indices of each alphabet (:func:`class_alphabet`), in order of first
        appearance.

        Raises:
            ValueError: if some class name names no alphabet.
        """
        groups: dict[str, list[int]] = {}
        for index, name in enumerate(self.class_names):
            alphabet = class_alphabet(name)
            if alphabet is None:
                raise ValueError(f"class {name!r} of {self.name} names no alphabet: alphabets are "
                                 f"read from class names 'Alphabet/character' (Omniglot) or "
                                 f"'Script_U+XXXX' (fslearn data glyphs).")
            groups.setdefault(alphabet, []).append(index)
        return groups

    def class_counts(self) -> Tensor:
        """``[num_classes]`` number of images in each class."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def indices_by_class(self) -> tuple[Tensor, Tensor]:
        """Image indices grouped by class, padded with -1.

        Returns:
            table: ``[num_classes, max_count]`` int64; row c lists the images of class c.
            counts: ``[num_classes]`` int64 number of valid entries in each row.
        """
        counts = self.class_counts()
        order = torch.argsort(self.labels, stable=True)
        width = int(counts.max()) if len(counts) else 0
        table = torch.full((self.num_classes, width), -1, dtype=torch.long)
        starts = torch.cumsum(counts, 0) - counts
        position_in_class = torch.arange(len(order)) - starts[self.labels[order]]
        table[self.labels[order], position_in_class] = order
        return table, counts


def to_float(images: Tensor) -> Tensor:
    """uint8 images to float32 in ``[0, 1]``, the input every backbone expects."""
    return images.to(torch.float32).div_(255.0)
