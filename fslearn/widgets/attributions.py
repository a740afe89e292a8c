"""Section 7.6 (interpretability): why a metric method classified one query as it did.

* :func:`plot_attributions`: the query, the support set, the query's distances to the
  prototypes (or its scores), and the attribution of the decision to the pixels of the query and
  of the support image of the chosen class (:mod:`fslearn.interpret`, with Captum).
* :func:`attribution_explorer`: the same picture with sliders for the query and the episode and
  a choice of attribution method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.interpret import (
    Attribution,
    decision_function,
    query_attributions,
    support_attributions,
)
from fslearn.methods.base import MetricMethod
from fslearn.methods.protonet import PrototypicalNetwork
from fslearn.plotting import BOOK_WIDTH_IN, DISPLAY_DPI
from fslearn.widgets._explorer import (
    _RIGHT,
    _TAB10,
    _WRONG,
    _check_int,
    _episode_fetcher,
    _explorer_class,
    _explorer_ranges,
    _new_figure,
    _require,
    _seed_box,
    _slider,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["attribution_explorer", "plot_attributions"]

HOWS = ("integrated_gradients", "occlusion")
_HOW_NAMES = {"integrated_gradients": "integrated gradients", "occlusion": "occlusion"}


def _check(method: object, episode: object, caller: str) -> Episode:
    if not isinstance(method, MetricMethod):
        raise TypeError(f"{caller} needs a metric method (protonet, matchingnet, relationnet), "
                        f"got {type(method).__name__}")
    if not isinstance(episode, Episode):
        raise TypeError(f"{caller} needs an Episode of images, got {type(episode).__name__}")
    if episode.support_x.dim() != 5:
        raise ValueError(f"{caller} needs images [tasks, n, C, H, W]; this episode holds "
                         f"vectors of shape {tuple(episode.support_x.shape)}")
    return episode


def _grey(ax: Axes, image: Tensor) -> None:
    ax.imshow(image[0].detach().cpu().numpy(), cmap="gray_r", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_map(ax: Axes, image: Tensor, found: Attribution, title: str) -> None:
    """The attribution summed over channels, red for evidence for the class, blue against,
    with the drawing's outline on top."""
    values = found.map.sum(0).detach().cpu().numpy()
    limit = float(np.abs(values).max()) or 1.0
    ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    ax.contour(image[0].detach().cpu().numpy(), levels=[0.5], colors="0.2", linewidths=0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def _draw_support(ax: Axes, support_x: Tensor, support_y: Tensor, predicted: int,
                  chosen: int) -> None:
    """The support images side by side, each framed in its class's colour; the one explained
    on the right is marked."""
    count, size = support_x.shape[0], support_x.shape[-1]
    gap = max(2, size // 8)
    strip = np.zeros((size, count * (size + gap) - gap))  # blank paper between the images
    patches = _require("matplotlib.patches")
    for i in range(count):
        left = i * (size + gap)
        strip[:, left:left + size] = support_x[i, 0].detach().cpu().numpy()
    ax.imshow(strip, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    for i in range(count):
        label = int(support_y[i])
        colour = _TAB10[label % len(_TAB10)]
        left = i * (size + gap) - 0.5
        ax.add_patch(patches.Rectangle((left, -0.5), size, size, fill=False, edgecolor=colour,
                                       linewidth=2.5 if i == chosen else 1.0, gid="frame"))
        ax.text(left + size / 2, size + 1, f"class {label}" + (" (chosen)" if label == predicted
                                                                 else ""),
                ha="center", va="top", fontsize=6, color=colour)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylim(size + 5, -0.5)
    ax.set_title("the support set", fontsize=8)


def _draw_scores(ax: Axes, scores: Tensor, true_label: int, predicted: int,
                 protonet: bool) -> None:
    n_way = scores.shape[0]
    values = (-scores if protonet else scores).detach().cpu().numpy()
    colours = [_TAB10[n % len(_TAB10)] for n in range(n_way)]
    bars = ax.bar(range(n_way), values, color=colours, gid="scores")
    bars[predicted].set_edgecolor("black")
    bars[predicted].set_linewidth(1.5)
    ax.set_xticks(range(n_way), [f"class {n}" + (" (true)" if n == true_label else "")
                                 for n in range(n_way)], fontsize=7)
    ax.set_ylabel("squared distance\nto the prototype" if protonet else "score", fontsize=7)
    ax.set_title("the decision: the " + ("nearest prototype" if protonet else "highest score")
                 + " (outlined) wins", fontsize=8)


def plot_attributions(
    method: MetricMethod,
    episode: Episode,
    query: int = 0,
    *,
    task: int = 0,
    how: str = "integrated_gradients",
    n_steps: int = 32,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Why ``method`` put query ``query`` of task ``task`` in the class it chose.

    Axes (gids): ``"query"`` the query image, titled with its true and predicted class;
    ``"query_map"`` the attribution of the chosen class's score to the query's pixels;
    ``"support_image"`` and ``"support_map"`` the first support image of the chosen class and
    the attribution of the same score to its pixels; ``"support"`` the support set in one strip
    (frames with gid ``"frame"``, in the classes' colours); ``"scores"`` one bar per class: the
    squared distance of the query to each prototype (a Prototypical Network) or the score.

    Args:
        method: a metric method (scores from embeddings).
        episode: an episode of images.
        query: which query of the task (class-major).
        task: which task of a batch of tasks.
        how: ``"integrated_gradients"`` (``n_steps`` points) or ``"occlusion"`` (4x4 windows,
            stride 2), both from a blank image (see
            :func:`fslearn.interpret.query_attributions`).
        figsize: ``(width, height)`` in inches (default: the book's width x 4.6).
    """
    episode = _check(method, episode, "plot_attributions")
    if how not in HOWS:
        raise ValueError(f"how must be one of {', '.join(HOWS)}, got {how!r}")
    _check_int("task", task, 0, episode.tasks - 1)
    q = _check_int("query", query, 0, int(episode.query_y.shape[1]) - 1)
    was_training = method.training
    method.eval()
    try:
        with torch.no_grad():
            scores = decision_function(method, episode, task)(episode.query_x[task, q][None])[0]
    finally:
        method.train(was_training)
    predicted, true_label = int(scores.argmax()), int(episode.query_y[task, q])
    support_y = episode.support_y[task]
    chosen = int((support_y == predicted).nonzero()[0, 0])
    on_query = query_attributions(method, episode, q, task=task, target=predicted, how=how,
                                  n_steps=n_steps)
    on_support = support_attributions(method, episode, chosen, q, task=task, target=predicted,
                                      how=how, n_steps=n_steps)

    width, height = figsize or (BOOK_WIDTH_IN, 4.6)
    figure = _new_figure(width, height)
    axes = figure.subplot_mosaic([["query", "query_map", "support_image", "support_map"],
                                  ["support", "support", "scores", "scores"]],
                                 height_ratios=[1.2, 1.0])
    for name, ax in axes.items():
        ax.set_gid(name)
        ax.tick_params(labelsize=7)
    _grey(axes["query"], episode.query_x[task, q])
    verdict = "right" if predicted == true_label else "wrong"
    axes["query"].set_title(f"query {q}: class {true_label},\nput in class {predicted} "
                            f"({verdict})", fontsize=7,
                            color=_RIGHT if verdict == "right" else _WRONG)
    name = _HOW_NAMES[how]
    _draw_map(axes["query_map"], episode.query_x[task, q], on_query,
              f"{name}: its pixels'\nshare of the score")
    _grey(axes["support_image"], episode.support_x[task, chosen])
    axes["support_image"].set_title(f"support image {chosen}\n(class {predicted})", fontsize=7)
    _draw_map(axes["support_map"], episode.support_x[task, chosen], on_support,
              f"{name}: its pixels'\nshare of the same score")
    _draw_support(axes["support"], episode.support_x[task], support_y, predicted, chosen)
    _draw_scores(axes["scores"], scores, true_label, predicted,
                 isinstance(method, PrototypicalNetwork))
    figure.suptitle(f"{episode.n_way}-way {episode.k_shot}-shot episode: red pixels pushed "
                    f"the query towards class {predicted}, blue ones away", fontsize=8)
    return figure


def attribution_explorer(
    method: MetricMethod,
    episodes: Episode | EpisodeSampler,
    query: int = 0,
    index: int = 0,
    seed: int | None = None,
    *,
    how: str = "integrated_gradients",
    max_index: int = 99,
    dpi: int = DISPLAY_DPI,
) -> Any:
    """A widget to pick a query and an attribution method and see :func:`plot_attributions`:
    a slider for the query, one for the episode (the task of a batch, or the sampler's episode
    index), a menu for ``how``, and for a sampler a box for its seed.

    Returns:
        an ``ipywidgets.VBox`` with ``.controls`` (the inputs by name), ``.image`` and
        ``.update()`` (redraw now; returns the figure).

    Raises:
        TypeError: not a metric method, or ``episodes`` neither an Episode nor an
            EpisodeSampler.
        ValueError: a starting value outside its control's range.
    """
    queries, last, seed = _explorer_ranges(
        episodes, seed, max_index, "attribution_explorer",
        lambda episode, caller: _check(method, episode, caller))
    _check_int("query", query, 0, queries - 1)
    _check_int("index", index, 0, last)
    episode_of = _episode_fetcher(episodes)
    start, start_task = episode_of(int(index), seed)
    # the starting setting must draw: a mistake shows here, not as a message in the widget
    plot_attributions(method, start, query, task=start_task, how=how)
    widgets = _require("ipywidgets")
    controls = {
        "query": _slider(query, 0, queries - 1, "query"),
        "index": _slider(index, 0, last, "episode"),
        "how": widgets.Dropdown(options=[(_HOW_NAMES[h], h) for h in HOWS], value=how,
                                description="attribution",
                                style={"description_width": "initial"}),
    }
    if seed is not None:
        controls["seed"] = _seed_box(seed)

    def draw(query: int, index: int, how: str, seed: int | None = None) -> Figure:
        episode, task = episode_of(index, seed)
        return plot_attributions(method, episode, query, task=task, how=how)

    return _explorer_class()("AttributionExplorer", controls, draw, dpi, columns=4)
