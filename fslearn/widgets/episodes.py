"""Chapter 1 (the few-shot problem): an N-way K-shot episode, its support and query sets.

* :func:`plot_episode`: the support set (one row per class) beside the query set.
* :func:`episode_explorer`: the same picture with sliders for way, shot, queries and episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.plotting import DISPLAY_DPI, in_book_style
from fslearn.widgets._explorer import (
    _check_int,
    _explorer_class,
    _new_figure,
    _seed_box,
    _short_name,
    _slider,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["episode_explorer", "plot_episode"]


def _mosaic(images: Tensor, rows: int, columns: int, pad: int = 2) -> np.ndarray:
    """``[rows*columns, C, H, W]`` images in [0, 1], row-major, to one ``[H', W', C]`` array with
    ``pad`` pixels of separation (value 0, the background of an ink-is-1 image)."""
    c, h, w = images.shape[1:]
    grid = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), dtype=np.float32)
    pixels = images.detach().cpu().float().clamp(0, 1).permute(0, 2, 3, 1).numpy()
    for i in range(rows * columns):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = pixels[i]
    return grid


def _show_grid(ax: Axes, grid: np.ndarray, rows: int, row_labels: Sequence[str],
               title: str, cell_height: int, pad: int = 2) -> None:
    if grid.shape[-1] == 1:
        # ink = 1 drawn dark on white, as on paper; the separating lines come out white
        ax.imshow(grid[..., 0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    centres = [pad + r * (cell_height + pad) + cell_height / 2 - 0.5 for r in range(rows)]
    ax.set_yticks(centres, labels=list(row_labels), fontsize=7)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)


@in_book_style
def plot_episode(
    episode: Episode | EpisodeSampler,
    index: int = 0,
    *,
    task: int = 0,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw an episode: its support set (one row per class) beside its query set.

    Args:
        episode: an :class:`~fslearn.data.Episode` of images, or an
            :class:`~fslearn.data.EpisodeSampler`, in which case episode ``index`` is drawn.
        index: which episode of the sampler (ignored for an episode).
        task: which task of a batch of tasks.
        class_names: one name per *dataset* class, to label the rows; by default the sampler's
            dataset names (for an episode, rows are labelled ``class 1..N``).
        title: the figure title; by default it names the episode's shape.
        figsize: ``(width, height)`` in inches; by default it grows with the episode.

    Returns:
        a figure with two axes, support set then query set. Row ``n`` of both holds the images
        of episode label ``n``. The query set is shown by class only to make the picture
        readable: the model never sees query labels.
    """
    if isinstance(episode, EpisodeSampler):
        sampler = episode
        _check_int("index", index, 0)
        episode = sampler.episode(int(index))
        if class_names is None:
            class_names = sampler.dataset.class_names
    if not isinstance(episode, Episode):
        raise TypeError(f"plot_episode needs an Episode or an EpisodeSampler, got "
                        f"{type(episode).__name__}")
    _check_int("task", task, 0, episode.tasks - 1)
    if episode.support_x.dim() != 5:
        raise ValueError(
            "plot_episode draws images [tasks, n, C, H, W]; this episode holds vectors of shape "
            f"{tuple(episode.support_x.shape)} (an episode gathered from embeddings?)"
        )
    n_way, k_shot, n_query = episode.n_way, episode.k_shot, episode.n_query
    if class_names is not None:
        labels = [_short_name(class_names[int(c)]) for c in episode.classes[task]]
    else:
        labels = [f"class {n + 1}" for n in range(n_way)]
    height = int(episode.support_x.shape[-2])
    support = _mosaic(episode.support_x[task], n_way, k_shot)
    query = _mosaic(episode.query_x[task], n_way, n_query)
    if figsize is None:
        cell = 0.42
        figsize = (2.6 + cell * (k_shot + n_query) + 0.4, 1.1 + cell * n_way)
    figure = _new_figure(*figsize)
    axes = figure.subplots(1, 2, width_ratios=[k_shot, n_query])
    _show_grid(axes[0], support, n_way, labels,
               f"Support set $S$\n{k_shot} per class", height)
    _show_grid(axes[1], query, n_way, [""] * n_way,
               f"Query set $Q$\n{n_query} per class", height)
    figure.suptitle(title if title is not None else f"A {n_way}-way {k_shot}-shot episode",
                    fontsize=10)
    return figure


def episode_explorer(
    dataset: FewShotDataset,
    n_way: int = 5,
    k_shot: int = 1,
    n_query: int = 2,
    seed: int = 0,
    episode: int = 0,
    *,
    max_way: int = 20,
    max_shot: int = 10,
    max_query: int = 10,
    dpi: int = DISPLAY_DPI,
) -> Any:
    """A widget to browse the episodes of ``dataset``: sliders for way, shot, queries and the
    episode index, and a box for the sampler's seed.

    The picture is :func:`plot_episode` of ``EpisodeSampler(dataset, way, shot, queries,
    seed=seed)`` at the chosen episode index, so the same numbers give the same episode as in
    training and evaluation code. A setting the dataset cannot meet (more shots plus queries than
    a class has images) shows the sampler's message instead of a figure.

    Returns:
        an ``ipywidgets.VBox`` with ``.controls`` (the inputs by name), ``.image`` and
        ``.update()`` (redraw now; returns the figure).

    Raises:
        ValueError: a starting value outside its slider's range, or a range the dataset cannot
            offer (``max_way`` above its number of classes).
    """
    if not isinstance(dataset, FewShotDataset):
        raise TypeError(f"episode_explorer needs a FewShotDataset, got {type(dataset).__name__}")
    _check_int("max_way", max_way, 2, dataset.num_classes)
    _check_int("max_shot", max_shot, 1)
    _check_int("max_query", max_query, 1)
    _check_int("n_way", n_way, 2, max_way)
    _check_int("k_shot", k_shot, 1, max_shot)
    _check_int("n_query", n_query, 1, max_query)
    _check_int("seed", seed, 0)
    _check_int("episode", episode, 0)
    EpisodeSampler(dataset, n_way, k_shot, n_query, seed=seed)  # the starting setting must work
    controls = {
        "n_way": _slider(n_way, 2, max_way, "N (way)"),
        "k_shot": _slider(k_shot, 1, max_shot, "K (shot)"),
        "n_query": _slider(n_query, 1, max_query, "queries per class"),
        "episode": _slider(episode, 0, max(99, episode), "episode index"),
        "seed": _seed_box(seed),
    }

    def draw(n_way: int, k_shot: int, n_query: int, episode: int, seed: int) -> Figure:
        sampler = EpisodeSampler(dataset, n_way, k_shot, n_query, seed=seed)
        return plot_episode(sampler, episode)

    return _explorer_class()("EpisodeExplorer", controls, draw, dpi)

