"""Episodes without labels: each "class" is one image, its examples are augmented copies of it.

Self-supervised few-shot pre-training (ProtoCLR, Medina, Devos and Grossglauser, 2020; UMTRA,
Khodadadeh et al., 2019) throws the labels away: an N-way episode is N distinct images drawn from
the whole training set, each augmented ``k_shot`` times for the support set and ``n_query`` times
for the query set. The sampler here is given the images only, never the labels, so it cannot use
them. The augmentation is written with torch operations (an affine resampling grid, a dropout
mask, an erased rectangle), as torchvision cannot be assumed.

Episode ``i`` is a pure function of ``(seed, i)``: images and augmentations alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.data.dataset import to_float
from fslearn.data.episodes import Episode

__all__ = ["AUGMENTATION", "ContrastiveEpisodeSampler", "augment", "crop_windows"]

#: ProtoTransfer's Omniglot augmentation (indy-lab/ProtoTransfer, ``omni-mini/prototransfer/
#: unlabelled_loader.py``, ``get_omniglot_transform``): a random resized crop of 0.6 to 1.4 of
#: the area with aspect ratio 3/4 to 4/3, horizontal and vertical flips each with probability
#: 1/2, pixel dropout with p = 0.3 (survivors scaled by 1/0.7, as ``F.dropout`` does) and random
#: erasing (probability 1/2, 2% to 33% of the area, aspect 0.3 to 3.3, set to 0)
AUGMENTATION = {"crop_scale": (0.6, 1.4), "crop_ratio": (3 / 4, 4 / 3), "flip": 0.5,
                "dropout": 0.3, "erase": 0.5, "erase_scale": (0.02, 0.33),
                "erase_ratio": (0.3, 3.3)}


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _log_uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return _uniform(n, math.log(low), math.log(high), generator).exp()


def _tries(batch: int, limits: tuple[int, int], scale: tuple[float, float],
           ratio: tuple[float, float], generator: torch.Generator, strict: bool
           ) -> tuple[Tensor, Tensor, Tensor]:
    """torchvision's window draws: up to 10 tries of an area of ``scale`` times the image's
    and an aspect ratio ``r`` log-uniform in ``ratio``, sides ``sqrt(area * r)`` and
    ``sqrt(area / r)`` rounded to whole pixels; the first try whose sides fit ``limits``
    (``strict``: are smaller, as ``RandomErasing`` asks) is kept.

    Returns:
        ``[batch]`` the two sides, in the order of ``limits``, and whether a try fitted.
    """
    tries = 10
    area = _uniform(batch * tries, *scale, generator).view(batch, tries) * limits[0] * limits[1]
    aspect = _log_uniform(batch * tries, *ratio, generator).view(batch, tries)
    first_side = torch.round(torch.sqrt(area * aspect)).long()
    second_side = torch.round(torch.sqrt(area / aspect)).long()
    if strict:
        fits = (first_side < limits[0]) & (second_side < limits[1])
    else:
        fits = (first_side <= limits[0]) & (second_side <= limits[1])
    fits &= (first_side > 0) & (second_side > 0)
    first = fits.int().argmax(dim=1)  # the first try that fits (0 when none does)
    rows = torch.arange(batch)
    return first_side[rows, first], second_side[rows, first], fits.any(dim=1)


def crop_windows(batch: int, height: int, width: int, generator: torch.Generator
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Random resized crops' windows as torchvision's ``RandomResizedCrop`` draws them.

    Up to 10 tries (:func:`_tries`) of an area of ``crop_scale`` times the image's and an
    aspect ratio from ``crop_ratio``; the first window that fits is kept, at a uniform
    position; an image with no fitting try keeps a central crop of the largest window of an
    allowed aspect (the whole image when it is square). With scales up to 1.4, a window that
    does not fit is drawn again rather than clipped: clipping would make a third of the crops
    the whole image, as against about 2% here.

    Returns:
        ``(top, left, crop_height, crop_width)``, each ``[batch]`` int64.
    """
    a = AUGMENTATION
    # RandomResizedCrop's ratio is width / height
    crop_w, crop_h, found = _tries(batch, (width, height), a["crop_scale"], a["crop_ratio"],
                                   generator, strict=False)
    low, high = a["crop_ratio"]
    if width / height < low:
        fallback_w, fallback_h = width, round(width / low)
    elif width / height > high:
        fallback_w, fallback_h = round(height * high), height
    else:
        fallback_w, fallback_h = width, height
    crop_w = torch.where(found, crop_w, fallback_w)
    crop_h = torch.where(found, crop_h, fallback_h)
    top = (torch.rand(batch, generator=generator) * (height - crop_h + 1)).long()
    left = (torch.rand(batch, generator=generator) * (width - crop_w + 1)).long()
    top = torch.where(found, top, (height - crop_h) // 2)
    left = torch.where(found, left, (width - crop_w) // 2)
    return top, left, crop_h, crop_w


def augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """ProtoTransfer's Omniglot augmentation (:data:`AUGMENTATION`), one draw per image.

    The crop's window (:func:`crop_windows`) is resampled to the image's size bilinearly by a
    sampling grid (pixel centres, as PIL's resize), flipped, then pixels are dropped and a
    rectangle erased.

    Args:
        images: ``[batch, C, H, W]`` floats in ``[0, 1]``.
        generator: the source of every random choice.

    Returns:
        ``[batch, C, H, W]``, the augmented copies.
    """
    a = AUGMENTATION
    batch, _, height, width = images.shape
    top, left, crop_h, crop_w = (t.to(images.dtype) for t in crop_windows(batch, height, width,
                                                                          generator))
    flip_x = torch.where(torch.rand(batch, generator=generator) < a["flip"], -1.0, 1.0)
    flip_y = torch.where(torch.rand(batch, generator=generator) < a["flip"], -1.0, 1.0)
    theta = torch.zeros(batch, 2, 3, dtype=images.dtype)
    # the window in the grid's coordinates, -1 and 1 the image's outer edges
    theta[:, 0, 0], theta[:, 0, 2] = crop_w / width * flip_x, (2 * left + crop_w) / width - 1
    theta[:, 1, 1], theta[:, 1, 2] = crop_h / height * flip_y, (2 * top + crop_h) / height - 1
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    keep = torch.rand(out.shape, generator=generator) >= a["dropout"]
    out = out * keep.to(out.dtype) / (1 - a["dropout"])
    return _erase(out, generator)


def _erase(images: Tensor, generator: torch.Generator) -> Tensor:
    """Random erasing as torchvision's ``RandomErasing`` draws it: with probability
    ``AUGMENTATION["erase"]`` a rectangle (up to 10 tries to fit one inside the image, else
    nothing) set to 0."""
    a = AUGMENTATION
    batch, _, height, width = images.shape
    erase = torch.rand(batch, generator=generator) < a["erase"]
    # RandomErasing's ratio is height / width
    h, w, found = _tries(batch, (height, width), a["erase_scale"], a["erase_ratio"], generator,
                         strict=True)
    top = (torch.rand(batch, generator=generator) * (height - h + 1)).long()
    left = (torch.rand(batch, generator=generator) * (width - w + 1)).long()
    rows, cols = torch.arange(height), torch.arange(width)
    inside = (((rows[None] >= top[:, None]) & (rows[None] < (top + h)[:, None]))[:, :, None]
              & ((cols[None] >= left[:, None]) & (cols[None] < (left + w)[:, None]))[:, None])
    inside = inside & (erase & found)[:, None, None]
    return images.masked_fill(inside[:, None], 0.0)


class ContrastiveEpisodeSampler:
    """N-way episodes of unlabelled images: each class is one image, its support and query
    examples augmented copies of it.

    Args:
        images: ``[num_images, C, H, W]`` uint8 (or float in ``[0, 1]``) images, without labels.
        n_way: distinct images per episode (its classes).
        k_shot: augmented copies of each image in the support set.
        n_query: augmented copies of each image in the query set.
        tasks: episodes per batch.
        seed: episode ``i`` (images and augmentations) is a pure function of ``(seed, i)``.
        augment_support: augment the support copies too; by default they are the image itself,
            as in ProtoTransfer's Omniglot runs (``--no_aug_support``), and only the queries
            are augmented.

    Raises:
        ValueError: non-positive sizes, or more images per episode than there are images.
    """

    def __init__(self, images: Tensor, n_way: int, k_shot: int = 1, n_query: int = 3,
                 tasks: int = 1, seed: int = 0, augment_support: bool = False) -> None:
        for name, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query),
                            ("tasks", tasks)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if images.dim() != 4:
            raise ValueError(f"images must be [num_images, C, H, W], got {tuple(images.shape)}")
        if n_way > images.shape[0]:
            raise ValueError(f"n_way={n_way} distinct images per episode were requested, but "
                             f"there are only {images.shape[0]}: lower n_way.")
        self.images, self.n_way, self.k_shot, self.n_query = images, n_way, k_shot, n_query
        self.tasks, self.seed, self.augment_support = tasks, seed, augment_support

    def __repr__(self) -> str:
        return (f"ContrastiveEpisodeSampler({self.images.shape[0]} images, n_way={self.n_way}, "
                f"k_shot={self.k_shot}, n_query={self.n_query}, tasks={self.tasks}, "
                f"seed={self.seed}, augment_support={self.augment_support})")

    def sources(self, episode_index: int) -> Tensor:
        """``[tasks, n_way]`` the image index behind each label of episode ``episode_index``."""
        rng = np.random.default_rng([self.seed, episode_index])
        chosen = [rng.choice(self.images.shape[0], self.n_way, replace=False)
                  for _ in range(self.tasks)]
        return torch.from_numpy(np.stack(chosen)).long()

    def episode(self, episode_index: int) -> Episode:
        """Episode ``episode_index``: label ``n`` is image ``sources[:, n]``; the support set
        holds ``k_shot`` copies of it (augmented if :attr:`augment_support`), the query set
        ``n_query`` augmented ones, class-major. ``classes`` holds the source images' indices
        (there are no classes)."""
        if episode_index < 0:
            raise ValueError(f"episode_index must be non-negative, got {episode_index}")
        sources = self.sources(episode_index)
        seed = int(np.random.default_rng([self.seed, episode_index, 1]).integers(2**62))
        generator = torch.Generator().manual_seed(seed)
        originals = self.images[sources.flatten()]
        if originals.dtype == torch.uint8:
            originals = to_float(originals)
        per_image = self.k_shot + self.n_query
        copies = originals.repeat_interleave(per_image, dim=0)  # image-major
        views = copies.view(self.tasks, self.n_way, per_image, *copies.shape[1:])
        if self.augment_support:
            views = augment(copies, generator).view_as(views)
        else:
            queries = views[:, :, self.k_shot :]
            views = torch.cat([views[:, :, : self.k_shot], augment(
                queries.flatten(0, 2), generator).view_as(queries)], dim=2)
        labels = torch.arange(self.n_way)
        return Episode(
            support_x=views[:, :, : self.k_shot].flatten(1, 2),
            support_y=labels.repeat_interleave(self.k_shot).expand(self.tasks, -1).contiguous(),
            query_x=views[:, :, self.k_shot :].flatten(1, 2),
            query_y=labels.repeat_interleave(self.n_query).expand(self.tasks, -1).contiguous(),
            classes=sources,
            n_way=self.n_way,
        )

    def __iter__(self) -> Iterator[Episode]:
        index = 0
        while True:
            yield self.episode(index)
            index += 1
