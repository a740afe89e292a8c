"""Few-shot evaluation: mean accuracy over many test episodes with its 95% confidence interval.

A single episode's accuracy is noisy (5-way 1-shot with 15 queries per class scores in steps of
1/75), so papers report the mean over hundreds of episodes with the interval
``1.96 * std / sqrt(episodes)``, the normal approximation of the 95% confidence interval of the
mean. Two methods whose intervals overlap cannot be told apart by that experiment.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fslearn._modes import evaluation_mode
from fslearn.data.dataset import FewShotDataset, to_float
from fslearn.data.episodes import Episode, EpisodeIndices, EpisodeSampler
from fslearn.data.sequences import SequenceTasks
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.methods.base import FewShotMethod, MetricMethod
from fslearn.methods.sequence import correct_steps

__all__ = [
    "SHOT_EQUIVALENT_NOTE",
    "EvaluationResult",
    "RegressionResult",
    "SequenceResult",
    "confidence_interval95",
    "confusion_counts",
    "embed_dataset",
    "evaluate",
    "evaluate_regression",
    "evaluate_sequences",
]

#: the standard minimum number of test episodes for a reported figure
MIN_REPORTED_EPISODES = 600


def confidence_interval95(accuracies: Sequence[float] | Tensor) -> float:
    """Half-width of the 95% confidence interval of the mean: ``1.96 * s / sqrt(n)``.

    ``s`` is the sample standard deviation (``n - 1`` in the denominator) of the per-episode
    accuracies and ``n`` their number. The interval is ``mean +/- this value``.
    """
    values = torch.as_tensor(accuracies, dtype=torch.float64).flatten()
    if values.numel() < 2:
        raise ValueError(
            f"A confidence interval needs at least 2 episode accuracies, got {values.numel()}."
        )
    return float(1.96 * values.std(correction=1) / math.sqrt(values.numel()))


class _PerEpisodeResult:
    """What the result types share: a JSON-ready dict, per-episode figures only on request."""

    def to_dict(self, per_episode: bool = False) -> dict[str, object]:
        result = asdict(self)  # type: ignore[call-overload]
        if not per_episode:
            result.pop("per_episode")
        return result


@dataclass(frozen=True)
class EvaluationResult(_PerEpisodeResult):
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

    def __str__(self) -> str:
        return (
            f"{self.n_way}-way {self.k_shot}-shot: {100 * self.accuracy:.2f}% "
            f"+/- {100 * self.ci95:.2f}% (95% CI over {self.episodes} episodes of {self.dataset})"
        )


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
    """
    if episodes < 2:
        raise ValueError(f"episodes must be at least 2 to give a confidence interval, got "
                         f"{episodes}; report figures over at least {MIN_REPORTED_EPISODES}.")
    accuracies = [
        (predictions == query_y).float().mean(dim=1).cpu()
        for _, predictions, query_y in _predict_episodes(
            method, dataset, n_way, k_shot, n_query, episodes, seed, device, episodes_per_batch,
            embed_once, embeddings, progress)
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
    sampler = EpisodeSampler(dataset, n_way, k_shot, n_query, tasks=1, seed=seed)
    with evaluation_mode(method):
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
    )


@dataclass(frozen=True)
class RegressionResult(_PerEpisodeResult):
    """Mean squared error over test tasks after ``steps`` inner steps, with its 95% CI."""

    mse: float
    ci95: float
    steps: int
    episodes: int
    k_shot: int
    n_query: int
    seed: int
    per_episode: list[float] = field(repr=False)

    def __str__(self) -> str:
        return (f"K={self.k_shot}, {self.steps} step{'s' if self.steps != 1 else ''}: MSE "
                f"{self.mse:.3f} +/- {self.ci95:.3f} (95% CI over {self.episodes} tasks)")



