"""N-way K-shot episodes: the one data type that samplers, methods, training and evaluation share.

An episode is a small classification task. ``n_way`` classes are drawn from a dataset; each gets
``k_shot`` labelled *support* images and ``n_query`` *query* images to classify. Labels are
renumbered ``0..n_way-1`` inside the episode, so a method cannot use the dataset's class ids.

Every tensor carries a leading ``tasks`` axis, so a batch of tasks (what MAML meta-trains on) and a
single task (``tasks == 1``) are the same type.

Episode ``i`` of a sampler depends only on ``(seed, i)``: training can resume at episode ``i`` and
see exactly the episodes an uninterrupted run would have seen, and evaluation is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fslearn.data.dataset import FewShotDataset, to_float

__all__ = ["Episode", "EpisodeIndices", "EpisodeSampler"]


@dataclass(frozen=True)
class Episode:
    """A batch of few-shot tasks.

    Attributes:
        support_x: ``[tasks, n_way*k_shot, C, H, W]`` float images (or ``[tasks, n_way*k_shot, D]``
            features when the episode was gathered from precomputed embeddings).
        support_y: ``[tasks, n_way*k_shot]`` int64 episode labels in ``0..n_way-1``.
        query_x: ``[tasks, n_way*n_query, ...]`` like ``support_x``.
        query_y: ``[tasks, n_way*n_query]`` int64 episode labels.
        classes: ``[tasks, n_way]`` the dataset class behind each episode label.
        n_way: number of classes per task.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    classes: Tensor
    n_way: int

    @property
    def tasks(self) -> int:
        return int(self.support_y.shape[0])

    @property
    def k_shot(self) -> int:
        return int(self.support_y.shape[1]) // self.n_way

    @property
    def n_query(self) -> int:
        return int(self.query_y.shape[1]) // self.n_way

    def to(self, device: torch.device | str) -> Episode:
        """The same episode with its tensors on ``device``."""
        return Episode(
            support_x=self.support_x.to(device, non_blocking=True),
            support_y=self.support_y.to(device, non_blocking=True),
            query_x=self.query_x.to(device, non_blocking=True),
            query_y=self.query_y.to(device, non_blocking=True),
            classes=self.classes.to(device, non_blocking=True),
            n_way=self.n_way,
        )


@dataclass(frozen=True)
class EpisodeIndices:
    """Which dataset images make up an episode, before any pixels are gathered.

    Attributes:
        support: ``[tasks, n_way*k_shot]`` dataset image indices, class-major order.
        query: ``[tasks, n_way*n_query]`` dataset image indices, class-major order.
        classes: ``[tasks, n_way]`` dataset class of each episode label.
        k_shot, n_query: images per class in the support and query sets.
    """

    support: Tensor
    query: Tensor
    classes: Tensor
    k_shot: int
    n_query: int

    @property
    def n_way(self) -> int:
        return int(self.classes.shape[1])

    def labels(self, per_class: int) -> Tensor:
        """``[tasks, n_way*per_class]`` episode labels ``0,..,0,1,..,1,...`` (class-major)."""
        row = torch.arange(self.n_way).repeat_interleave(per_class)
        return row.expand(self.classes.shape[0], -1).contiguous()

    def gather(self, source: Tensor) -> Episode:
        """Build the episode from ``source``, indexed like the dataset.

        ``source`` is the dataset's uint8 images (turned into floats in ``[0, 1]``) or any tensor
        with one row per dataset image, such as precomputed embeddings ``[num_images, D]``.
        """
        support_x, query_x = source[self.support], source[self.query]
        if source.dtype == torch.uint8:
            support_x, query_x = to_float(support_x), to_float(query_x)
        return Episode(
            support_x=support_x,
            support_y=self.labels(self.k_shot),
            query_x=query_x,
            query_y=self.labels(self.n_query),
            classes=self.classes,
            n_way=self.n_way,
        )


