"""Chapter 5 (optimisation as meta-learning): sinusoid regression models (MAML, the pretrained
baseline) fitted to one task after a few gradient steps on ``K`` points.

* :func:`sinusoid_fits`: one model's predictions after a number of inner steps.
* :func:`plot_sinusoid_fits`: the picture of Figure 2 of Finn et al. (2017).
* :func:`sinusoid_explorer`: the same picture with sliders for the task, ``K`` and the steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from fslearn._modes import evaluation_mode
from fslearn.data.episodes import Episode
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.methods.base import FewShotMethod
from fslearn.plotting import BOOK_WIDTH_IN, DISPLAY_DPI, in_book_style
from fslearn.widgets._explorer import (
    _STEP_COLORS,
    _check_int,
    _explorer_class,
    _new_figure,
    _seed_box,
    _slider,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_sinusoid_fits", "sinusoid_explorer", "sinusoid_fits"]


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
    # torch.no_grad: the inner loop still takes its gradient steps (torch.func.grad)
    with evaluation_mode(model, test_inner_steps=int(steps)), torch.no_grad():
        return model(episode).reshape(-1).cpu()


def _draw_fits(ax: Axes, model: FewShotMethod, support: tuple[Tensor, Tensor], x: Tensor,
               truth: Tensor, steps: tuple[int, ...]) -> list[str]:
    """One panel's curves: the true curve (gid ``"truth"``), the model's fit after each number
    of ``steps`` (gids ``"steps=S"``) and the support points (gid ``"support"``), in this order.

    Returns:
        each fit's mean squared error against ``truth`` over ``x``, formatted for the title.
    """
    support_x, support_y = support
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
    return errors


def _check_fit_request(k_shots: int | Sequence[int], steps: int | Sequence[int], seed: int,
                       index: int, tasks: SinusoidRegression | None, resolution: int
                       ) -> tuple[tuple[int, ...], tuple[int, ...], SinusoidRegression]:
    """The checked arguments of :func:`plot_sinusoid_fits`: ``(k_shots, steps in increasing
    order, tasks)``, the paper's task distribution where ``tasks`` is None."""
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
    return k_shots, steps, tasks


def _label_axes(ax: Axes, bottom_row: bool, first_column: bool) -> None:
    """Small tick labels; ``x`` under the bottom row of panels, ``y`` beside the first column."""
    ax.tick_params(labelsize=7)
    if bottom_row:
        ax.set_xlabel("$x$", fontsize=8)
    if first_column:
        ax.set_ylabel("$y$", fontsize=8)


@in_book_style
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
        figsize: ``(width, height)`` in inches; by default it grows with the grid, up to the
            book's width.

    Returns:
        a figure with one row of axes per ``K`` and one column per model, and one legend below
        them. Each axes holds lines with gids ``"truth"`` and ``"steps=S"`` for every ``S`` in
        ``steps``, and a scatter collection with gid ``"support"``.
    """
    models = _regression_models(models)
    k_shots, steps, tasks = _check_fit_request(k_shots, steps, seed, index, tasks, resolution)
    task = tasks.sampler(max(k_shots), 1, seed=seed, split="test").episode(index)
    amplitude, phase = (float(v) for v in task.classes[0])
    x = torch.linspace(*tasks.x_range, resolution)
    truth = amplitude * torch.sin(x - phase)
    limit = 1.2 * tasks.amplitude[1]

    if figsize is None:
        figsize = (min(BOOK_WIDTH_IN, 0.4 + 3.2 * len(models)), 0.9 + 2.6 * len(k_shots))
    figure = _new_figure(*figsize)
    axes = np.asarray(figure.subplots(len(k_shots), len(models), squeeze=False,
                                      sharex=True, sharey=True))
    counts = "/".join(str(count) for count in steps)
    for row, k_shot in enumerate(k_shots):
        support_x, support_y = task.support_x[0, :k_shot, 0], task.support_y[0, :k_shot, 0]
        for column, (label, model) in enumerate(models.items()):
            ax = axes[row, column]
            errors = _draw_fits(ax, model, (support_x, support_y), x, truth, steps)
            ax.set_xlim(*tasks.x_range)
            ax.set_ylim(-limit, limit)
            ax.set_title(f"{label}, $K={k_shot}$\nMSE after {counts} "
                         f"step{'s' if steps != (1,) else ''}: {' / '.join(errors)}", fontsize=8)
            _label_axes(ax, row == len(k_shots) - 1, column == 0)
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
    dpi: int = DISPLAY_DPI,
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

