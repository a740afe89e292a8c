"""Interactive widgets for the course book, each with a static matplotlib twin.

A rendered book page has no kernel, so its widgets show only the state they were saved in; every
widget here therefore comes with a function that draws the same picture as a plain matplotlib
figure, which the book shows beside it.

* :func:`plot_episode` / :func:`episode_explorer`: the support and query sets of an N-way K-shot
  episode, one row per class.
* :func:`plot_prototypes` / :func:`prototype_explorer`: class prototypes and the decision regions
  of the squared-Euclidean prototype classifier on 2-D points, as the number of shots grows.
* :func:`plot_sinusoid_fits` / :func:`sinusoid_explorer`: sinusoid regression models (MAML, the
  pretrained baseline) fitted to one task after a few gradient steps on ``K`` points.
* :func:`plot_memory` / :func:`memory_explorer` (with :func:`plot_memory_step`): the external
  memory of a memory-augmented network (MANN) during one sequence episode: where it wrote and
  read at every step, the slots' usage, and whether each answer was right;
  :func:`memory_trace` runs the model once and keeps all of it (an :class:`EpisodeTrace`).
* :func:`plot_matching_attention` / :func:`attention_explorer`: a Matching Network's attention
  over the support set for one query (:func:`matching_attention`), and the class probabilities
  it and other methods give that query (:func:`method_probabilities`).

matplotlib and ipywidgets are book extras, imported only when a function needs them; without them
the functions raise an :class:`ImportError` that says how to install them
(``pip install 'fslearn[book]'``). Figures are built with :class:`matplotlib.figure.Figure`, not
``pyplot``, so nothing is drawn or kept behind the caller's back.
"""

from __future__ import annotations

import copy
import functools
import html
import importlib
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.data.sequences import SequenceEpisode, SequenceSampler
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.methods.base import FewShotMethod
from fslearn.methods.mann import MANN, LSTMBaseline, correct_steps, least_used
from fslearn.methods.matching import MatchingNetwork
from fslearn.methods.protonet import prototypes, squared_euclidean_distance

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "EpisodeTrace",
    "attention_explorer",
    "episode_explorer",
    "gaussian_classes",
    "matching_attention",
    "memory_explorer",
    "memory_trace",
    "method_probabilities",
    "plot_episode",
    "plot_matching_attention",
    "plot_memory",
    "plot_memory_step",
    "plot_prototypes",
    "plot_sinusoid_fits",
    "prototype_explorer",
    "sinusoid_explorer",
    "sinusoid_fits",
]

_BOOK_EXTRAS = "pip install 'fslearn[book]'"
#: colours of the classes in the prototype plots (matplotlib's tab10, as RGB in [0, 1])
_TAB10 = (
    (0.122, 0.467, 0.706), (1.000, 0.498, 0.055), (0.173, 0.627, 0.173), (0.839, 0.153, 0.157),
    (0.580, 0.404, 0.741), (0.549, 0.337, 0.294), (0.890, 0.467, 0.761), (0.498, 0.498, 0.498),
    (0.737, 0.741, 0.133), (0.090, 0.745, 0.812),
)


def _require(module: str) -> Any:
    """Import a book extra, or explain how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.split(".")[0]
        raise ImportError(
            f"fslearn.widgets needs {top}, one of the book extras, which is not installed: "
            f"{_BOOK_EXTRAS}"
        ) from error


def _new_figure(width: float, height: float) -> Figure:
    figure_module = _require("matplotlib.figure")
    return figure_module.Figure(figsize=(width, height), layout="constrained")


def _png(figure: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)


# --------------------------------------------------------------------------------------------
# Episodes


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


def _short_name(name: str) -> str:
    """``"Alphabet_of_the_Magi/character01/rot090"`` -> ``"Alphabet of the Magi 01 (90°)"``."""
    parts = name.split("/")
    if len(parts) >= 2 and parts[1].startswith("character"):
        text = f"{parts[0].replace('_', ' ')} {parts[1].removeprefix('character')}"
        if len(parts) == 3 and parts[2].startswith("rot"):
            text += f" ({int(parts[2].removeprefix('rot'))}°)"
        return text
    return name


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


# --------------------------------------------------------------------------------------------
# Widgets


@functools.cache
def _explorer_class() -> type:
    """A VBox with a short ``repr`` (the default one would print the PNG's bytes)."""
    widgets = _require("ipywidgets")

    class Explorer(widgets.VBox):
        """A figure that redraws when its controls change.

        Attributes:
            controls: the input widgets, by name.
            image: the ``Image`` widget showing the current figure.
            message: an ``HTML`` widget that shows why a setting cannot be drawn.
        """

        def __init__(self, kind: str, controls: dict[str, Any], draw: Any, dpi: int,
                     columns: int = 3) -> None:
            self.kind = kind
            self.controls = controls
            self._draw = draw
            self._dpi = dpi
            self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
            self.message = widgets.HTML(value="")
            boxes = list(controls.values())
            rows = [widgets.HBox(boxes[i : i + columns]) for i in range(0, len(boxes), columns)]
            super().__init__(children=[*rows, self.message, self.image])
            for control in boxes:
                control.observe(self._on_change, names="value")
            self.update()

        @property
        def values(self) -> dict[str, Any]:
            return {name: control.value for name, control in self.controls.items()}

        def update(self) -> Figure | None:
            """Redraw from the current control values; returns the figure (None on error)."""
            try:
                figure = self._draw(**self.values)
            except ValueError as error:  # a setting the data cannot meet: say why, keep going
                self.message.value = f"<span style='color:#b00'>{html.escape(str(error))}</span>"
                return None
            self.message.value = ""
            self.image.value = _png(figure, self._dpi)
            return figure

        def _on_change(self, change: dict[str, Any]) -> None:
            self.update()

        def __repr__(self) -> str:
            settings = ", ".join(f"{name}={value!r}" for name, value in self.values.items())
            return f"{self.kind}({settings})"

    return Explorer


def _slider(value: int, low: int, high: int, description: str) -> Any:
    """An integer slider that redraws when released (not at every pixel of a drag)."""
    widgets = _require("ipywidgets")
    return widgets.IntSlider(value=value, min=low, max=high, description=description,
                             style={"description_width": "initial"}, continuous_update=False)


def _seed_box(seed: int) -> Any:
    """A box for any sampler seed, too many for a slider."""
    widgets = _require("ipywidgets")
    return widgets.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed",
                                  style={"description_width": "initial"},
                                  layout=widgets.Layout(width="160px"))


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
    dpi: int = 90,
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


# --------------------------------------------------------------------------------------------
# Prototypes and decision regions


def gaussian_classes(
    n_way: int = 4, per_class: int = 150, seed: int = 0, spread: float = 1.8
) -> tuple[Tensor, Tensor, Tensor]:
    """A seeded 2-D toy problem: ``n_way`` elongated Gaussian classes around a circle.

    Each class has its own orientation and elongation (standard deviations 1 and 0.45), so the
    classes are not the round blobs a nearest-mean classifier would like.

    Returns:
        ``(points [n_way*per_class, 2], labels [n_way*per_class], means [n_way, 2])``, points
        class-major and in a random order inside each class.
    """
    _check_int("n_way", n_way, 2, len(_TAB10))
    _check_int("per_class", per_class, 1)
    _check_int("seed", seed, 0)
    generator = torch.Generator().manual_seed(seed)
    offset = float(torch.rand((), generator=generator)) * 2 * math.pi
    angles = offset + 2 * math.pi * torch.arange(n_way, dtype=torch.float64) / n_way
    means = spread * torch.stack([angles.cos(), angles.sin()], dim=1)
    points = []
    for n in range(n_way):
        tilt = float(torch.rand((), generator=generator)) * math.pi
        rotation = torch.tensor([[math.cos(tilt), -math.sin(tilt)],
                                 [math.sin(tilt), math.cos(tilt)]], dtype=torch.float64)
        noise = torch.randn(per_class, 2, generator=generator, dtype=torch.float64)
        points.append(means[n] + (noise * torch.tensor([1.0, 0.45], dtype=torch.float64))
                      @ rotation.T)
    labels = torch.arange(n_way).repeat_interleave(per_class)
    return torch.cat(points).float(), labels, means.float()