@torch.no_grad()
def evaluate_regression(
    method: FewShotMethod,
    tasks: SinusoidRegression,
    k_shot: int,
    steps: Sequence[int] = (1, 5, 10),
    n_query: int = 100,
    episodes: int = 600,
    seed: int = 0,
    episodes_per_batch: int = 100,
) -> list[RegressionResult]:
    """Mean squared error on the query points of ``episodes`` test tasks, after each number of
    inner steps in ``steps`` on ``k_shot`` support points (the method's ``test_inner_steps`` is
    set to each in turn, and restored). The same tasks for every method and number of steps,
    drawn from the sampler's ``"test"`` stream, which training never uses."""
    if episodes < 2:
        raise ValueError(f"episodes must be at least 2 to give a confidence interval, got "
                         f"{episodes}; report figures over at least {MIN_REPORTED_EPISODES}.")
    if not hasattr(method, "test_inner_steps"):
        raise ValueError(f"{type(method).__name__} does not adapt by inner steps.")
    sampler = tasks.sampler(k_shot, n_query, tasks=1, seed=seed, split="test")
    device = next(iter(method.parameters())).device
    results = []
    # test_inner_steps is set to each count in turn below; the block puts back the method's own
    with evaluation_mode(method, test_inner_steps=method.test_inner_steps):
        for count in steps:
            method.test_inner_steps = count
            errors = []
            for start in range(0, episodes, episodes_per_batch):
                batch = [sampler.episode(i) for i in range(start, min(start + episodes_per_batch,
                                                                      episodes))]
                episode = Episode(*(torch.cat([getattr(e, name) for e in batch]) for name in (
                    "support_x", "support_y", "query_x", "query_y", "classes")), n_way=1)
                predictions = method(episode.to(device)).cpu()
                errors.append((predictions - episode.query_y).pow(2).mean(dim=(1, 2)))
            per_episode = torch.cat(errors).double()
            results.append(RegressionResult(
                mse=float(per_episode.mean()), ci95=confidence_interval95(per_episode),
                steps=count, episodes=episodes, k_shot=k_shot, n_query=n_query, seed=seed,
                per_episode=per_episode.tolist()))
    return results


#: why a presentation's accuracy is only *like* a k-shot figure (printed beside it)
SHOT_EQUIVALENT_NOTE = (
    "Presentation k+1 of a class follows k labelled drawings of it, hence 'k-shot', but the "
    "protocol differs from a k-shot episode: the drawings arrive one at a time with the label "
    "one step late, the other classes have been seen a varying number of times, and the model "
    "is scored on every step rather than on held-out queries after a complete support set. "
    "Finn et al. (2017, Table 1) quote the MANN's 2nd and 5th presentations as 5-way 1-shot "
    "and 5-shot."
)


@dataclass(frozen=True)
class SequenceResult(_PerEpisodeResult):
    """Accuracy on sequence episodes, by presentation, over test episodes (fractions).

    Attributes:
        accuracy, ci95: over every step of an episode (all presentations), the figure that
            picks the best checkpoint in training.
        by_presentation, by_presentation_ci95: ``[per_class]`` accuracy on the 1st, 2nd, ...
            presentation of a class, and the 95% CI over episodes of each.
        per_episode: ``[episodes][per_class]`` each episode's accuracy on each presentation
            (the mean over its ``n_way`` classes).
    """

    accuracy: float
    ci95: float
    by_presentation: list[float]
    by_presentation_ci95: list[float]
    episodes: int
    n_way: int
    per_class: int
    labels: str
    seed: int
    dataset: str
    per_episode: list[list[float]] = field(repr=False)

    def presentation(self, k: int) -> tuple[float, float]:
        """``(accuracy, ci95)`` on the ``k``-th presentation (1-based)."""
        if not 1 <= k <= self.per_class:
            raise ValueError(f"presentation must be in 1..{self.per_class}, got {k}")
        return self.by_presentation[k - 1], self.by_presentation_ci95[k - 1]

    def shot_equivalent(self, k_shot: int) -> tuple[float, float]:
        """``(accuracy, ci95)`` on presentation ``k_shot + 1``, the step after ``k_shot``
        labelled drawings of the class: the ``n_way``-way ``k_shot``-shot equivalent (see
        :data:`SHOT_EQUIVALENT_NOTE` for how the protocols differ)."""
        return self.presentation(k_shot + 1)

    def __str__(self) -> str:
        lines = [f"{self.n_way}-way sequences, {self.per_class} drawings per class, "
                 f"{self.labels} labels ({self.episodes} episodes of {self.dataset}):"]
        lines += [f"  presentation {k:>2}: {100 * a:6.2f}% +/- {100 * c:.2f}%"
                  for k, (a, c) in enumerate(zip(self.by_presentation, self.by_presentation_ci95,
                                                 strict=True), 1)]
        lines.append(f"  all steps      : {100 * self.accuracy:6.2f}% +/- {100 * self.ci95:.2f}%")
        return "\n".join(lines)


