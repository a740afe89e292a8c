"""Chapter 2 (prototypical networks): class prototypes and the decision regions of the
squared-Euclidean prototype classifier on 2-D points, as the number of shots grows.

* :func:`gaussian_classes`: the seeded 2-D toy problem.
* :func:`plot_prototypes`: support points, prototypes and decision regions.
* :func:`prototype_explorer`: the same picture with sliders for shots, seed and way.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from fslearn.methods.protonet import prototypes, squared_euclidean_distance
from fslearn.plotting import DISPLAY_DPI, in_book_style
from fslearn.widgets._explorer import _TAB10, _check_int, _explorer_class, _new_figure, _slider

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["gaussian_classes", "plot_prototypes", "prototype_explorer"]


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


def _decision_regions(points: Tensor, centres: Tensor, resolution: int
                      ) -> tuple[np.ndarray, Tensor, Tensor]:
    """The nearest prototype of every point of a ``resolution x resolution`` grid over the
    points' bounding box, widened by 8% on each side (by 1 where the points are flat).

    Returns:
        ``(region [resolution, resolution], low [2], high [2])``: the index of the nearest of
        ``centres [1, n_way, 2]`` at each grid point (row = y, column = x, from ``low`` up), and
        the corners of the grid.
    """
    low, high = points.min(dim=0).values, points.max(dim=0).values
    margin = torch.where(high > low, 0.08 * (high - low), torch.ones_like(low))
    low, high = low - margin, high + margin
    xs = torch.linspace(float(low[0]), float(high[0]), resolution)
    ys = torch.linspace(float(low[1]), float(high[1]), resolution)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(1, -1, 2)
    region = squared_euclidean_distance(grid, centres)[0].argmin(dim=-1)
    return region.reshape(resolution, resolution).numpy(), low, high


def _scatter_points(ax: Axes, colors: np.ndarray, queries: tuple[Tensor, Tensor],
                    support: tuple[Tensor, Tensor], centres: Tensor, means: Tensor | None
                    ) -> None:
    """The query points, support points, prototypes and (if known) true class means, as the
    scatter collections with gids ``"queries"``, ``"support"``, ``"prototypes"``, ``"means"``,
    in this order (the order the tests and the legend rely on)."""
    (query_x, query_y), (support_x, support_y) = queries, support
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


def _accuracy_title(centres: Tensor, query_x: Tensor, query_y: Tensor, k_shot: int) -> str:
    """The shot count and the accuracy of the nearest of ``centres`` ``[1, n_way, 2]`` on the
    query points ``query_x`` ``[Q, 2]`` of labels ``query_y`` ``[Q]``."""
    query_pred = squared_euclidean_distance(query_x[None], centres)[0].argmin(dim=-1)
    accuracy = float((query_pred == query_y).float().mean())
    shots = "shot" if k_shot == 1 else "shots"
    return (f"{centres.shape[1]}-way, {k_shot} {shots}: accuracy {100 * accuracy:.0f}% "
            f"on {len(query_y)} queries")


def _frame(ax: Axes, low: Tensor, high: Tensor) -> None:
    """Axes that end at the grid's corners ``low``, ``high`` ``[2]``, without ticks, and a
    legend with class-neutral markers (grey; the true means keep their black)."""
    ax.set_xlim(float(low[0]), float(high[0]))
    ax.set_ylim(float(low[1]), float(high[1]))
    ax.set_xticks([])
    ax.set_yticks([])
    legend = ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    for handle in legend.legend_handles:
        if handle.get_gid() != "means" and hasattr(handle, "set_facecolor"):
            handle.set_facecolor("0.6")


@in_book_style
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

    region, low, high = _decision_regions(points, centres, resolution)

    colors = np.asarray(_TAB10[:n_way])
    if ax is None:
        figure = _new_figure(4.6, 4.2)
        ax = figure.subplots()
    else:
        figure = ax.figure
    tint = 0.75 + 0.25 * colors  # pale versions of the class colours for the regions
    ax.imshow(tint[region], origin="lower", interpolation="nearest", aspect="auto",
              extent=(float(low[0]), float(high[0]), float(low[1]), float(high[1])))
    _scatter_points(ax, colors, (query_x, query_y), (support_x, support_y), centres, means)
    _frame(ax, low, high)
    if title is None:
        title = _accuracy_title(centres, query_x, query_y, k_shot)
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
    dpi: int = DISPLAY_DPI,
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

