"""N-way K-shot episodes: the one data type that samplers, methods, training and evaluation share.

An episode is a small classification task. ``n_way`` classes are drawn from a dataset; each gets
``k_shot`` labelled *support* images and ``n_query`` *query* images to classify. Labels are
renumbered ``0..n_way-1`` inside the episode, so a method cannot use the dataset's class ids.

Every tensor carries a leading ``tasks`` axis, so a batch of tasks (what MAML meta-trains on) and a
single task (``tasks == 1``) are the same type.

Episode ``i`` of a sampler depends only on ``(seed, i)``: training can resume at episode ``i`` and
see exactly the episodes an uninterrupted run would have seen, and evaluation is reproducible.

An episode may also carry *unlabelled* images (semi-supervised few-shot learning, Ren et al.
2018): more images of the episode's classes, and images of *distractor* classes that are not
among them, all without labels. The sampler draws them with ``unlabelled`` and ``distractors``;
with both 0 (the default) it draws exactly the episodes it always did.
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
        unlabelled_x: ``[tasks, n_unlabelled, ...]`` like ``support_x``: images given without
            labels (of the episode's classes and of distractor classes, shuffled), or None.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    classes: Tensor
    n_way: int
    unlabelled_x: Tensor | None = None

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
            unlabelled_x=(None if self.unlabelled_x is None
                          else self.unlabelled_x.to(device, non_blocking=True)),
        )


@dataclass(frozen=True)
class EpisodeIndices:
    """Which dataset images make up an episode, before any pixels are gathered.

    Attributes:
        support: ``[tasks, n_way*k_shot]`` dataset image indices, class-major order.
        query: ``[tasks, n_way*n_query]`` dataset image indices, class-major order.
        classes: ``[tasks, n_way]`` dataset class of each episode label.
        k_shot, n_query: images per class in the support and query sets.
        unlabelled: ``[tasks, n_unlabelled]`` dataset image indices of the unlabelled images
            (shuffled, so their order says nothing of their class), or None.
        distractors: ``[tasks, n_distractors]`` the distractor classes the unlabelled images
            also come from (never among ``classes``), or None.
    """

    support: Tensor
    query: Tensor
    classes: Tensor
    k_shot: int
    n_query: int
    unlabelled: Tensor | None = None
    distractors: Tensor | None = None

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
        unlabelled_x = None if self.unlabelled is None else source[self.unlabelled]
        if source.dtype == torch.uint8:
            support_x, query_x = to_float(support_x), to_float(query_x)
            unlabelled_x = None if unlabelled_x is None else to_float(unlabelled_x)
        return Episode(
            support_x=support_x,
            support_y=self.labels(self.k_shot),
            query_x=query_x,
            query_y=self.labels(self.n_query),
            classes=self.classes,
            n_way=self.n_way,
            unlabelled_x=unlabelled_x,
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
        unlabelled: unlabelled images drawn from each of the episode's classes (besides its
            support and query images, never one of them) and from each distractor class.
        distractors: classes outside the episode that only contribute unlabelled images.
        within_alphabet: draw all the classes of a task (and its distractors) from one alphabet
            (:meth:`~fslearn.data.dataset.FewShotDataset.classes_by_alphabet`), chosen uniformly
            among those with enough classes: Lake et al.'s within-alphabet episodes, harder than
            classes drawn from the whole dataset because letters of one script look alike.
        labelled_fraction: below 1, split each class's images once (seeded by ``seed``) into a
            labelled part, the first ``int(count * labelled_fraction)`` of a shuffle, and an
            unlabelled part, the rest: support and query images then come from the labelled
            part only and unlabelled images from the rest, as in Ren et al.'s training episodes
            (10% labelled: 2 of Omniglot's 20 drawings).

    With ``unlabelled = distractors = 0``, ``within_alphabet=False`` and ``labelled_fraction=1``
    (the defaults) the random draws are exactly those of a sampler without them: adding the
    settings changed no existing episode.

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
        unlabelled: int = 0,
        distractors: int = 0,
        within_alphabet: bool = False,
        labelled_fraction: float = 1.0,
    ) -> None:
        way_name, shot_name, query_name = option_names
        for name, value in ((way_name, n_way), (shot_name, k_shot), (query_name, n_query),
                            ("tasks", tasks)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, value in (("unlabelled", unlabelled), ("distractors", distractors)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if distractors and not unlabelled:
            raise ValueError(f"distractors={distractors} classes would give no image: they only "
                             f"add unlabelled images, so set unlabelled (images per class) too.")
        if (not isinstance(labelled_fraction, (int, float)) or isinstance(labelled_fraction, bool)
                or not 0 < labelled_fraction <= 1):
            raise ValueError(f"labelled_fraction must be a fraction in (0, 1], got "
                             f"{labelled_fraction!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if n_way + distractors > dataset.num_classes:
            wanted = f"{way_name}={n_way}" + (f" + distractors={distractors}" if distractors
                                              else "")
            raise ValueError(
                f"{wanted} classes per episode were requested, but {dataset.name} has "
                f"only {dataset.num_classes} classes: lower {way_name} to at most "
                f"{dataset.num_classes - distractors}."
            )
        self._alphabets = (_alphabets_with(dataset, n_way, distractors, way_name)
                           if within_alphabet else None)
        table, counts = dataset.indices_by_class()
        needed = k_shot + n_query + unlabelled
        smallest = int(torch.argmin(counts))
        if int(counts[smallest]) < needed:
            short = int((counts < needed).sum())
            raise ValueError(
                f"{shot_name} + {query_name}{' + unlabelled' * bool(unlabelled)} = {k_shot} + "
                f"{n_query}{f' + {unlabelled}' * bool(unlabelled)} = {needed} images per class "
                f"are needed, but class {dataset.class_names[smallest]!r} of {dataset.name} has "
                f"only {int(counts[smallest])} images ({short} of {dataset.num_classes} classes "
                f"have fewer than {needed}): lower {shot_name} or {query_name}, or leave those "
                f"classes out."
            )
        self.dataset = dataset
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.tasks, self.seed = tasks, seed
        self.unlabelled, self.distractors = unlabelled, distractors
        self.within_alphabet = within_alphabet
        self.labelled_fraction = labelled_fraction
        self._split = (None if labelled_fraction == 1 else
                       _checked_split(dataset, table.numpy(), counts.numpy(), labelled_fraction,
                                      seed, k_shot + n_query, unlabelled, option_names))
        self._table = table.numpy()
        self._counts = counts.numpy()

    def __repr__(self) -> str:
        return (
            f"EpisodeSampler({self.dataset.name}, n_way={self.n_way}, k_shot={self.k_shot}, "
            f"n_query={self.n_query}, tasks={self.tasks}, seed={self.seed}"
            + (f", unlabelled={self.unlabelled}, distractors={self.distractors}"
               if self.unlabelled else "")
            + (", within_alphabet=True" if self.within_alphabet else "")
            + (f", labelled_fraction={self.labelled_fraction}" if self._split else "") + ")"
        )

    def indices(self, episode_index: int) -> EpisodeIndices:
        """The dataset indices of episode ``episode_index`` (a pure function of seed and index)."""
        if episode_index < 0:
            raise ValueError(f"episode_index must be non-negative, got {episode_index}")
        rng = np.random.default_rng([self.seed, episode_index])
        per_class = self.k_shot + self.n_query + self.unlabelled
        drawn = self.n_way + self.distractors
        classes = np.empty((self.tasks, drawn), dtype=np.int64)
        chosen = np.empty((self.tasks, drawn, per_class), dtype=np.int64)
        unlabelled = np.empty((self.tasks, drawn * self.unlabelled), dtype=np.int64)
        for task in range(self.tasks):
            if self._alphabets is None:
                classes[task] = rng.permutation(len(self._counts))[:drawn]
            else:
                alphabet = self._alphabets[rng.integers(len(self._alphabets))]
                classes[task] = alphabet[rng.permutation(len(alphabet))[:drawn]]
            if self._split is None:
                chosen[task] = _pick(rng, self._table, self._counts, classes[task], per_class)
            else:
                # support and queries from the labelled images, the rest from the unlabelled
                labelled, unlabelled_pool = self._split
                chosen[task] = np.concatenate(
                    [_pick(rng, *labelled, classes[task], self.k_shot + self.n_query),
                     _pick(rng, *unlabelled_pool, classes[task], self.unlabelled)], axis=1)
            if self.unlabelled:
                # the last `unlabelled` picks of every class (episode and distractor), shuffled
                # so that their order gives nothing away
                unlabelled[task] = rng.permutation(chosen[task, :, -self.unlabelled:].ravel())
        chosen_t = torch.from_numpy(chosen[:, : self.n_way])
        return EpisodeIndices(
            support=chosen_t[:, :, : self.k_shot].reshape(self.tasks, -1),
            query=chosen_t[:, :, self.k_shot : self.k_shot + self.n_query].reshape(
                self.tasks, -1),
            classes=torch.from_numpy(classes[:, : self.n_way]),
            k_shot=self.k_shot,
            n_query=self.n_query,
            unlabelled=torch.from_numpy(unlabelled) if self.unlabelled else None,
            distractors=(torch.from_numpy(classes[:, self.n_way :]) if self.unlabelled
                         else None),
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


def _alphabets_with(dataset: FewShotDataset, n_way: int, distractors: int, way_name: str
                    ) -> list[np.ndarray]:
    """The class indices of each alphabet of ``dataset`` that has at least ``n_way +
    distractors`` classes."""
    classes = n_way + distractors
    alphabets = dataset.classes_by_alphabet()
    large = [np.asarray(members, dtype=np.int64) for members in alphabets.values()
             if len(members) >= classes]
    if not large:
        most = max(len(members) for members in alphabets.values())
        raise ValueError(f"within-alphabet episodes need {classes} classes of one alphabet, but "
                         f"the largest of the {len(alphabets)} alphabets of {dataset.name} has "
                         f"{most}: lower {way_name} to at most {most - distractors}"
                         f"{' (with the distractors)' * bool(distractors)}.")
    return large


def _pick(rng: np.random.Generator, table: np.ndarray, counts: np.ndarray, classes: np.ndarray,
          per_class: int) -> np.ndarray:
    """``[len(classes), per_class]`` images of each class, a uniformly random subset of its row
    of ``table`` (``counts`` valid entries per row)."""
    # A random key per image, +inf for padding slots: sorting the keys gives a uniformly random
    # subset of each class without a Python loop over classes.
    width = table.shape[1]
    keys = rng.random((len(classes), width))
    keys[np.arange(width)[None, :] >= counts[classes][:, None]] = np.inf
    picks = np.argsort(keys, axis=1)[:, :per_class]
    return np.take_along_axis(table[classes], picks, axis=1)


Pool = tuple[np.ndarray, np.ndarray]


def labelled_split(table: np.ndarray, counts: np.ndarray, fraction: float, seed: int
                   ) -> tuple[Pool, Pool]:
    """Each class's images split once into a labelled part, the first ``int(count * fraction)``
    of a seeded shuffle (Ren et al.'s ``label_split``), and an unlabelled part, the rest.

    Returns ``((labelled_table, labelled_counts), (unlabelled_table, unlabelled_counts))``,
    tables padded with -1 like :meth:`FewShotDataset.indices_by_class`.
    """
    # its own stream: episode i draws from the seed sequence [seed, i], this one from [seed, 0, 1]
    rng = np.random.default_rng([seed, 0, 1])
    labelled_counts = (counts * fraction).astype(np.int64)
    parts = (np.full_like(table, -1), np.full_like(table, -1))
    for label, count in enumerate(counts):
        shuffled = table[label, rng.permutation(count)]
        kept = labelled_counts[label]
        parts[0][label, :kept] = shuffled[:kept]
        parts[1][label, : count - kept] = shuffled[kept:]
    return (parts[0], labelled_counts), (parts[1], counts - labelled_counts)


def _checked_split(dataset: FewShotDataset, table: np.ndarray, counts: np.ndarray,
                   fraction: float, seed: int, shown: int, hidden: int,
                   option_names: tuple[str, str, str]) -> tuple[Pool, Pool]:
    """:func:`labelled_split`, refused where a class has too few labelled images for the support
    and query sets or too few others for the unlabelled ones."""
    labelled, unlabelled = labelled_split(table, counts, fraction, seed)
    for (_, have), need, what, kind in (
            (labelled, shown, f"{option_names[1]} + {option_names[2]}", "labelled"),
            (unlabelled, hidden, "unlabelled", "unlabelled")):
        short = int(np.argmin(have))
        if have[short] < need:
            raise ValueError(
                f"labelled_fraction={fraction} leaves class {dataset.class_names[short]!r} of "
                f"{dataset.name} {have[short]} {kind} images, but {what} = {need} are drawn "
                f"from them: change labelled_fraction, or lower {what}.")
    return labelled, unlabelled
