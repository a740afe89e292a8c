"""Chapter 6 (memory-augmented networks): the external memory of a MANN during one sequence
episode: where it wrote and read at every step, the slots' usage, and whether each answer was
right.

* :func:`plot_memory`: the whole episode, step by step, as heat maps.
* :func:`plot_memory_step`: the state at one step.
* :func:`memory_explorer`: :func:`plot_memory_step` with sliders for the step and the episode.

The model runs once per episode, in :func:`fslearn.widgets.mann_trace.memory_trace`.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fslearn.data.sequences import SequenceEpisode, SequenceSampler
from fslearn.methods.mann import MANN
from fslearn.plotting import BOOK_WIDTH_IN, DISPLAY_DPI, MIN_FONT_PT, in_book_style
from fslearn.widgets._explorer import (
    _RIGHT,
    _STEP_COLORS,
    _TAB10,
    _WRONG,
    _check_int,
    _explorer_class,
    _new_figure,
    _seed_box,
    _slider,
)
from fslearn.widgets.mann_trace import EpisodeTrace, _as_trace, _check_mann, memory_trace

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["memory_explorer", "plot_memory", "plot_memory_step"]


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


def _draw_answer_strip(strip: Axes, trace: EpisodeTrace, width: float) -> None:
    """The top strip of :func:`plot_memory`: each step's true label (scatter gid ``"labels"``)
    above a circle with its presentation number, green where the model was right (gid
    ``"right"``) and red where it was wrong (gid ``"wrong"``).

    The markers are about 0.6 of a step wide in a figure ``width`` inches wide; the numbers are
    written only where they can be read.
    """
    time = trace.time
    steps = np.arange(1, time + 1)
    step_points = 72 * (width - 1.8) / time
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
    for t in range(time if font >= MIN_FONT_PT else 0):  # numbers only where they can be read
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
    strip.set_title(f"Each step's true label, and how many times its class has been shown:\n"
                    f"green if the prediction was right, red if wrong ({accuracy:.0f}% right)",
                    fontsize=8)


def _draw_write_gates(gate_ax: Axes, trace: EpisodeTrace) -> None:
    """Each head's write gate ``sigmoid(alpha_t)`` over the steps (lines with gids ``"head 1"``,
    ``"head 2"``...), with a legend in the right margin."""
    steps = np.arange(1, trace.time + 1)
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


def _draw_memory_maps(figure: Figure, map_axes: Sequence[Axes], trace: EpisodeTrace,
                      chosen: Sequence[int]) -> None:
    """The write, read and usage heat maps of :func:`plot_memory` into ``map_axes`` (in this
    order), each a ``[len(chosen), time]`` image, row ``i`` for slot ``chosen[i]``, with its
    colour bar."""
    write_ax, read_ax, usage_ax = map_axes
    time, rows = trace.time, len(chosen)
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


@in_book_style
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
        figsize: ``(width, height)`` in inches; by default the book's width, and a height that
            grows with the number of slots.

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
        figsize = (BOOK_WIDTH_IN, 2.3 + 3 * map_height)
    figure = _new_figure(*figsize)
    axes = figure.subplots(5, 1, sharex=True,
                           height_ratios=[0.8, 0.65, map_height, map_height, map_height])
    strip, gate_ax, write_ax, read_ax, usage_ax = axes
    for ax, gid in zip(axes, ("labels", "gate", "write", "read", "usage"), strict=True):
        ax.set_gid(gid)
        ax.tick_params(labelsize=7)

    _draw_answer_strip(strip, trace, figsize[0])
    _draw_write_gates(gate_ax, trace)
    _draw_memory_maps(figure, (write_ax, read_ax, usage_ax), trace, chosen)
    usage_ax.set_xlabel("step $t$", fontsize=8)
    usage_ax.set_xlim(0.5, time + 0.5)
    usage_ax.set_xticks([1, *range(5, time + 1, 5)] if time >= 10 else list(steps))
    if title is None:
        title = (f"The memory during episode {trace.index} ({trace.n_way}-way, {time} steps)\n"
                 f"rows: {how}")
    figure.suptitle(title, fontsize=9)
    return figure


def _draw_step_image(image_ax: Axes, trace: EpisodeTrace, step: int) -> None:
    """The image of step ``step`` (1-based), titled with the step and labelled with its true
    label, how many times its class has been shown, and the label fed in with it."""
    t = int(step) - 1
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


def _draw_step_probabilities(prob_ax: Axes, trace: EpisodeTrace, t: int) -> None:
    """The probability of each episode label at the 0-based step ``t`` (bars with gid
    ``"probabilities"``): the true label outlined, the predicted one green if right and red if
    wrong."""
    label = int(trace.labels[t])
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
    prob_ax.tick_params(axis="x", labelsize=7 if trace.n_way <= 10 else 6)
    prob_ax.set_xlabel("episode label (true one outlined)", fontsize=7)
    guess = str(predicted) if predicted >= 0 else "no label's string"
    prob_ax.set_title(f"Predicted {guess}, true {label}:\n{'right' if right else 'wrong'}",
                      fontsize=8,
                      color=_RIGHT if right else _WRONG)


def _draw_slot_bars(axes: Mapping[str, Axes], trace: EpisodeTrace, chosen: Sequence[int],
                    t: int) -> None:
    """Bars (gid ``"bars"``) of the write and read weights summed over the heads and of the
    usage at the 0-based step ``t``, over the ``chosen`` slots, into ``axes["write"]``,
    ``axes["read"]`` and ``axes["usage"]``; the least-used slots before the step marked by
    triangles (gid ``"least_used"``) and the cleared one by a cross (gid ``"cleared"``).

    Each scale is the largest value over the whole episode, so that steps compare.
    """
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


@in_book_style
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
    figure = _new_figure(*(figsize or (BOOK_WIDTH_IN, 5.2)))
    axes = figure.subplot_mosaic([["image", "write"], ["image", "read"],
                                  ["probabilities", "usage"]],
                                 width_ratios=[1, 3.4], height_ratios=[1, 1, 1.15])
    for name, ax in axes.items():
        ax.set_gid(name)
        ax.tick_params(labelsize=7)

    _draw_step_image(axes["image"], trace, step)
    _draw_step_probabilities(axes["probabilities"], trace, t)
    _draw_slot_bars(axes, trace, chosen, t)
    axes["usage"].set_xlabel(f"memory slot ({how})", fontsize=7)
    for name in ("write", "read"):
        axes[name].tick_params(labelbottom=False)
    return figure


def _explorer_ranges(model: MANN, episodes: SequenceEpisode | SequenceSampler,
                     seed: int | None, max_index: int) -> tuple[int, int, int | None]:
    """``(steps per episode, last episode index, seed)`` of :func:`memory_explorer`'s sliders:
    over the episodes of a batch (no seed), or over a sampler's episodes ``0..max_index`` (its
    own seed by default); episodes of another shape than the model's are refused."""
    if isinstance(episodes, SequenceEpisode):
        if seed is not None:
            raise ValueError("seed is for a SequenceSampler; a SequenceEpisode is a fixed batch")
        _check_mann(model, episodes, "memory_explorer")
        return episodes.time, episodes.batch - 1, None
    if isinstance(episodes, SequenceSampler):
        seed = episodes.seed if seed is None else seed
        _check_int("seed", seed, 0)
        _check_int("max_index", max_index, 0)
        _check_mann(model, episodes.episode(0), "memory_explorer")
        return episodes.time, max_index, seed
    raise TypeError(f"memory_explorer needs a SequenceEpisode or a SequenceSampler, got "
                    f"{type(episodes).__name__}")


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
    dpi: int = DISPLAY_DPI,
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
        dpi: CSS pixels per inch of the picture as shown (rendered at twice that).

    Returns:
        an ``ipywidgets.VBox`` with ``.controls`` (the inputs by name), ``.image`` and
        ``.update()`` (redraw now; returns the figure).

    Raises:
        TypeError: not a MANN, or ``episodes`` neither a SequenceEpisode nor a SequenceSampler.
        ValueError: a starting value outside its slider's range, or episodes of another shape
            than the model's.
    """
    time, last, seed = _explorer_ranges(model, episodes, seed, max_index)
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