@torch.no_grad()
def evaluate_sequences(
    method: FewShotMethod,
    tasks: SequenceTasks | FewShotDataset,
    n_way: int = 5,
    per_class: int = 10,
    labels: str = "one_hot",
    episodes: int = 1000,
    seed: int = 0,
    device: torch.device | str | None = None,
    episodes_per_batch: int = 50,
    augment: bool = False,
    progress: bool = False,
) -> SequenceResult:
    """Accuracy of a sequence model by presentation over ``episodes`` test sequence episodes.

    Episodes come ``episodes_per_batch`` at a time, batch ``j`` of a :class:`SequenceSampler`
    seeded with ``seed``, so every method evaluated with the same arguments sees the same
    episodes. Each episode's accuracy on presentation ``k`` is the mean over its ``n_way``
    classes; the figures are the means over episodes with their 95% CIs.

    Args:
        method: a sequence model (:class:`~fslearn.methods.sequence.SequenceMethod`); put in
            evaluation mode while this runs, and restored after.
        tasks: the test classes, with how their images are presented (a plain dataset is
            presented as :class:`SequenceTasks` does by default).
        n_way, per_class, labels: the episodes' shape; ``n_way`` and ``labels`` must be those
            the model was built for.
        episodes: number of test episodes (at least 2; the paper's table needs many: 1000).
        seed: which episodes.
        device: where to compute; defaults to the method's device.
        episodes_per_batch: episodes scored together.
        augment: rotate and shift the test drawings as in training (default: the drawings as
            they are).
        progress: show a progress bar.

    Raises:
        ValueError: a method that does not read sequences, episodes the model was not built for,
            or a request the classes cannot meet (one line saying what to change).
    """
    if episodes < 2:
        raise ValueError(f"episodes must be at least 2 to give a confidence interval, got "
                         f"{episodes}; report figures over at least {MIN_REPORTED_EPISODES}.")
    if method.episode_kind != "sequences":  # declared by the method's class
        raise ValueError(f"{type(method).__name__} does not read sequence episodes; evaluate it "
                         f"with evaluate().")
    if not isinstance(tasks, SequenceTasks):
        tasks = SequenceTasks(tasks)
    sampler = tasks.sampler(n_way, per_class, min(episodes_per_batch, episodes), seed, labels,
                            augment=augment)
    inputs, outputs = tasks.model_shape(n_way, labels)
    built = (method.hparams.get("input_features"), method.hparams.get("num_outputs"))
    if built != (inputs, outputs):
        raise ValueError(
            f"{method.name} was built for {built[0]} input features and {built[1]} outputs, but "
            f"{n_way}-way episodes with {labels} labels of {tasks.image_size}x"
            f"{tasks.image_size} images need {inputs} and {outputs}: evaluate on the episodes "
            f"it was trained on (its n_way, labels and image size).")
    if device is None:
        device = next(iter(method.parameters())).device
    chunks = []
    with evaluation_mode(method):
        for batch in tqdm(range(math.ceil(episodes / sampler.batch)), disable=not progress,
                          desc="sequences", leave=False):
            episode = sampler.episode(batch).to(device)
            hits = correct_steps(method(episode), episode)
            # each presentation of each class happens once per episode, so every cell of
            # [episode, presentation] averages exactly n_way steps
            which = episode.presentation - 1
            right = torch.zeros(episode.batch, per_class, dtype=torch.float64, device=device)
            right.scatter_add_(1, which, hits.double())
            chunks.append((right / n_way).cpu())
    per_episode = torch.cat(chunks)[:episodes]  # [episodes, per_class]
    overall = per_episode.mean(1)
    return SequenceResult(
        accuracy=float(overall.mean()),
        ci95=confidence_interval95(overall),
        by_presentation=per_episode.mean(0).tolist(),
        by_presentation_ci95=[confidence_interval95(column) for column in per_episode.T],
        episodes=episodes,
        n_way=n_way,
        per_class=per_class,
        labels=labels,
        seed=seed,
        dataset=tasks.name,
        per_episode=per_episode.tolist(),
    )
