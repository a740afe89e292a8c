"""More support examples from the ones an episode has: random affine jitter at test time.

A 1-shot support set gives one image per class. Small rotations, shifts and changes of scale
leave a handwritten character the same character, so jittered copies of a support image are
more examples of its class, for free. :class:`SupportAugmented` wraps any few-shot method:
before the method sees an episode, each support image is joined by ``copies`` jittered copies
with its label, so the method scores the queries from ``K (1 + copies)`` examples per class.
For a prototypical network this averages each class's prototype over the jittered copies; a
method that fine-tunes (Baseline, MAML) fine-tunes on them all.

The queries are left alone: the model is asked about the test images as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.data.episodes import Episode
from fslearn.methods.base import FewShotMethod

__all__ = ["AffineJitter", "SupportAugmented"]


@dataclass(frozen=True)
class AffineJitter:
    """A random affine transformation per image: rotation by up to ``degrees``, a shift of up
    to ``shift`` of the image's side along each axis, and a scale from ``1 - scale`` to
    ``1 + scale``, all drawn uniformly and independently.

    The defaults (10 degrees, 10% shift, 10% scale) are small enough that a character stays
    itself; they are the kind of jitter used to augment Omniglot in training (Koch et al. 2015
    draw rotations within 10 degrees and shifts within 2 pixels of 105).
    """

    degrees: float = 10.0
    shift: float = 0.1
    scale: float = 0.1

    def __post_init__(self) -> None:
        for name, value, top in (("degrees", self.degrees, 180.0), ("shift", self.shift, 1.0),
                                 ("scale", self.scale, 0.9)):
            if not 0 <= value <= top:
                raise ValueError(f"AffineJitter.{name} must be from 0 to {top:g}, got {value!r}.")

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """``images: [B, C, H, W]`` -> ``[B, C, H, W]``, each moved by its own draw.

        Pixels brought in from outside the image repeat its border (the background, for
        characters), and values stay in the images' range (bilinear interpolation).
        """
        if images.dim() != 4:
            raise ValueError(f"AffineJitter takes images [B, C, H, W], got shape "
                             f"{tuple(images.shape)}.")
        batch = images.shape[0]

        def uniform(half_width: float) -> Tensor:
            draw = torch.rand(batch, generator=generator, dtype=torch.float64)
            return ((2 * draw - 1) * half_width).to(images.dtype)

        angle = uniform(math.radians(self.degrees))
        zoom = 1 + uniform(self.scale)
        # affine_grid maps output coordinates to input ones, in [-1, 1]: a shift of s of the
        # side is 2s there; dividing by the zoom magnifies the content by it
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, 2 * uniform(self.shift)], dim=1),
                             torch.stack([sin, cos, 2 * uniform(self.shift)], dim=1)], dim=1)
        grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)


class SupportAugmented(FewShotMethod):
    """``method`` scoring each episode from its support set plus ``copies`` jittered copies of
    every support image (test-time support augmentation).

    The copies of an evaluation are a function of ``seed`` and of the episodes' order: the same
    evaluation, run again from a fresh wrapper (or after :meth:`reset`), sees the same copies.
    It tests a trained method; it is not trained itself.
    """

    def __init__(self, method: FewShotMethod, copies: int = 4,
                 jitter: AffineJitter | None = None, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(copies, int) or copies < 0:
            raise ValueError(f"copies must be a whole number of jittered copies (0 or more), "
                             f"got {copies!r}.")
        self.method = method
        self.copies, self.jitter, self.seed = copies, jitter or AffineJitter(), seed
        self.name = f"{method.name}+jitter"
        self.hparams = {"method": method.name, "copies": copies, "seed": seed,
                        **{f"jitter_{k}": v for k, v in vars(self.jitter).items()}}
        self.reset()

    def reset(self) -> None:
        """Start the copies' random draws again from ``seed``."""
        self._generator = torch.Generator().manual_seed(self.seed)

    @property
    def fixed_way(self) -> int | None:
        return self.method.fixed_way

    def augment(self, episode: Episode) -> Episode:
        """The episode with ``K (1 + copies)`` support images per class, class-major as
        every episode: each class's own images first, then their copies.

        ``episode.support_x: [tasks, n_way*k_shot, C, H, W]`` ->
        ``[tasks, n_way*k_shot*(1 + copies), C, H, W]``; ``support_y`` to match.
        """
        if self.copies == 0:
            return episode
        if episode.support_x.dim() != 5:
            raise ValueError("SupportAugmented jitters images [tasks, n_way*k_shot, C, H, W]; "
                             "this episode holds embeddings: evaluate with embed_once=False.")
        tasks, n_way, k_shot = episode.tasks, episode.n_way, episode.k_shot
        images = episode.support_x.reshape(tasks, n_way, k_shot, *episode.support_x.shape[2:])
        flat = images.repeat(1, 1, self.copies, 1, 1, 1).flatten(0, 2)
        copies = self.jitter(flat.cpu(), self._generator).to(flat.device)
        support = torch.cat([images, copies.reshape(tasks, n_way, k_shot * self.copies,
                                                    *images.shape[3:])], dim=2)
        labels = episode.support_y.reshape(tasks, n_way, k_shot)
        labels = torch.cat([labels, labels.repeat(1, 1, self.copies)], dim=2)
        return Episode(support_x=support.flatten(1, 2), support_y=labels.flatten(1),
                       query_x=episode.query_x, query_y=episode.query_y,
                       classes=episode.classes, n_way=n_way, unlabelled_x=episode.unlabelled_x)

    def forward(self, episode: Episode) -> Tensor:
        """The wrapped method's scores ``[tasks, n_way*n_query, n_way]`` of the queries, from
        the augmented support set."""
        return self.method(self.augment(episode))