def _split_support(points: Tensor, labels: Tensor, k_shot: int, seed: int
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """The first ``k_shot`` points of each class (in a seeded order) as support, the rest as
    queries. Growing ``k_shot`` only adds support points, so prototypes move smoothly."""
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be [num_points, 2], got shape {tuple(points.shape)}")
    if labels.shape != (points.shape[0],):
        raise ValueError(f"labels must have shape ({points.shape[0]},) to match the points, got "
                         f"{tuple(labels.shape)}")
    classes = torch.unique(labels)
    n_way = len(classes)
    if n_way < 2 or n_way > len(_TAB10):
        raise ValueError(f"plot_prototypes draws 2 to {len(_TAB10)} classes, got {n_way}")
    if not torch.equal(classes, torch.arange(n_way)):
        raise ValueError(f"labels must be 0..N-1 with every class present, got {classes.tolist()}")
    counts = torch.bincount(labels, minlength=n_way)
    if int(counts.min()) <= k_shot:
        raise ValueError(f"k_shot={k_shot} leaves no query point in a class of "
                         f"{int(counts.min())} points: lower k_shot (at most "
                         f"{int(counts.min()) - 1})")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    support_index, query_index = [], []
    for n in range(n_way):
        members = order[labels[order] == n]
        support_index.append(members[:k_shot])
        query_index.append(members[k_shot:])
    support, query = torch.cat(support_index), torch.cat(query_index)
    return points[support], labels[support], points[query], labels[query], n_way


def plot_prototypes(
    k_shot: int = 1,
    seed: int = 0,
    n_way: int = 4,
    *,
    points: Tensor | None = None,
    labels: Tensor | None = None,
    means: Tensor | None = None,
    resolution: int = 200,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Support points, prototypes and decision regions of the prototype classifier in 2-D.

    The prototypes are :func:`fslearn.methods.protonet.prototypes` of the support points, and
    every point of a ``resolution x resolution`` grid is coloured by its nearest prototype under
    :func:`fslearn.methods.protonet.squared_euclidean_distance`: the regions are the cells of the
    prototypes' Voronoi diagram, with straight boundaries.

    Args:
        k_shot: support points per class.
        seed: which support points (and, for the toy problem, which problem).
        n_way: classes of the toy problem (see :func:`gaussian_classes`).
        points, labels: your own 2-D points ``[M, 2]`` and labels ``0..N-1`` ``[M]`` (e.g. a
            projection of embeddings) instead of the toy problem; ``n_way`` is then ignored.
        means: true class centres to mark (the toy problem's by default).
        resolution: grid points per side for the regions.
        ax: draw into these axes instead of a new figure.
        title: by default, the shot count and the accuracy on the query points.

    Returns:
        the figure. Its axes hold, in this order, the regions (an image) and three scatter
        collections with gids ``"queries"``, ``"support"`` and ``"prototypes"`` (plus
        ``"means"`` when true centres are known).
    """
    _check_int("k_shot", k_shot, 1)
    _check_int("seed", seed, 0)
    _check_int("resolution", resolution, 10, 2000)
    if (points is None) != (labels is None):
        raise ValueError("pass both points and labels, or neither (for the toy problem)")
    if points is None:
        points, labels, toy_means = gaussian_classes(n_way, seed=seed)
        means = toy_means if means is None else means
    points = torch.as_tensor(points, dtype=torch.float32)
    labels = torch.as_tensor(labels, dtype=torch.long)
    support_x, support_y, query_x, query_y, n_way = _split_support(points, labels, k_shot, seed)

    centres = prototypes(support_x[None], support_y[None], n_way)  # [1, n_way, 2]
    query_pred = squared_euclidean_distance(query_x[None], centres)[0].argmin(dim=-1)
    accuracy = float((query_pred == query_y).float().mean())

    low, high = points.min(dim=0).values, points.max(dim=0).values
    margin = torch.where(high > low, 0.08 * (high - low), torch.ones_like(low))
    low, high = low - margin, high + margin
    xs = torch.linspace(float(low[0]), float(high[0]), resolution)
    ys = torch.linspace(float(low[1]), float(high[1]), resolution)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(1, -1, 2)
    region = squared_euclidean_distance(grid, centres)[0].argmin(dim=-1)
    region = region.reshape(resolution, resolution).numpy()

    colors = np.asarray(_TAB10[:n_way])
    if ax is None:
        figure = _new_figure(4.6, 4.2)
        ax = figure.subplots()
    else:
        figure = ax.figure
    tint = 0.75 + 0.25 * colors  # pale versions of the class colours for the regions
    ax.imshow(tint[region], origin="lower", interpolation="nearest", aspect="auto",
              extent=(float(low[0]), float(high[0]), float(low[1]), float(high[1])))
    ax.scatter(query_x[:, 0], query_x[:, 1], s=6, c=colors[query_y.numpy()], alpha=0.35,
               linewidths=0, gid="queries", label="query points")
    ax.scatter(support_x[:, 0], support_x[:, 1], s=40, c=colors[support_y.numpy()],
               edgecolors="black", linewidths=0.6, gid="support", label="support points")
    ax.scatter(centres[0, :, 0], centres[0, :, 1], s=260, marker="*", c=colors,
               edgecolors="black", linewidths=1.0, gid="prototypes", label="prototypes $c_n$")
    if means is not None:
        means = torch.as_tensor(means, dtype=torch.float32)
        ax.scatter(means[:, 0], means[:, 1], s=70, marker="x", c="black", linewidths=1.5,
                   gid="means", label="true class means")
    ax.set_xlim(float(low[0]), float(high[0]))
    ax.set_ylim(float(low[1]), float(high[1]))
    ax.set_xticks([])
    ax.set_yticks([])
    legend = ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    for handle in legend.legend_handles:  # class-neutral markers in the legend
        if handle.get_gid() != "means" and hasattr(handle, "set_facecolor"):
            handle.set_facecolor("0.6")
    if title is None:
        shots = "shot" if k_shot == 1 else "shots"
        title = (f"{n_way}-way, {k_shot} {shots}: accuracy {100 * accuracy:.0f}% "
                 f"on {len(query_y)} queries")
    ax.set_title(title, fontsize=9)
    return figure


def prototype_explorer(
    k_shot: int = 1,
    seed: int = 0,
    n_way: int = 4,
    *,
    max_shot: int = 30,
    max_way: int = 6,
    max_seed: int = 20,
    points: Tensor | None = None,
    labels: Tensor | None = None,
    means: Tensor | None = None,
    resolution: int = 150,
    dpi: int = 80,
) -> Any:
    """A widget showing how prototypes and decision regions move as the number of shots grows.

    Sliders for ``k_shot``, ``seed`` and (for the toy problem) ``n_way``; the picture is
    :func:`plot_prototypes` with those values. With ``points``/``labels`` the widget explores
    your own 2-D data and has no ``n_way`` slider.

    Returns:
        an ``ipywidgets.VBox`` with ``.controls``, ``.image`` and ``.update()``.
    """
    _check_int("max_shot", max_shot, 1)
    _check_int("max_seed", max_seed, 0)
    _check_int("k_shot", k_shot, 1, max_shot)
    _check_int("seed", seed, 0, max_seed)
    own_data = points is not None or labels is not None
    if not own_data:
        _check_int("max_way", max_way, 2, len(_TAB10))
        _check_int("n_way", n_way, 2, max_way)
    # the starting setting must draw, so that a mistake shows here and not as a blank widget
    plot_prototypes(k_shot, seed, n_way, points=points, labels=labels, means=means,
                    resolution=10)
    controls = {
        "k_shot": _slider(k_shot, 1, max_shot, "K (shots)"),
        "seed": _slider(seed, 0, max_seed, "seed"),
    }
    if not own_data:
        controls["n_way"] = _slider(n_way, 2, max_way, "N (way)")

    def draw(k_shot: int, seed: int, n_way: int = n_way) -> Figure:
        return plot_prototypes(k_shot, seed, n_way, points=points, labels=labels, means=means,
                               resolution=resolution)

    return _explorer_class()("PrototypeExplorer", controls, draw, dpi)


# --------------------------------------------------------------------------------------------
# Sinusoid regression: fits after a few gradient steps

#: colours of the fits after 0, 1, 2... of the requested numbers of steps
_STEP_COLORS = ("0.55", "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")


def _regression_models(models: Any) -> dict[str, FewShotMethod]:
    """``{label: model}`` from one model or a mapping, each a regression model that adapts by
    inner gradient steps (MAML's family: ``task == "regression"``, ``test_inner_steps``)."""
    if isinstance(models, FewShotMethod):
        models = {models.name: models}
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a sinusoid model or a non-empty mapping "
                         "{label: model}, e.g. {'MAML': maml, 'pretrained': pretrained}")
    for label, model in models.items():
        if (not isinstance(model, FewShotMethod) or not hasattr(model, "test_inner_steps")
                or getattr(model, "task", None) != "regression"):
            raise ValueError(
                f"models[{label!r}] is {type(model).__name__}, not a regression model that "
                f"adapts by gradient steps: build it with task='regression' (MAML, FirstOrderMAML,"
                f" PretrainedBaseline...) or load 'maml-sinusoid' / 'pretrained-sinusoid'")
    return {str(label): model for label, model in models.items()}


def _check_counts(name: str, values: object, low: int) -> tuple[int, ...]:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = (values,)
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ValueError(f"{name} must be a non-empty sequence of integers, got {values!r}")
    checked = tuple(_check_int(f"{name} entry", value, low) for value in values)
    if len(set(checked)) != len(checked):
        raise ValueError(f"{name} has a repeated entry: {list(checked)}")
    return checked


def sinusoid_fits(
    model: FewShotMethod, support_x: Tensor, support_y: Tensor, x: Tensor, steps: int
) -> Tensor:
    """Predictions of ``model`` at the points ``x`` ``[M]`` after ``steps`` inner gradient steps
    on the support points ``support_x``, ``support_y`` ``[K]`` (one task), in evaluation mode;
    the model's mode and ``test_inner_steps`` are restored afterwards. Returns ``[M]``."""
    _check_int("steps", steps, 0)
    device = next(model.parameters()).device
    episode = Episode(
        support_x=support_x.reshape(1, -1, 1).float(),
        support_y=support_y.reshape(1, -1, 1).float(),
        query_x=x.reshape(1, -1, 1).float(), query_y=torch.zeros(1, x.numel(), 1),
        classes=torch.zeros(1, 2), n_way=1,
    ).to(device)
    was_training, kept_steps = model.training, model.test_inner_steps
    model.eval()
    try:
        model.test_inner_steps = int(steps)
        with torch.no_grad():  # the inner loop still takes its gradient steps (torch.func.grad)
            return model(episode).reshape(-1).cpu()
    finally:
        model.test_inner_steps = kept_steps
        model.train(was_training)


def plot_sinusoid_fits(
    models: Any,
    k_shots: int | Sequence[int] = (5, 10),
    steps: int | Sequence[int] = (0, 1, 10),
    *,
    seed: int = 0,
    index: int = 0,
    tasks: SinusoidRegression | None = None,
    resolution: int = 200,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Fits of sinusoid models to one task after a few gradient steps on ``K`` points: the
    picture of Figure 2 of Finn et al. (2017).

    The task is episode ``index`` of the test stream, ``tasks.sampler(max(k_shots), 1, seed,
    "test")`` (the paper's task distribution by default). The panel for ``K`` shots adapts on
    its first ``K`` support points, so the 5 points of a ``K = 5`` panel are among the 10 of a
    ``K = 10`` panel. Each panel shows the true curve, the support points, and the model's
    prediction after each number of inner steps in ``steps`` (with the model's own step size
    ``inner_lr``); the title gives each fit's mean squared error against the true curve over the
    ``resolution`` plotted points (an estimate of the error over uniform ``x``, as in the
    evaluation).

    Args:
        models: one model or a mapping ``{label: model}`` (e.g. ``{"MAML": maml, "pretrained":
            pretrained}``), each a regression model of :mod:`fslearn.methods.maml`.
        k_shots: support points per panel row.
        steps: the numbers of inner gradient steps to draw (0: the learned initialisation).
        seed, index: which task.
        tasks: the task distribution (default :class:`~fslearn.data.SinusoidRegression`).
        resolution: points on the plotted curves.
        figsize: ``(width, height)`` in inches; by default it grows with the grid.

    Returns:
        a figure with one row of axes per ``K`` and one column per model, and one legend below
        them. Each axes holds lines with gids ``"truth"`` and ``"steps=S"`` for every ``S`` in
        ``steps``, and a scatter collection with gid ``"support"``.
    """
    models = _regression_models(models)
    k_shots = _check_counts("k_shots", k_shots, 1)
    steps = tuple(sorted(_check_counts("steps", steps, 0)))
    _check_int("seed", seed, 0)
    _check_int("index", index, 0)
    _check_int("resolution", resolution, 10, 5000)
    if tasks is None:
        tasks = SinusoidRegression()
    if not isinstance(tasks, SinusoidRegression):
        raise TypeError(f"tasks must be a SinusoidRegression, got {type(tasks).__name__}")
    if len(steps) > len(_STEP_COLORS):
        raise ValueError(f"steps draws at most {len(_STEP_COLORS)} curves per panel, got "
                         f"{len(steps)}")
    task = tasks.sampler(max(k_shots), 1, seed=seed, split="test").episode(index)
    amplitude, phase = (float(v) for v in task.classes[0])
    x = torch.linspace(*tasks.x_range, resolution)
    truth = amplitude * torch.sin(x - phase)
    limit = 1.2 * tasks.amplitude[1]

    if figsize is None:
        figsize = (0.4 + 3.9 * len(models), 0.9 + 2.9 * len(k_shots))
    figure = _new_figure(*figsize)
    axes = np.asarray(figure.subplots(len(k_shots), len(models), squeeze=False,
                                      sharex=True, sharey=True))
    counts = "/".join(str(count) for count in steps)
    for row, k_shot in enumerate(k_shots):
        support_x, support_y = task.support_x[0, :k_shot, 0], task.support_y[0, :k_shot, 0]
        for column, (label, model) in enumerate(models.items()):
            ax = axes[row, column]
            ax.plot(x, truth, color="black", linewidth=2.2, gid="truth", label="true curve")
            errors = []
            for color, count in zip(_STEP_COLORS, steps, strict=False):
                fit = sinusoid_fits(model, support_x, support_y, x, count)
                errors.append(f"{float((fit - truth).pow(2).mean()):.2f}")
                name = "initialisation (0 steps)" if count == 0 else (
                    f"after {count} step" + ("s" if count != 1 else ""))
                ax.plot(x, fit, color=color, linewidth=1.6, linestyle="--" if count == 0 else "-",
                        gid=f"steps={count}", label=name)
            ax.scatter(support_x, support_y, s=55, marker="^", color="tab:red",
                       edgecolors="black", linewidths=0.6, zorder=3, gid="support",
                       label="support points")
            ax.set_xlim(*tasks.x_range)
            ax.set_ylim(-limit, limit)
            ax.set_title(f"{label}, $K={k_shot}$\nMSE after {counts} "
                         f"step{'s' if steps != (1,) else ''}: {' / '.join(errors)}", fontsize=8)
            ax.tick_params(labelsize=7)
            if row == len(k_shots) - 1:
                ax.set_xlabel("$x$", fontsize=8)
            if column == 0:
                ax.set_ylabel("$y$", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
                  fontsize=7, frameon=False)
    figure.suptitle(f"Task {index} (seed {seed}): $y = {amplitude:.2f}\\,\\sin(x - {phase:.2f})$",
                    fontsize=10)
    return figure


def sinusoid_explorer(
    models: Any,
    k_shot: int = 5,
    steps: int = 10,
    seed: int = 0,
    index: int = 0,
    *,
    max_shot: int = 20,
    max_steps: int = 20,
    max_index: int = 99,
    tasks: SinusoidRegression | None = None,
    resolution: int = 200,
    dpi: int = 90,
) -> Any:
    """A widget to watch sinusoid models adapt: sliders for the task (``index``, with a box for
    the sampler's ``seed``), the number of support points ``K`` and the number of inner steps.

    The picture is :func:`plot_sinusoid_fits` of ``models`` with ``k_shots=(k_shot,)`` and
    ``steps=(0, steps)``: one panel per model, its initialisation and its fit after ``steps``
    gradient steps on the ``K`` support points of the chosen task.

    Returns:
        an ``ipywidgets.VBox`` with ``.controls`` (the inputs by name), ``.image`` and
        ``.update()`` (redraw now; returns the figure).
    """
    models = _regression_models(models)
    _check_int("max_shot", max_shot, 1)
    _check_int("max_steps", max_steps, 1)
    _check_int("max_index", max_index, 0)
    _check_int("k_shot", k_shot, 1, max_shot)
    _check_int("steps", steps, 0, max_steps)
    _check_int("seed", seed, 0)
    _check_int("index", index, 0, max_index)
    if tasks is not None and not isinstance(tasks, SinusoidRegression):
        raise TypeError(f"tasks must be a SinusoidRegression, got {type(tasks).__name__}")
    controls = {
        "index": _slider(index, 0, max_index, "task index"),
        "k_shot": _slider(k_shot, 1, max_shot, "K (points)"),
        "steps": _slider(steps, 0, max_steps, "gradient steps"),
        "seed": _seed_box(seed),
    }

    def draw(index: int, k_shot: int, steps: int, seed: int) -> Figure:
        return plot_sinusoid_fits(models, (k_shot,), sorted({0, steps}), seed=seed, index=index,
                                  tasks=tasks, resolution=resolution)

    return _explorer_class()("SinusoidExplorer", controls, draw, dpi, columns=4)


# --------------------------------------------------------------------------------------------
# Memory-augmented networks: the memory during one sequence episode

_RIGHT, _WRONG = "#2ca02c", "#d62728"


@dataclass(frozen=True)
class EpisodeTrace:
    """What a :class:`~fslearn.methods.mann.MANN` did during one sequence episode: its memory
    at every step and its answers. Made by :func:`memory_trace`; all tensors are on the CPU.

    Tensors are indexed by the 0-based step ``t - 1``; the pictures number steps ``t = 1..time``.

    Attributes:
        read_weights: ``[time, heads, slots]`` ``w^r_t``, read after step ``t``'s write.
        write_weights: ``[time, heads, slots]`` ``w^w_t``.
        usage: ``[time, slots]`` ``w^u_t``, after step ``t``.
        write_gate: ``[time, heads]`` ``sigmoid(alpha_t)``: 1 = write where the head last read,
            0 = write to the least-used slots.
        least_used: ``[time, slots]`` bool, ``w^lu_{t-1}``: the ``heads`` least-used slots before
            step ``t``, which every head writes with weight ``1 - sigmoid(alpha_t)``.
        cleared: ``[time]`` the single least-used slot before step ``t``, zeroed before the write.
        logits: ``[time, num_outputs]``.
        probabilities: ``[time, n_way]`` the probability of each episode label (the softmax; for
            string labels, the product of the characters' probabilities of that label's string).
        predicted: ``[time]`` the predicted episode label (-1: a string that is none of the
            episode's).
        correct: ``[time]`` bool, :func:`~fslearn.methods.mann.correct_steps`.
        labels: ``[time]`` the true episode label of each step, ``0..n_way-1``.
        presentation: ``[time]`` how many times the step's class has been shown, this step
            included.
        images: ``[time, C, H, W]`` the image of each step, as the model saw it.
        n_way: classes in the episode.
        index: which episode of the batch this is.
        label_kind: ``"one_hot"`` or ``"string"``.
    """

    read_weights: Tensor
    write_weights: Tensor
    usage: Tensor
    write_gate: Tensor
    least_used: Tensor
    cleared: Tensor
    logits: Tensor
    probabilities: Tensor
    predicted: Tensor
    correct: Tensor
    labels: Tensor
    presentation: Tensor
    images: Tensor
    n_way: int
    index: int = 0
    label_kind: str = "one_hot"

    @property
    def time(self) -> int:
        return int(self.labels.shape[0])

    @property
    def heads(self) -> int:
        return int(self.write_weights.shape[1])

    @property
    def slots(self) -> int:
        return int(self.write_weights.shape[2])

    def previous_label(self, step: int) -> int | None:
        """The label fed in with step ``step`` (1-based): step ``step - 1``'s, None at step 1."""
        _check_int("step", step, 1, self.time)
        return None if step == 1 else int(self.labels[step - 2])


def _check_mann(model: object, episode: object, caller: str) -> None:
    """A MANN, a sequence episode, and episodes of the shape the model was built for."""
    if not isinstance(model, MANN):
        hint = (" (an LSTMBaseline has no external memory, only its hidden state)"
                if isinstance(model, LSTMBaseline) else "")
        raise TypeError(
            f"{caller} draws the external memory of a MANN (fslearn.methods.mann.MANN), got "
            f"{type(model).__name__}{hint}: pass a MANN, e.g. load_checkpoint(...)[0] of a "
            f"'mann' run")
    if not isinstance(episode, SequenceEpisode):
        raise TypeError(
            f"{caller} needs a SequenceEpisode, e.g. SequenceSampler(dataset).episode(0), got "
            f"{type(episode).__name__}")
    features, outputs = model.hparams["input_features"], model.hparams["num_outputs"]
    if episode.features != features or episode.num_outputs != outputs:
        raise ValueError(
            f"the episode has {episode.features} input features per step "
            f"({episode.image_features} image + {episode.label_features} label) and "
            f"{episode.num_outputs} outputs, but the model was built for {features} and "
            f"{outputs}: sample episodes of the shape it was trained on (n_way, image_size, "
            f"labels; SequenceTasks.model_shape gives the numbers) or pass the matching model")


def _image_shape(episode: SequenceEpisode) -> tuple[int, int, int]:
    """``(C, H, W)`` of the square images in ``episode.inputs`` (one or three channels)."""
    features = episode.image_features
    for channels in (1, 3):
        side = math.isqrt(features // channels)
        if features % channels == 0 and channels * side * side == features and side > 0:
            return channels, side, side
    raise ValueError(f"the episode's {features} image features per step are not a square image "
                     "of 1 or 3 channels, so the images cannot be drawn")


def _one_episode(episode: SequenceEpisode, index: int) -> SequenceEpisode:
    pick = slice(index, index + 1)
    return SequenceEpisode(
        inputs=episode.inputs[pick], targets=episode.targets[pick], labels=episode.labels[pick],
        presentation=episode.presentation[pick], classes=episode.classes[pick],
        indices=episode.indices[pick], strings=episode.strings[pick], n_way=episode.n_way,
        symbols=episode.symbols, label_kind=episode.label_kind)


def _label_probabilities(logits: Tensor, episode: SequenceEpisode) -> tuple[Tensor, Tensor]:
    """``logits [time, outputs]`` of one episode -> ``(probabilities [time, n_way], predicted
    [time])``; for strings, over the episode's ``n_way`` strings (-1: none of them)."""
    if episode.label_kind == "one_hot":
        return logits.softmax(1), logits.argmax(1)
    per_char = logits.unflatten(1, (episode.string_length, episode.symbols)).log_softmax(2)
    strings = episode.strings[0]  # [n_way, length]
    index = strings.T.unsqueeze(0).expand(logits.shape[0], -1, -1)  # [time, length, n_way]
    probabilities = per_char.gather(2, index).sum(1).exp()
    match = (per_char.argmax(2).unsqueeze(1) == strings.unsqueeze(0)).all(2)  # [time, n_way]
    predicted = torch.where(match.any(1), match.float().argmax(1), torch.full_like(
        match[:, 0], -1, dtype=torch.long))
    return probabilities, predicted


def memory_trace(model: MANN, episode: SequenceEpisode, index: int = 0) -> EpisodeTrace:
    """Run ``model`` on episode ``index`` of a batch of sequence episodes and keep what it did
    with its memory at every step (``model(episode, trace=True)``), with its answers.

    The model runs on the whole batch, as in training and evaluation, in evaluation mode under
    ``torch.no_grad`` and on its own device; its mode is restored afterwards.

    Args:
        model: a :class:`~fslearn.methods.mann.MANN`.
        episode: a :class:`~fslearn.data.sequences.SequenceEpisode` of the shape the model was
            built for.
        index: which episode of the batch.

    Returns:
        an :class:`EpisodeTrace`.

    Raises:
        TypeError: ``model`` is not a MANN (the LSTM baseline has no memory to draw), or
            ``episode`` is not a SequenceEpisode.
        ValueError: ``index`` outside the batch, or episodes of another shape than the model's.
    """
    _check_mann(model, episode, "memory_trace")
    _check_int("index", index, 0, episode.batch - 1)
    image_shape = _image_shape(episode)
    index = int(index)
    parameter = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # the whole batch, as training and evaluation run it: the least-used slots are an
            # argsort of the usage, which a last-bit difference of a batch of one can reorder
            logits, trace = model(episode.to(parameter.device), trace=True)
            initial_usage = model.initial_state(1, parameter).usage
    finally:
        model.train(was_training)
    one = _one_episode(episode, index)
    logits = logits[index : index + 1].cpu()
    usage = trace.usage[index].cpu()
    before = torch.cat([initial_usage.cpu(), usage[:-1]])  # w^u_{t-1} for every step t
    probabilities, predicted = _label_probabilities(logits[0], one)
    return EpisodeTrace(
        read_weights=trace.read_weights[index].cpu(),
        write_weights=trace.write_weights[index].cpu(),
        usage=usage,
        write_gate=trace.write_gate[index].cpu(),
        least_used=least_used(before, model.heads).bool(),
        cleared=least_used(before, 1).argmax(1),
        logits=logits[0],
        probabilities=probabilities,
        predicted=predicted,
        correct=correct_steps(logits, one)[0],
        labels=one.labels[0].clone(),
        presentation=one.presentation[0].clone(),
        images=one.inputs[0, :, : one.image_features].reshape(-1, *image_shape).clone(),
        n_way=one.n_way,
        index=index,
        label_kind=one.label_kind,
    )


def _as_trace(model_or_trace: Any, episode: SequenceEpisode | None, index: int, caller: str
              ) -> EpisodeTrace:
    if isinstance(model_or_trace, EpisodeTrace):
        if episode is not None:
            raise ValueError(f"{caller} got an EpisodeTrace and an episode: the trace already "
                             "holds its episode; pass one or the other")
        return model_or_trace
    if episode is None:
        raise ValueError(f"{caller} needs the episode to run the model on: "
                         f"{caller}(model, episode, index)")
    return memory_trace(model_or_trace, episode, index)


def _memory_slots(trace: EpisodeTrace, slots: Sequence[int] | None, threshold: float,
                  max_slots: int | None) -> tuple[list[int], str]:
    """The slots to draw, and a phrase that says how they were chosen."""
    if slots is not None:
        if isinstance(slots, (str, bytes)) or not isinstance(slots, Sequence) or not slots:
            raise ValueError(f"slots must be a non-empty sequence of slot numbers in "
                             f"0..{trace.slots - 1}, got {slots!r}")
        chosen = [_check_int("slots entry", slot, 0, trace.slots - 1) for slot in slots]
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"slots has a repeated entry: {chosen}")
        return chosen, f"{len(chosen)} chosen slots of {trace.slots}"
    if not isinstance(threshold, (int, float)) or threshold < 0:
        raise ValueError(f"threshold must be a number >= 0, got {threshold!r}")
    if max_slots is None:
        max_slots = trace.slots
    _check_int("max_slots", max_slots, 1)
    written = trace.write_weights.sum(1)  # [time, slots]
    noticeable = (written.max(0).values >= threshold).nonzero().flatten()
    if len(noticeable) <= max_slots and len(noticeable) > 0:
        return noticeable.tolist(), (f"the {len(noticeable)} slots written with weight ≥ "
                                     f"{threshold:g}, of {trace.slots}")
    # too many to read: keep the busiest, by the total weight written and read over the episode
    total = written.sum(0) + trace.read_weights.sum(1).sum(0)
    pool = noticeable if len(noticeable) > 0 else torch.arange(trace.slots)
    order = torch.argsort(-total[pool], stable=True)[:max_slots]
    chosen = sorted(pool[order].tolist())
    among = (f"the {len(pool)} slots written with weight ≥ {threshold:g}, of {trace.slots}"
             if len(noticeable) > 0 else
             f"all {trace.slots} slots (none written with weight ≥ {threshold:g})")
    return chosen, f"the {len(chosen)} busiest (most weight written + read) of {among}"


def _slot_ticks(ax: Axes, slots: Sequence[int], axis: str, most: int = 16) -> None:
    every = 2 ** math.ceil(math.log2(max(1, math.ceil(len(slots) / most))))  # 1, 2, 4, 8...
    positions = list(range(0, len(slots), every))
    labels = [str(slots[i]) for i in positions]
    if axis == "y":
        ax.set_yticks(positions, labels=labels)
    else:
        ax.set_xticks(positions, labels=labels)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def plot_memory(
    model_or_trace: MANN | EpisodeTrace,
    episode: SequenceEpisode | None = None,
    index: int = 0,
    *,
    slots: Sequence[int] | None = None,
    threshold: float = 0.1,
    max_slots: int = 48,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """The memory of a MANN during one sequence episode, step by step.

    From top to bottom, sharing the time axis (steps ``t = 1..time``):

    * ``"labels"``: each step's true label (coloured squares) and, below it, a circle with the
      presentation number (how many times that class has been shown, this step included),
      green when the prediction was right and red when it was wrong;
    * ``"gate"``: each head's write gate ``sigmoid(alpha_t)`` (1: write where it last read,
      0: write to the least-used slots);
    * ``"write"``, ``"read"``: heat maps of the write weights ``w^w_t`` and read weights
      ``w^r_t`` *summed over the heads* (what enters the memory and the usage), one row per
      slot;
    * ``"usage"``: the usage ``w^u_t`` after each step.

    Args:
        model_or_trace: a :class:`~fslearn.methods.mann.MANN` (then ``episode`` is needed) or
            an :class:`EpisodeTrace` from :func:`memory_trace`.
        episode: a batch of sequence episodes; ``index`` chooses one.
        index: which episode of the batch.
        slots: the slots to draw, in this order; by default the slots some step writes with a
            summed weight of at least ``threshold``, in slot order, and when there are more than
            ``max_slots`` of them (an untrained model writes every slot), the ``max_slots``
            busiest: the largest total weight written plus read over the episode.
        threshold, max_slots: the default choice of slots.
        title: the figure title; by default it names the episode and its accuracy.
        figsize: ``(width, height)`` in inches; by default it grows with the number of slots.

    Returns:
        a figure whose axes have the gids above (plus one colour bar per heat map). The heat
        maps are ``[len(slots), time]`` images, row ``i`` for slot ``slots[i]``; the strip holds
        scatters with gids ``"right"`` and ``"wrong"`` at the steps the model got right and
        wrong.
    """
    trace = _as_trace(model_or_trace, episode, index, "plot_memory")
    chosen, how = _memory_slots(trace, slots, threshold, max_slots)
    time = trace.time
    steps = np.arange(1, time + 1)
    rows = len(chosen)
    map_height = min(3.2, max(1.0, 0.055 * rows))
    if figsize is None:
        figsize = (10.0, 2.3 + 3 * map_height)
    figure = _new_figure(*figsize)
    axes = figure.subplots(5, 1, sharex=True,
                           height_ratios=[0.8, 0.65, map_height, map_height, map_height])
    strip, gate_ax, write_ax, read_ax, usage_ax = axes
    for ax, gid in zip(axes, ("labels", "gate", "write", "read", "usage"), strict=True):
        ax.set_gid(gid)
        ax.tick_params(labelsize=7)

    # right/wrong strip: markers about 0.6 of a step wide
    step_points = 72 * (figsize[0] - 1.8) / time
    size = min(90.0, (0.75 * step_points) ** 2)
    font = min(6.5, 0.45 * step_points)
    labels = trace.labels.numpy()
    colours = np.array([_TAB10[int(label) % len(_TAB10)] for label in labels])
    strip.scatter(steps, np.ones(time), s=size, marker="s", c=colours, gid="labels",
                  linewidths=0)
    correct = trace.correct.numpy()
    strip.scatter(steps[correct], np.zeros(int(correct.sum())), s=size, c=_RIGHT, gid="right",
                  linewidths=0)
    strip.scatter(steps[~correct], np.zeros(int((~correct).sum())), s=size, c=_WRONG,
                  gid="wrong", linewidths=0)
    for t in range(time if font >= 4 else 0):  # numbers only where they can be read
        strip.text(t + 1, 1, str(int(labels[t])), ha="center", va="center", fontsize=font,
                   color="white", fontweight="bold")
        strip.text(t + 1, 0, str(int(trace.presentation[t])), ha="center", va="center",
                   fontsize=font, color="white")
    strip.set_ylim(-0.6, 1.6)
    strip.set_yticks([0, 1], labels=["presentation\n(green: right)", "true label"])
    strip.tick_params(length=0)
    for spine in strip.spines.values():
        spine.set_visible(False)
    accuracy = 100 * float(trace.correct.float().mean())
    strip.set_title(f"Each step's true label, and how many times its class has been shown: "
                    f"green if the prediction was right, red if wrong ({accuracy:.0f}% right)",
                    fontsize=8)

    for head in range(trace.heads):
        gate_ax.plot(steps, trace.write_gate[:, head].numpy(), linewidth=1.0,
                     color=_STEP_COLORS[1 + head % (len(_STEP_COLORS) - 1)],
                     gid=f"head {head + 1}", label=f"head {head + 1}")
    gate_ax.set_ylim(-0.05, 1.05)
    gate_ax.set_yticks([0, 0.5, 1])
    gate_ax.set_ylabel("write gate\n$\\sigma(\\alpha_t)$", fontsize=7)
    legend = gate_ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.1), fontsize=6,
                            frameon=False, handlelength=1.2, labelspacing=0.2)
    legend.set_in_layout(False)  # it sits in the margin the colour bars below make
    gate_ax.set_title("Write gate per head: 1 = write where the head last read, "
                      "0 = write to the least-used slots", fontsize=8)

    maps = (
        (write_ax, trace.write_weights.sum(1), "Greens",
         "Write weights $\\sum_h w^w_t$ (summed over the heads)", "write"),
        (read_ax, trace.read_weights.sum(1), "Blues",
         "Read weights $\\sum_h w^r_t$ (summed over the heads, read after the write)", "read"),
        (usage_ax, trace.usage, "Oranges",
         "Usage $w^u_t = \\gamma\\, w^u_{t-1} + \\sum_h (w^r_t + w^w_t)$ after each step",
         "usage"),
    )
    for ax, values, cmap, heading, name in maps:
        data = values[:, chosen].T.numpy()
        image = ax.imshow(data, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0,
                          extent=(0.5, time + 0.5, rows - 0.5, -0.5))
        _slot_ticks(ax, chosen, "y")
        ax.set_ylabel("memory slot", fontsize=7)
        ax.set_title(heading, fontsize=8)
        bar = figure.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
        bar.ax.tick_params(labelsize=6)
        bar.set_label(name, fontsize=7)
    usage_ax.set_xlabel("step $t$", fontsize=8)
    usage_ax.set_xlim(0.5, time + 0.5)
    usage_ax.set_xticks([1, *range(5, time + 1, 5)] if time >= 10 else list(steps))
    if title is None:
        title = (f"The memory during episode {trace.index} ({trace.n_way}-way, {time} steps)\n"
                 f"rows: {how}")
    figure.suptitle(title, fontsize=9)
    return figure


def plot_memory_step(
    trace: EpisodeTrace,
    step: int,
    *,
    slots: Sequence[int] | None = None,
    threshold: float = 0.1,
    max_slots: int | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """The state of a MANN at one step ``t`` of an episode: what came in, what it answered,
    and what it wrote, read and how used each slot is.

    Axes (gids): ``"image"`` the step's image, with its true label and the label fed in with it
    (the previous step's, none at ``t = 1``); ``"probabilities"`` the probability of each
    episode label (the true one outlined, the predicted one green if right, red if wrong);
    ``"write"``, ``"read"`` bars of the write and read weights summed over the heads, over the
    chosen slots, with the least-used slots before step ``t`` (where LRUA writes
    ``1 - sigmoid(alpha_t)``) marked by triangles (scatter gid ``"least_used"``) and the one
    cleared before the write by a cross (gid ``"cleared"``); ``"usage"`` the usage after the
    step. The bars' scales are fixed over the episode, so steps compare.

    Args:
        trace: from :func:`memory_trace`.
        step: ``1..trace.time``.
        slots, threshold, max_slots: which slots, as in :func:`plot_memory`, except that by
            default every slot written with weight ``threshold`` at some step is drawn
            (``max_slots=None``), so that no step's writes are left out.
        figsize: ``(width, height)`` in inches.
    """
    if not isinstance(trace, EpisodeTrace):
        raise TypeError(f"plot_memory_step needs an EpisodeTrace, got {type(trace).__name__}: "
                        "make one with memory_trace(model, episode, index)")
    _check_int("step", step, 1, trace.time)
    chosen, how = _memory_slots(trace, slots, threshold, max_slots)
    t = int(step) - 1
    figure = _new_figure(*(figsize or (10.0, 5.6)))
    axes = figure.subplot_mosaic([["image", "write"], ["image", "read"],
                                  ["probabilities", "usage"]],
                                 width_ratios=[1, 3.4], height_ratios=[1, 1, 1.15])
    for name, ax in axes.items():
        ax.set_gid(name)
        ax.tick_params(labelsize=7)

    image_ax = axes["image"]
    image = trace.images[t]
    if image.shape[0] == 1:
        image_ax.imshow(image[0].numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        image_ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    image_ax.set_xticks([])
    image_ax.set_yticks([])
    label, shown = int(trace.labels[t]), int(trace.presentation[t])
    previous = trace.previous_label(int(step))
    fed = "none (first step)" if previous is None else f"{previous} (step {step - 1}'s)"
    image_ax.set_title(f"Step {step} of {trace.time}", fontsize=9)
    image_ax.set_xlabel(f"true label {label}, its class shown\nfor the {_ordinal(shown)} time\n"
                        f"label fed in: {fed}", fontsize=7)

    prob_ax = axes["probabilities"]
    probabilities = trace.probabilities[t].numpy()
    predicted, right = int(trace.predicted[t]), bool(trace.correct[t])
    colours = ["0.75"] * trace.n_way
    if predicted >= 0:
        colours[predicted] = _RIGHT if right else _WRONG
    edges = ["black" if n == label else "none" for n in range(trace.n_way)]
    prob_ax.bar(range(trace.n_way), probabilities, color=colours, edgecolor=edges,
                linewidth=1.5, gid="probabilities")
    if trace.label_kind == "one_hot":
        prob_ax.set_ylim(0, 1)
        prob_ax.set_ylabel("probability", fontsize=7)
    else:  # a product of character probabilities: often far below 1
        prob_ax.set_ylim(0, max(float(probabilities.max()), 1e-6) * 1.15)
        prob_ax.set_ylabel("probability of the label's string", fontsize=7)
    prob_ax.set_xticks(range(trace.n_way))
    prob_ax.tick_params(axis="x", labelsize=7 if trace.n_way <= 10 else 5)
    prob_ax.set_xlabel("episode label (true one outlined)", fontsize=7)
    guess = str(predicted) if predicted >= 0 else "no label's string"
    prob_ax.set_title(f"Predicted {guess}, true {label}:\n{'right' if right else 'wrong'}",
                      fontsize=8,
                      color=_RIGHT if right else _WRONG)

    positions = np.arange(len(chosen))
    written = trace.write_weights.sum(1)[:, chosen]
    read = trace.read_weights.sum(1)[:, chosen]
    usage = trace.usage[:, chosen]
    where = {slot: i for i, slot in enumerate(chosen)}
    gates = " ".join(f"{float(g):.2f}" for g in trace.write_gate[t])
    marked = trace.least_used[t].nonzero().flatten().tolist()
    hidden = [slot for slot in marked if slot not in where]
    cleared = int(trace.cleared[t])
    bars = (
        (axes["write"], written, "tab:green",
         f"Write weights $\\sum_h w^w_t$ (gates $\\sigma(\\alpha_t)$: {gates}); "
         "$\\blacktriangledown$ least used before $t$, $\\times$ cleared"
         + (f" (not drawn: slots {hidden})" if hidden else "")),
        (axes["read"], read, "tab:blue",
         "Read weights $\\sum_h w^r_t$ (after the write)"),
        (axes["usage"], usage, "tab:orange", "Usage $w^u_t$ after the step"),
    )
    for ax, values, colour, heading in bars:
        top = max(float(values.max()), 1e-6) * (1.4 if ax is axes["write"] else 1.15)
        ax.bar(positions, values[t].numpy(), width=0.8, color=colour, gid="bars")
        ax.set_ylim(0, top)
        ax.set_xlim(-0.7, len(chosen) - 0.3)
        ax.set_title(heading, fontsize=8)
        _slot_ticks(ax, chosen, "x", most=20)
    write_ax, top = axes["write"], axes["write"].get_ylim()[1]
    shown_marks = [where[slot] for slot in marked if slot in where]
    write_ax.scatter(shown_marks, [0.93 * top] * len(shown_marks), marker="v", s=22,
                     color="black", gid="least_used")
    if cleared in where:
        write_ax.scatter([where[cleared]], [0.81 * top], marker="x", s=22, color=_WRONG,
                         gid="cleared")
    axes["usage"].set_xlabel(f"memory slot ({how})", fontsize=7)
    for name in ("write", "read"):
        axes[name].tick_params(labelbottom=False)
    return figure


def memory_explorer(
    model: MANN,
    episodes: SequenceEpisode | SequenceSampler,
    step: int = 1,
    index: int = 0,
    seed: int | None = None,
    *,
    max_index: int = 99,
    slots: Sequence[int] | None = None,
    threshold: float = 0.1,
    max_slots: int | None = None,
    dpi: int = 90,
) -> Any:
    """A widget to step through a MANN's memory during an episode: a slider for the step
    ``t``, one for the episode, and (for a sampler) a box for the sampler's seed.

    The picture is :func:`plot_memory_step` of :func:`memory_trace`. The model runs once per
    episode (the last few traces are kept), so moving the step slider only redraws.

    Args:
        model: a :class:`~fslearn.methods.mann.MANN`.
        episodes: a batch of sequence episodes (the episode slider goes over the batch), or a
            :class:`~fslearn.data.sequences.SequenceSampler`, whose episode ``index`` is
            episode ``index % batch`` of batch ``index // batch`` (slider ``0..max_index``).
        step, index, seed: the starting values (``seed``: the sampler's by default; only for a
            sampler).
        max_index: the episode slider's end, for a sampler.
        slots, threshold, max_slots: which slots, as in :func:`plot_memory_step`; chosen per
            episode, so the bars stay in place as the step moves.
        dpi: resolution of the picture.

    Returns:
        an ``ipywidgets.VBox`` with ``.controls`` (the inputs by name), ``.image`` and
        ``.update()`` (redraw now; returns the figure).

    Raises:
        TypeError: not a MANN, or ``episodes`` neither a SequenceEpisode nor a SequenceSampler.
        ValueError: a starting value outside its slider's range, or episodes of another shape
            than the model's.
    """
    if isinstance(episodes, SequenceEpisode):
        if seed is not None:
            raise ValueError("seed is for a SequenceSampler; a SequenceEpisode is a fixed batch")
        _check_mann(model, episodes, "memory_explorer")
        time, last = episodes.time, episodes.batch - 1
    elif isinstance(episodes, SequenceSampler):
        seed = episodes.seed if seed is None else seed
        _check_int("seed", seed, 0)
        _check_int("max_index", max_index, 0)
        _check_mann(model, episodes.episode(0), "memory_explorer")
        time, last = episodes.time, max_index
    else:
        raise TypeError(f"memory_explorer needs a SequenceEpisode or a SequenceSampler, got "
                        f"{type(episodes).__name__}")
    _check_int("step", step, 1, time)
    _check_int("index", index, 0, last)

    @functools.lru_cache(maxsize=8)
    def trace_of(index: int, seed: int | None) -> EpisodeTrace:
        if isinstance(episodes, SequenceEpisode):
            return memory_trace(model, episodes, index)
        sampler = copy.copy(episodes)  # batch i depends only on (seed, i)
        sampler.seed = seed
        return memory_trace(model, sampler.episode(index // sampler.batch),
                            index % sampler.batch)

    trace_of(int(index), seed)  # the starting episode must run: a mistake shows here
    controls = {
        "step": _slider(step, 1, time, "step t"),
        "index": _slider(index, 0, last, "episode"),
    }
    if seed is not None:
        controls["seed"] = _seed_box(seed)

    def draw(step: int, index: int, seed: int | None = None) -> Figure:
        return plot_memory_step(trace_of(index, seed), step, slots=slots, threshold=threshold,
                                max_slots=max_slots)

    return _explorer_class()("MemoryExplorer", controls, draw, dpi)


# --------------------------------------------------------------------------------------------
# Matching Networks' attention, and every method's scores for one query


def _check_image_episode(episode: object, caller: str) -> Episode:
    if not isinstance(episode, Episode):
        raise TypeError(f"{caller} needs an Episode of images, got {type(episode).__name__}")
    if episode.support_x.dim() != 5:
        raise ValueError(
            f"{caller} needs images [tasks, n, C, H, W]; this episode holds vectors of shape "
            f"{tuple(episode.support_x.shape)} (an episode gathered from embeddings?)")
    return episode


def _show_image(ax: Axes, image: Tensor, extent: tuple[float, float, float, float] | None = None
                ) -> None:
    """One ``[C, H, W]`` image in [0, 1]: greyscale ink dark on white, colour as it is."""
    if image.shape[0] == 1:
        ax.imshow(image[0].detach().cpu().numpy(), cmap="gray_r", vmin=0, vmax=1,
                  interpolation="nearest", extent=extent)
    else:
        ax.imshow(image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy(),
                  interpolation="nearest", extent=extent)
    ax.set_xticks([])
    ax.set_yticks([])


def _one_task(episode: Episode, task: int) -> Episode:
    """Task ``task`` of a batch of tasks, as an episode of one task."""
    keep = slice(task, task + 1)
    return Episode(support_x=episode.support_x[keep], support_y=episode.support_y[keep],
                   query_x=episode.query_x[keep], query_y=episode.query_y[keep],
                   classes=episode.classes[keep], n_way=episode.n_way)


@torch.no_grad()
def matching_attention(model: MatchingNetwork, episode: Episode, task: int = 0) -> Tensor:
    """The attention ``a(x, x_i)`` of a Matching Network: for every query of one task, a
    softmax over the support images of the cosine similarities of their embeddings
    (with full context embeddings: of ``f(x, S)`` and ``g(x_i, S)``).

    The model runs in evaluation mode (and is put back in its mode afterwards), as it is
    tested. Summing a query's attention over the support images of each class gives the
    model's prediction ``y_hat``, the softmax of ``model(episode)``.

    Args:
        model: a :class:`~fslearn.methods.matching.MatchingNetwork`.
        episode: an episode of images.
        task: which task of a batch of tasks.

    Returns:
        ``[n_query_total, n_support]``; row ``q`` sums to 1, in the order of
        ``episode.support_x`` (class-major).
    """
    if not isinstance(model, MatchingNetwork):
        raise TypeError(f"matching_attention needs a MatchingNetwork, got "
                        f"{type(model).__name__}")
    episode = _check_image_episode(episode, "matching_attention")
    _check_int("task", task, 0, episode.tasks - 1)
    one = _one_task(episode, int(task))
    was_training = model.training
    model.eval()
    try:
        device = next(iter(model.parameters())).device
        both = torch.cat([one.support_x[0], one.query_x[0]]).to(device)
        z = model.embed(both)
        n_support = one.support_x.shape[1]
        support_g = model.support_embeddings(z[None, :n_support])
        query_f = model.query_embeddings(z[None, n_support:], support_g)
        return model.attention_logits(query_f, support_g)[0].softmax(dim=-1).cpu()
    finally:
        model.train(was_training)


@torch.no_grad()
def method_probabilities(methods: Mapping[str, FewShotMethod], episode: Episode,
                         task: int = 0) -> dict[str, Tensor]:
    """Each method's class probabilities ``[n_query_total, n_way]`` for the queries of one
    task: ``method.probabilities(method(episode))``, what ``fslearn predict`` reports, in
    evaluation mode (each method is put back in its mode afterwards).

    The probabilities are each method's own: a softmax of logits (prototypical networks), the
    attention-weighted vote (Matching Networks), mean similarities or relation scores rescaled
    to sum to 1 (Siamese, Relation Networks); compare their rankings more than their values.
    """
    if not isinstance(methods, Mapping) or not methods:
        raise TypeError("methods must be a non-empty mapping of names to FewShotMethods")
    episode = _check_image_episode(episode, "method_probabilities")
    _check_int("task", task, 0, episode.tasks - 1)
    one = _one_task(episode, int(task))
    probabilities = {}
    for name, method in methods.items():
        if not isinstance(method, FewShotMethod):
            raise TypeError(f"methods[{name!r}] is a {type(method).__name__}, not a "
                            f"FewShotMethod")
        was_training = method.training
        method.eval()
        try:
            device = next(iter(method.parameters()), torch.empty(0)).device
            scores = method(one.to(device))
            probabilities[name] = method.probabilities(scores)[0].cpu()
        finally:
            method.train(was_training)
    return probabilities


def plot_matching_attention(
    model: MatchingNetwork,
    episode: Episode,
    query: int = 0,
    *,
    task: int = 0,
    others: Mapping[str, FewShotMethod] | None = None,
    class_names: Sequence[str] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Where a Matching Network looks for one query: its attention over the support set, and
    the class probabilities it makes of it (beside other methods', if given).

    Axes (gids): ``"query"`` the query image; ``"support"`` the support images in one row, in
    the episode's order (class-major), each above its attention bar and framed in its class's
    colour with a width in proportion to its attention (rectangles with gid ``"frame"``);
    ``"attention"`` one bar per support image, ``a(x, x_i)``, coloured by class;
    ``"classes"`` grouped bars of the probability of each class: the Matching Network's
    ``y_hat`` (the attention summed over each class's images), then each of ``others``, one
    bar container per method labelled with its name.

    Args:
        model: a :class:`~fslearn.methods.matching.MatchingNetwork`.
        episode: an episode of images.
        query: which query of the task, ``0..n_way*n_query-1`` (class-major).
        task: which task of a batch of tasks.
        others: more methods, by name, whose probabilities for the query are drawn beside.
        class_names: one name per *dataset* class, to name the classes (up to 5-way).
        figsize: ``(width, height)`` in inches (default 10 x 6.4).
    """
    episode = _check_image_episode(episode, "plot_matching_attention")
    _check_int("task", task, 0, episode.tasks - 1)
    n_way, k_shot = episode.n_way, episode.k_shot
    n_query_total = int(episode.query_y.shape[1])
    _check_int("query", query, 0, n_query_total - 1)
    q = int(query)
    attention = matching_attention(model, episode, task)[q]  # [n_support]
    support_y = episode.support_y[task]
    y_hat = torch.zeros(n_way).index_add_(0, support_y, attention)
    probabilities = {"Matching Network": y_hat}
    if others:
        probabilities.update({name: p[q] for name, p in
                              method_probabilities(others, episode, task).items()})
    true_label, predicted = int(episode.query_y[task, q]), int(y_hat.argmax())
    if class_names is not None:
        labels = [_short_name(class_names[int(c)]) for c in episode.classes[task]]
    else:
        labels = [f"class {n}" for n in range(n_way)]

    n_support = n_way * k_shot
    width, height = figsize or (10.0, 6.4)
    figure = _new_figure(width, height)
    axes = figure.subplot_mosaic([["query", "support"], ["query", "attention"],
                                  ["classes", "classes"]],
                                 width_ratios=[1, 4], height_ratios=[1.1, 1.2, 1.4])
    for name, ax in axes.items():
        ax.set_gid(name)
        ax.tick_params(labelsize=7)
    colours = np.asarray(_TAB10)[np.arange(n_way) % len(_TAB10)]

    query_ax = axes["query"]
    _show_image(query_ax, episode.query_x[task, q])
    right = predicted == true_label
    query_ax.set_title(f"Query {q}, of class {true_label}:\n{labels[true_label]}", fontsize=8)
    query_ax.set_xlabel(f"Matching Network: class {predicted}\n"
                        f"({'right' if right else 'wrong'})", fontsize=8,
                        color=_RIGHT if right else _WRONG)

    # The support images above their attention bars: each class's K images in the span of its
    # K bars, in the grid of rows x columns that draws them largest and square.
    support_ax, attention_ax = axes["support"], axes["attention"]
    slot_inches = 0.8 * width * 0.72 / n_support  # about the width of one bar's slot
    row_inches = max(0.3, (height - 1.4) * 1.1 / 3.7)  # about the height of the image row
    group_inches = k_shot * slot_inches
    rows = max(range(1, k_shot + 1), key=lambda r: min(group_inches / math.ceil(k_shot / r),
                                                       row_inches / r))
    columns = math.ceil(k_shot / rows)
    side = 0.9 * min(group_inches / columns, row_inches / rows)  # inches
    image_width, image_height = side / slot_inches, side / row_inches  # in data units
    cell_width, cell_height = k_shot / columns, 1 / rows
    most = float(attention.max())
    patches = _require("matplotlib.patches")
    for i, weight in enumerate(attention.tolist()):
        label, shot = divmod(i, k_shot)
        row, column = divmod(shot, columns)
        left = label * k_shot - 0.5 + column * cell_width + (cell_width - image_width) / 2
        bottom = 1 - (row + 1) * cell_height + (cell_height - image_height) / 2
        _show_image(support_ax, episode.support_x[task, i],
                    extent=(left, left + image_width, bottom, bottom + image_height))
        support_ax.add_patch(patches.Rectangle(
            (left, bottom), image_width, image_height, fill=False,
            edgecolor=colours[int(support_y[i])],
            linewidth=0.3 + 3.2 * weight / max(most, 1e-12), gid="frame"))
    support_ax.set_xlim(-0.6, n_support - 0.4)
    support_ax.set_ylim(-0.02, 1.02)
    support_ax.set_aspect("auto")
    support_ax.axis("off")
    support_ax.set_title("Support set (frame width: attention; colour: class)", fontsize=8)

    attention_ax.bar(np.arange(n_support), attention.numpy(), color=colours[support_y.numpy()],
                     width=0.8, gid="attention")
    if n_support <= 25:
        for i, weight in enumerate(attention.tolist()):
            attention_ax.text(i, weight, f"{weight:.2f}", ha="center", va="bottom", fontsize=6)
    attention_ax.set_xlim(-0.6, n_support - 0.4)
    attention_ax.set_ylim(0, max(most * 1.2, 1e-6))
    attention_ax.set_title(r"Attention $a(\hat x, x_i)$: a softmax over the support images of "
                           r"the cosine similarities", fontsize=8)
    attention_ax.set_xticks([n * k_shot + (k_shot - 1) / 2 for n in range(n_way)],
                            labels=[str(n) for n in range(n_way)])
    attention_ax.set_xlabel("support images of class ...", fontsize=7)

    classes_ax = axes["classes"]
    methods = list(probabilities)
    step = 0.8 / len(methods)
    for m, name in enumerate(methods):
        offsets = np.arange(n_way) - 0.4 + step * (m + 0.5)
        classes_ax.bar(offsets, probabilities[name].numpy(), width=step, label=name,
                       color=f"C{m}", edgecolor="none")
    classes_ax.axvspan(true_label - 0.45, true_label + 0.45, color="0.9", zorder=0)
    names = ([f"{n}: {labels[n]}" for n in range(n_way)] if n_way <= 5 else
             [str(n) for n in range(n_way)])
    classes_ax.set_xticks(range(n_way), labels=names)
    classes_ax.set_xlim(-0.6, n_way - 0.4)
    classes_ax.set_ylim(0, 1.05)
    classes_ax.set_ylabel("probability", fontsize=7)
    classes_ax.set_xlabel("episode class (the query's own shaded)", fontsize=7)
    classes_ax.set_title(r"Class probabilities: $\hat y$ (the attention summed per class)"
                         + (", and the other methods'" if others else ""), fontsize=8)
    classes_ax.legend(fontsize=7, ncols=min(len(methods), 4), loc="upper right")
    figure.suptitle(f"{n_way}-way {k_shot}-shot episode, query {q} of {n_query_total}",
                    fontsize=9)
    return figure


def attention_explorer(
    model: MatchingNetwork,
    episodes: Episode | EpisodeSampler,
    query: int = 0,
    index: int = 0,
    seed: int | None = None,
    *,
    others: Mapping[str, FewShotMethod] | None = None,
    max_index: int = 99,
    dpi: int = 90,
) -> Any:
    """A widget to pick a query and see a Matching Network's attention over the support set
    (and other methods' probabilities): a slider for the query, one for the episode (the task
    of a batch, or the sampler's episode index), and for a sampler a box for its seed.

    The picture is :func:`plot_matching_attention`.

    Args:
        model: a :class:`~fslearn.methods.matching.MatchingNetwork`.
        episodes: an episode of images (the episode slider goes over its tasks), or an
            :class:`~fslearn.data.EpisodeSampler`, whose episode ``index`` is drawn
            (slider ``0..max_index``).
        query, index, seed: the starting values (``seed``: the sampler's by default; only for
            a sampler).
        others: more methods, by name, drawn beside the Matching Network.
        max_index: the episode slider's end, for a sampler.
        dpi: resolution of the picture.

    Returns:
        an ``ipywidgets.VBox`` with ``.controls`` (the inputs by name), ``.image`` and
        ``.update()`` (redraw now; returns the figure).

    Raises:
        TypeError: not a MatchingNetwork, or ``episodes`` neither an Episode nor an
            EpisodeSampler.
        ValueError: a starting value outside its slider's range.
    """
    if not isinstance(model, MatchingNetwork):
        raise TypeError(f"attention_explorer needs a MatchingNetwork, got "
                        f"{type(model).__name__}")
    if isinstance(episodes, Episode):
        if seed is not None:
            raise ValueError("seed is for an EpisodeSampler; an Episode is a fixed batch")
        _check_image_episode(episodes, "attention_explorer")
        queries, last = int(episodes.query_y.shape[1]), episodes.tasks - 1
    elif isinstance(episodes, EpisodeSampler):
        seed = episodes.seed if seed is None else seed
        _check_int("seed", seed, 0)
        _check_int("max_index", max_index, 0)
        queries, last = episodes.n_way * episodes.n_query, max_index
    else:
        raise TypeError(f"attention_explorer needs an Episode or an EpisodeSampler, got "
                        f"{type(episodes).__name__}")
    _check_int("query", query, 0, queries - 1)
    _check_int("index", index, 0, last)

    @functools.lru_cache(maxsize=8)
    def episode_of(index: int, seed: int | None) -> tuple[Episode, int]:
        if isinstance(episodes, Episode):
            return episodes, index
        sampler = copy.copy(episodes)  # episode i depends only on (seed, i)
        sampler.seed = seed
        return sampler.episode(index), 0

    start, start_task = episode_of(int(index), seed)
    # the starting setting must draw: a mistake shows here, not as a message in the widget
    plot_matching_attention(model, start, query, task=start_task, others=others)
    controls = {
        "query": _slider(query, 0, queries - 1, "query"),
        "index": _slider(index, 0, last, "episode"),
    }
    if seed is not None:
        controls["seed"] = _seed_box(seed)

    def draw(query: int, index: int, seed: int | None = None) -> Figure:
        episode, task = episode_of(index, seed)
        return plot_matching_attention(model, episode, query, task=task, others=others)

    return _explorer_class()("AttentionExplorer", controls, draw, dpi)