class EpisodeSampler:
    """Draws reproducible N-way K-shot episodes from a :class:`FewShotDataset`.

    Args:
        dataset: where the classes and images come from.
        n_way: classes per task.
        k_shot: support images per class.
        n_query: query images per class.
        tasks: tasks per episode batch (the leading axis of every episode tensor).
        seed: episode ``i`` is a pure function of ``(seed, i)``.
        option_names: what the error messages call ``n_way``, ``k_shot`` and ``n_query``: the
            names of the options the caller took them from (e.g. the validation episodes'
            ``--val-way``, ``--val-shot``, ``--val-query``), so that a message names the one to
            change.

    Raises:
        ValueError: if the request cannot be met by the dataset (too many classes, or too few
            images in some class); the message names the numbers.
    """

    def __init__(
        self,
        dataset: FewShotDataset,
        n_way: int,
        k_shot: int,
        n_query: int,
        tasks: int = 1,
        seed: int = 0,
        *,
        option_names: tuple[str, str, str] = ("n_way", "k_shot", "n_query"),
    ) -> None:
        way_name, shot_name, query_name = option_names
        for name, value in ((way_name, n_way), (shot_name, k_shot), (query_name, n_query),
                            ("tasks", tasks)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if n_way > dataset.num_classes:
            raise ValueError(
                f"{way_name}={n_way} classes per episode were requested, but {dataset.name} has "
                f"only {dataset.num_classes} classes: lower {way_name} to at most "
                f"{dataset.num_classes}."
            )
        table, counts = dataset.indices_by_class()
        needed = k_shot + n_query
        smallest = int(torch.argmin(counts))
        if int(counts[smallest]) < needed:
            short = int((counts < needed).sum())
            raise ValueError(
                f"{shot_name} + {query_name} = {k_shot} + {n_query} = {needed} images per class "
                f"are needed, but class {dataset.class_names[smallest]!r} of {dataset.name} has "
                f"only {int(counts[smallest])} images ({short} of {dataset.num_classes} classes "
                f"have fewer than {needed}): lower {shot_name} or {query_name}, or leave those "
                f"classes out."
            )
        self.dataset = dataset
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.tasks, self.seed = tasks, seed
        self._table = table.numpy()
        self._counts = counts.numpy()

    def __repr__(self) -> str:
        return (
            f"EpisodeSampler({self.dataset.name}, n_way={self.n_way}, k_shot={self.k_shot}, "
            f"n_query={self.n_query}, tasks={self.tasks}, seed={self.seed})"
        )

    def indices(self, episode_index: int) -> EpisodeIndices:
        """The dataset indices of episode ``episode_index`` (a pure function of seed and index)."""
        if episode_index < 0:
            raise ValueError(f"episode_index must be non-negative, got {episode_index}")
        rng = np.random.default_rng([self.seed, episode_index])
        per_class = self.k_shot + self.n_query
        width = self._table.shape[1]
        classes = np.empty((self.tasks, self.n_way), dtype=np.int64)
        chosen = np.empty((self.tasks, self.n_way, per_class), dtype=np.int64)
        for task in range(self.tasks):
            classes[task] = rng.permutation(len(self._counts))[: self.n_way]
            # A random key per image, +inf for padding slots: sorting the keys gives a uniformly
            # random subset of each class without a Python loop over classes.
            keys = rng.random((self.n_way, width))
            keys[np.arange(width)[None, :] >= self._counts[classes[task]][:, None]] = np.inf
            picks = np.argsort(keys, axis=1)[:, :per_class]
            chosen[task] = np.take_along_axis(self._table[classes[task]], picks, axis=1)
        chosen_t = torch.from_numpy(chosen)
        return EpisodeIndices(
            support=chosen_t[:, :, : self.k_shot].reshape(self.tasks, -1),
            query=chosen_t[:, :, self.k_shot :].reshape(self.tasks, -1),
            classes=torch.from_numpy(classes),
            k_shot=self.k_shot,
            n_query=self.n_query,
        )

    def episode(self, episode_index: int) -> Episode:
        """Episode ``episode_index`` with float images in ``[0, 1]``."""
        return self.indices(episode_index).gather(self.dataset.images)

    def __iter__(self) -> Iterator[Episode]:
        """Episodes 0, 1, 2, ... without end."""
        index = 0
        while True:
            yield self.episode(index)
            index += 1
