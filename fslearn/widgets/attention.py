"""Chapter 4 (metric methods): a Matching Network's attention over the support set for one
query, and the class probabilities it and other methods give that query.

* :func:`matching_attention`: the attention ``a(x, x_i)`` of every query of one task.
* :func:`method_probabilities`: each method's class probabilities for the queries of one task.
* :func:`plot_matching_attention`: the attention and the probabilities for one query.
* :func:`attention_explorer`: the same picture with sliders for the query and the episode.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from fslearn._modes import evaluation_mode
from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.methods.base import FewShotMethod
from fslearn.methods.matching import MatchingNetwork
from fslearn.plotting import BOOK_WIDTH_IN, DISPLAY_DPI, in_book_style
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
    _short_name,
    _slider,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "attention_explorer",
    "matching_attention",
    "method_probabilities",
    "plot_matching_attention",
]


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
    with evaluation_mode(model):
        device = next(iter(model.parameters())).device
        both = torch.cat([one.support_x[0], one.query_x[0]]).to(device)
        z = model.embed(both)
        n_support = one.support_x.shape[1]
        support_g = model.support_embeddings(z[None, :n_support])
        query_f = model.query_embeddings(z[None, n_support:], support_g)
        return model.attention_logits(query_f, support_g)[0].softmax(dim=-1).cpu()


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
        with evaluation_mode(method):
            device = next(iter(method.parameters()), torch.empty(0)).device
            scores = method(one.to(device))
            probabilities[name] = method.probabilities(scores)[0].cpu()
    return probabilities


def _class_labels(episode: Episode, task: int, class_names: Sequence[str] | None
                  ) -> list[str]:
    """How the picture names each class of the task: its dataset class's name, shortened,
    where ``class_names`` (one per dataset class) are given, else ``class n``."""
    if class_names is not None:
        return [_short_name(class_names[int(c)]) for c in episode.classes[task]]
    return [f"class {n}" for n in range(episode.n_way)]


def _draw_query(query_ax: Axes, image: Tensor, q: int, truth_and_prediction: tuple[int, int],
                labels: Sequence[str]) -> None:
    """The query image ``[C, H, W]``, titled with its class, and the Matching Network's answer
    below it, coloured right or wrong."""
    true_label, predicted = truth_and_prediction
    _show_image(query_ax, image)
    right = predicted == true_label
    query_ax.set_title(f"Query {q}, of class {true_label}:\n{labels[true_label]}", fontsize=8)
    query_ax.set_xlabel(f"Matching Network:\nclass {predicted} "
                        f"({'right' if right else 'wrong'})", fontsize=8,
                        color=_RIGHT if right else _WRONG)


def _draw_support_images(support_ax: Axes, support_x: Tensor, support_y: Tensor,
                         attention: Tensor, colours: np.ndarray, k_shot: int,
                         figsize: tuple[float, float]) -> None:
    """The support images ``[n_support, C, H, W]`` of one task in one row, above their
    attention bars: each class's K images in the span of its K bars, in the grid of rows x
    columns that draws them largest and square (for a figure of ``figsize`` inches), each framed
    in its class's colour with a width in proportion to its attention (rectangles with gid
    ``"frame"``)."""
    width, height = figsize
    n_support = len(attention)
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
        _show_image(support_ax, support_x[i],
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


def _draw_attention_bars(attention_ax: Axes, attention: Tensor, support_y: Tensor,
                         colours: np.ndarray, n_way: int, k_shot: int) -> None:
    """One bar per support image, ``a(x, x_i)``, coloured by class (gid ``"attention"``), with
    its value written above when there are at most 25."""
    n_support, most = len(attention), float(attention.max())
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


def _draw_class_probabilities(classes_ax: Axes, probabilities: Mapping[str, Tensor],
                              true_label: int, labels: Sequence[str], with_others: bool) -> None:
    """Grouped bars of the probability of each class, one bar container per method labelled
    with its name, the query's own class shaded."""
    n_way = len(labels)
    methods = list(probabilities)
    step = 0.8 / len(methods)
    for m, name in enumerate(methods):
        offsets = np.arange(n_way) - 0.4 + step * (m + 0.5)
        classes_ax.bar(offsets, probabilities[name].numpy(), width=step, label=name,
                       color=f"C{m}", edgecolor="none")
    classes_ax.axvspan(true_label - 0.45, true_label + 0.45, color="0.9", zorder=0)
    # Long class names wrap to the width of their group of bars, so that neighbours never overlap.
    wrap_at = max(8, int(90 / n_way))
    names = (["\n".join(textwrap.wrap(f"{n}: {labels[n]}", wrap_at)) for n in range(n_way)]
             if n_way <= 5 else [str(n) for n in range(n_way)])
    classes_ax.set_xticks(range(n_way), labels=names)
    classes_ax.set_xlim(-0.6, n_way - 0.4)
    classes_ax.set_ylim(0, 1.05)
    classes_ax.set_ylabel("probability", fontsize=7)
    classes_ax.set_xlabel("episode class (the query's own shaded)", fontsize=7)
    classes_ax.set_title(r"Class probabilities: $\hat y$ (the attention summed per class)"
                         + (", and the other methods'" if with_others else ""), fontsize=8)
    classes_ax.legend(fontsize=7, ncols=min(len(methods), 4), loc="upper right")


@in_book_style
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
        figsize: ``(width, height)`` in inches (default: the book's width x 5.6).
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
    labels = _class_labels(episode, task, class_names)

    width, height = figsize or (BOOK_WIDTH_IN, 5.6)
    figure = _new_figure(width, height)
    axes = figure.subplot_mosaic([["query", "support"], ["query", "attention"],
                                  ["classes", "classes"]],
                                 width_ratios=[1, 4], height_ratios=[1.1, 1.2, 1.4])
    for name, ax in axes.items():
        ax.set_gid(name)
        ax.tick_params(labelsize=7)
    colours = np.asarray(_TAB10)[np.arange(n_way) % len(_TAB10)]

    _draw_query(axes["query"], episode.query_x[task, q], q, (true_label, predicted), labels)
    _draw_support_images(axes["support"], episode.support_x[task], support_y, attention,
                         colours, k_shot, (width, height))
    _draw_attention_bars(axes["attention"], attention, support_y, colours, n_way, k_shot)
    _draw_class_probabilities(axes["classes"], probabilities, true_label, labels,
                              bool(others))
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
    dpi: int = DISPLAY_DPI,
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
        dpi: CSS pixels per inch of the picture as shown (rendered at twice that).

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
    queries, last, seed = _explorer_ranges(episodes, seed, max_index, "attention_explorer",
                                           _check_image_episode)
    _check_int("query", query, 0, queries - 1)
    _check_int("index", index, 0, last)
    episode_of = _episode_fetcher(episodes)
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

