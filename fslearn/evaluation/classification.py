"""Classification tests: mean accuracy over N-way K-shot test episodes with its 95% confidence
interval (:func:`evaluate`, :class:`EvaluationResult`), which dataset classes are taken for which
(:func:`confusion_counts`), and the embeddings that let a method that sees images only through
them embed each test image once (:func:`embed_dataset`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fslearn._modes import evaluation_mode
from fslearn.data.dataset import FewShotDataset, to_float
from fslearn.data.episodes import EpisodeIndices, EpisodeSampler
from fslearn.evaluation.common import (
    PerEpisodeResult,
    check_interval_episodes,
    confidence_interval95,
)
from fslearn.methods.base import FewShotMethod, MetricMethod
from fslearn.precision import computing_in

__all__ = ["EvaluationResult", "confusion_counts", "embed_dataset", "evaluate",
           "extra_report_rows", "report_rows"]


@dataclass(frozen=True)
class EvaluationResult(PerEpisodeResult):
    """Accuracy over test episodes (fractions, not percentages)."""

    accuracy: float
    ci95: float
    episodes: int
    n_way: int
    k_shot: int
    n_query: int
    seed: int
    dataset: str
    per_episode: list[float] = field(repr=False)
    within_alphabet: bool = False
    unlabelled: int = 0
    distractors: int = 0

    def __str__(self) -> str:
        unlabelled = (f", {self.unlabelled} unlabelled per class"
                      + f", {self.distractors} distractor classes" * bool(self.distractors)
                      if self.unlabelled else "")
        return (
            f"{self.n_way}-way {self.k_shot}-shot{unlabelled}"
            f"{' within one alphabet' * self.within_alphabet}: {100 * self.accuracy:.2f}% "
            f"+/- {100 * self.ci95:.2f}% (95% CI over {self.episodes} episodes of {self.dataset})"
        )

    def to_dict(self, per_episode: bool = False) -> dict[str, object]:
        result = super().to_dict(per_episode)
        for setting in ("within_alphabet", "unlabelled", "distractors"):
            if not result[setting]:
                result.pop(setting)  # as every result read before the settings existed
        return result


@torch.no_grad()
def embed_dataset(
    method: MetricMethod, dataset: FewShotDataset, device: torch.device | str = "cpu",
    batch_size: int = 128,
) -> Tensor:
    """``[num_images, D]`` embeddings of every image, in evaluation mode."""
    chunks = []
    for start in range(0, len(dataset), batch_size):
        images = to_float(dataset.images[start : start + batch_size]).to(device)
        chunks.append(method.embed(images))
    return torch.cat(chunks)


@torch.no_grad()
def evaluate(
    method: FewShotMethod,
    dataset: FewShotDataset,
    n_way: int,
    k_shot: int,
    n_query: int = 15,
    episodes: int = 1000,
    seed: int = 0,
    device: torch.device | str | None = None,
    episodes_per_batch: int = 50,
    embed_once: bool | None = None,
    embeddings: Tensor | None = None,
    progress: bool = False,
    *,
    unlabelled: int = 0,
    distractors: int = 0,
    within_alphabet: bool = False,
    precision: str = "float32",
) -> EvaluationResult:
    """Mean query accuracy of ``method`` over ``episodes`` test episodes, with its 95% CI.

    Episode ``i`` is the same for every method (it depends only on ``seed`` and ``i``), so two
    methods evaluated with the same arguments face exactly the same tasks.

    Args:
        method: any :class:`FewShotMethod`; it is put in evaluation mode (and restored after).
        dataset: the test classes.
        n_way, k_shot, n_query: the episode shape (queries per class; 15 is the common choice).
        episodes: number of test episodes; report figures over at least 600.
        seed: which episodes.
        device: where to compute; defaults to the method's device.
        episodes_per_batch: episodes scored together (as a batch of tasks).
        embed_once: embed each test image once and build episodes from the embeddings. Exact for
            a :class:`MetricMethod` in evaluation mode; defaults to True for the methods that
            declare :attr:`~fslearn.methods.FewShotMethod.embeds_once` (every MetricMethod).
        embeddings: ``embed_dataset(method, dataset)`` computed beforehand, to evaluate several
            episode shapes without embedding the images again (implies ``embed_once``).
        progress: show a progress bar.
        unlabelled, distractors: give each episode unlabelled images, this many of each of its
            classes and of each of ``distractors`` other classes (semi-supervised episodes,
            :class:`~fslearn.data.episodes.EpisodeSampler`); 0 (the default) for none, and the
            episodes are then exactly those drawn without these settings.
        within_alphabet: draw the classes of each episode from one alphabet (or script), as
            Lake et al.'s within-alphabet tests do: harder, since letters of one script look
            alike (:class:`~fslearn.data.episodes.EpisodeSampler`).
        precision: ``"float32"``, or ``"bf16"`` to compute under bfloat16 autocast where the
            device has it (:mod:`fslearn.precision`); the figures then differ from float32's
            by bfloat16's rounding.
    """
    check_interval_episodes(episodes)
    accuracies = [
        (predictions == query_y).float().mean(dim=1).cpu()
        for _, predictions, query_y in _predict_episodes(
            method, dataset, n_way, k_shot, n_query, episodes, seed, device, episodes_per_batch,
            embed_once, embeddings, progress, unlabelled=unlabelled, distractors=distractors,
            within_alphabet=within_alphabet, precision=precision)
    ]
    per_episode = torch.cat(accuracies).double()
    return EvaluationResult(
        accuracy=float(per_episode.mean()),
        ci95=confidence_interval95(per_episode),
        episodes=episodes,
        n_way=n_way,
        k_shot=k_shot,
        n_query=n_query,
        seed=seed,
        dataset=dataset.name,
        per_episode=per_episode.tolist(),
        within_alphabet=within_alphabet,
        unlabelled=unlabelled,
        distractors=distractors,
    )


@torch.no_grad()
def confusion_counts(
    method: FewShotMethod,
    dataset: FewShotDataset,
    n_way: int,
    k_shot: int,
    n_query: int = 15,
    episodes: int = 1000,
    seed: int = 0,
    device: torch.device | str | None = None,
    episodes_per_batch: int = 50,
    embeddings: Tensor | None = None,
) -> Tensor:
    """How often a query of each dataset class was predicted as each other class.

    The episodes are those of :func:`evaluate` with the same arguments. Entry ``[a, b]`` counts
    the queries of class ``a`` labelled as class ``b``; the diagonal counts the correct ones, so
    ``counts.sum()`` is the number of queries, ``episodes * n_way * n_query``.

    Returns:
        ``[dataset.num_classes, dataset.num_classes]`` counts (int64).
    """
    counts = torch.zeros(dataset.num_classes, dataset.num_classes, dtype=torch.int64)
    for indices, predictions, query_y in _predict_episodes(
            method, dataset, n_way, k_shot, n_query, episodes, seed, device, episodes_per_batch,
            None, embeddings, False):
        classes = indices.classes.to(predictions.device)
        true_class = classes.gather(1, query_y).flatten().cpu()
        predicted_class = classes.gather(1, predictions).flatten().cpu()
        counts.index_put_((true_class, predicted_class),
                          torch.ones(len(true_class), dtype=torch.int64), accumulate=True)
    return counts


def _predict_episodes(
    method: FewShotMethod,
    dataset: FewShotDataset,
    n_way: int,
    k_shot: int,
    n_query: int,
    episodes: int,
    seed: int,
    device: torch.device | str | None,
    episodes_per_batch: int,
    embed_once: bool | None,
    embeddings: Tensor | None,
    progress: bool,
    *,
    unlabelled: int = 0,
    distractors: int = 0,
    within_alphabet: bool = False,
    precision: str = "float32",
) -> Iterator[tuple[EpisodeIndices, Tensor, Tensor]]:
    """Yield ``(indices, predictions, query_y)`` for batches of the test episodes, in order.

    ``predictions`` and ``query_y`` are ``[batch, n_way*n_query]`` episode labels. The method is
    in evaluation mode while this runs, and back in its previous mode afterwards.
    """
    if device is None:
        device = next(iter(method.parameters()), torch.empty(0)).device
    if embeddings is not None and len(embeddings) != len(dataset):
        raise ValueError(f"embeddings has {len(embeddings)} rows but {dataset.name} has "
                         f"{len(dataset)} images; compute it with embed_dataset(method, dataset).")
    if embed_once is None:
        embed_once = method.embeds_once or embeddings is not None
    if embed_once and not method.embeds_once:
        raise ValueError(f"embed_once needs a MetricMethod; {type(method).__name__} is not one.")
    sampler = EpisodeSampler(dataset, n_way, k_shot, n_query, tasks=1, seed=seed,
                             unlabelled=unlabelled, distractors=distractors,
                             within_alphabet=within_alphabet)
    with evaluation_mode(method), computing_in(precision, device):
        if embeddings is not None:
            source = embeddings.to(device)
        elif embed_once:
            source = embed_dataset(method, dataset, device)  # type: ignore[arg-type]
        else:
            source = dataset.images
        for start in tqdm(range(0, episodes, episodes_per_batch), disable=not progress,
                          desc=f"{n_way}-way {k_shot}-shot", leave=False):
            stop = min(start + episodes_per_batch, episodes)
            indices = _stack([sampler.indices(i) for i in range(start, stop)])
            episode = indices.gather(source).to(device)
            yield indices, method(episode).argmax(dim=-1), episode.query_y


def _stack(batch: list[EpisodeIndices]) -> EpisodeIndices:
    """Single-task episodes side by side as one batch of tasks."""
    return EpisodeIndices(
        support=torch.cat([b.support for b in batch]),
        query=torch.cat([b.query for b in batch]),
        classes=torch.cat([b.classes for b in batch]),
        k_shot=batch[0].k_shot,
        n_query=batch[0].n_query,
        unlabelled=(None if batch[0].unlabelled is None
                    else torch.cat([b.unlabelled for b in batch])),  # type: ignore[misc]
        distractors=(None if batch[0].distractors is None
                     else torch.cat([b.distractors for b in batch])),  # type: ignore[misc]
    )


def report_rows(
    method: FewShotMethod,
    dataset: FewShotDataset,
    settings: Sequence[tuple[int, int]],
    paper: Mapping[tuple[int, int], float],
    n_query: int,
    episodes: int,
    seed: int,
    device: torch.device | str | None = None,
    progress: bool = False,
    per_episode: bool = False,
) -> list[dict[str, Any]]:
    """The rows of ``fslearn report`` for a classifier: :func:`evaluate`'s figures for each
    ``(n_way, k_shot)`` of ``settings`` the method can score (a method with a head of
    :attr:`~fslearn.methods.FewShotMethod.fixed_way` classes: its own ``n_way`` only), beside
    ``paper_accuracy``, the published figure for that setting (None where there is none);
    ``per_episode``: each row also holds its episodes' accuracies (``"per_episode"``)."""
    rows: list[dict[str, Any]] = []
    # a method that sees images only through their embeddings (declared embeds_once) is
    # scored on embeddings computed once for all settings
    embeddings = (embed_dataset(method, dataset, device)  # type: ignore[arg-type]
                  if method.embeds_once else None)
    # a model with a head of n_way classes scores n_way-way tasks only
    head = method.fixed_way
    for n_way, k_shot in settings:
        if head is not None and n_way != head:
            continue
        result = evaluate(method, dataset, n_way, k_shot, n_query, episodes,
                          seed=seed, device=device, embeddings=embeddings,
                          progress=progress)
        rows.append({**result.to_dict(per_episode), "paper_accuracy": paper.get((n_way, k_shot))})
    return rows


def extra_report_rows(
    method: FewShotMethod,
    dataset: FewShotDataset,
    settings: Sequence[Mapping[str, Any]],
    with_paper: bool,
    episodes: int,
    seed: int,
    device: torch.device | str | None = None,
    progress: bool = False,
    per_episode: bool = False,
) -> list[dict[str, Any]]:
    """``fslearn report``'s rows for the method's own test episodes
    (:meth:`~fslearn.methods.FewShotMethod.extra_test_settings`): :func:`evaluate`'s figures
    for each, beside its ``paper_accuracy`` where ``with_paper`` (the papers' test classes);
    with ``per_episode``, each episode's accuracy too (for paired comparisons)."""
    rows: list[dict[str, Any]] = []
    embeddings = (embed_dataset(method, dataset, device)  # type: ignore[arg-type]
                  if method.embeds_once and settings else None)
    for setting in settings:
        episode_shape = {key: value for key, value in setting.items() if key != "paper_accuracy"}
        result = evaluate(method, dataset, episodes=episodes, seed=seed, device=device,
                          embeddings=embeddings, progress=progress, **episode_shape)
        rows.append({**result.to_dict(per_episode),
                     "paper_accuracy": setting.get("paper_accuracy") if with_paper else None})
    return rows
