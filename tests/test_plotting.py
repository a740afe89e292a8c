"""Every figure the package draws reads at the book's width: no text under 8 CSS pixels there.

The figures are drawn as the book draws them (real Omniglot episodes and the shipped
checkpoints), and measured with :func:`fslearn.plotting.smallest_text_px`: a font's size at the
page's 100 CSS pixels per inch, times the shrinking of a figure wider than the page. The
explorers' pictures are measured as the ``Image`` widget shows them, and must be rendered at
twice their displayed resolution.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("ipywidgets")

import fslearn
from fslearn import widgets
from fslearn.data import EpisodeSampler
from fslearn.data.sequences import SequenceTasks
from fslearn.plotting import (
    BOOK_WIDTH_IN,
    BOOK_WIDTH_PX,
    MIN_TEXT_PX,
    PICTURE_SCALE,
    book_figure,
    smallest_text_px,
)


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    names = {"matching": "matchingnet-omniglot", "protonet": "protonet-omniglot",
             "mann": "mann-omniglot", "maml": "maml-sinusoid",
             "pretrained": "pretrained-sinusoid"}
    return {key: fslearn.load_checkpoint(name)[0] for key, name in names.items()}


def _figures(test: Any, models: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """Each figure function of the package, called as the book calls it."""
    sampler = EpisodeSampler(test, n_way=5, k_shot=1, n_query=5, seed=0)
    sequences = SequenceTasks(test).sampler(n_way=5, per_class=10, batch=1, seed=0,
                                            augment=False)
    sinusoid = {"MAML": models["maml"], "pretrained": models["pretrained"]}
    others = {"Prototypical": models["protonet"]}

    def memory_step() -> Any:
        trace = widgets.memory_trace(models["mann"], sequences.episode(0))
        return widgets.plot_memory_step(trace, 12)

    return {
        "plot_episode": lambda: widgets.plot_episode(sampler, 0),
        "plot_episode 20-way 5-shot": lambda: widgets.plot_episode(
            EpisodeSampler(test, n_way=20, k_shot=5, n_query=5, seed=0), 0),
        "plot_prototypes": lambda: widgets.plot_prototypes(5, seed=0, n_way=4).figure,
        "plot_sinusoid_fits": lambda: widgets.plot_sinusoid_fits(
            sinusoid, k_shots=(5, 10), steps=(0, 1, 10), seed=0, index=0),
        "plot_matching_attention": lambda: widgets.plot_matching_attention(
            models["matching"], sampler.episode(0), query=3, others=others),
        "plot_memory": lambda: widgets.plot_memory(models["mann"], sequences.episode(0)),
        "plot_memory_step": memory_step,
    }


def _explorers(test: Any, models: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    sampler = EpisodeSampler(test, n_way=5, k_shot=1, n_query=15, seed=0)
    sequences = SequenceTasks(test).sampler(n_way=5, per_class=10, batch=1, seed=0,
                                            augment=False)
    sinusoid = {"MAML": models["maml"], "pretrained": models["pretrained"]}
    return {
        "episode_explorer": lambda: widgets.episode_explorer(test, n_way=5, k_shot=1, n_query=4),
        "prototype_explorer": lambda: widgets.prototype_explorer(k_shot=1, seed=0, n_way=4),
        "sinusoid_explorer": lambda: widgets.sinusoid_explorer(sinusoid, k_shot=5, steps=10),
        "attention_explorer": lambda: widgets.attention_explorer(
            models["matching"], sampler, query=3, others={"Prototypical": models["protonet"]}),
        "memory_explorer": lambda: widgets.memory_explorer(models["mann"], sequences, step=12),
    }


FIGURES = ["plot_episode", "plot_episode 20-way 5-shot", "plot_prototypes", "plot_sinusoid_fits",
           "plot_matching_attention", "plot_memory", "plot_memory_step"]
EXPLORERS = ["episode_explorer", "prototype_explorer", "sinusoid_explorer",
             "attention_explorer", "memory_explorer"]


@pytest.mark.parametrize("name", FIGURES)
def test_figure_text_reads_at_the_book_width(name: str, omniglot_test: Any,
                                             models: dict[str, Any]) -> None:
    torch.manual_seed(0)
    figure = _figures(omniglot_test, models)[name]()
    size, text = smallest_text_px(figure)
    assert size >= MIN_TEXT_PX, (
        f"{name}: the text {text!r} is {size:.1f} px high at the book's width "
        f"({figure.get_figwidth():.1f} in wide figure shown in {BOOK_WIDTH_PX} px); "
        f"at least {MIN_TEXT_PX:.0f} px are needed")
    _assert_nothing_sticks_out(name, figure)


def _assert_nothing_sticks_out(name: str, figure: Any) -> None:
    """Text beyond the figure's edges (a long title) widens the notebook's picture, which the
    page then shrinks, text and all: every artist stays inside the figure."""
    figure.draw_without_rendering()
    inches = figure.get_tightbbox().width
    assert inches <= figure.get_figwidth() + 0.02, (
        f"{name}: something is drawn {inches - figure.get_figwidth():.2f} in beyond the "
        f"figure's {figure.get_figwidth():.2f} in width (a title or legend too long?)")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("name", EXPLORERS)
def test_explorer_picture_is_sharp_and_reads_at_the_book_width(
        name: str, omniglot_test: Any, models: dict[str, Any]) -> None:
    torch.manual_seed(0)
    explorer = _explorers(omniglot_test, models)[name]()
    figure = explorer.update()
    assert figure is not None, explorer.message.value
    size, text = smallest_text_px(figure)
    assert size >= MIN_TEXT_PX, f"{name}: the text {text!r} is {size:.1f} px at the book's width"
    _assert_nothing_sticks_out(name, figure)
    shown = int(explorer.image.width)
    width, _ = _png_size(explorer.image.value)
    assert shown <= BOOK_WIDTH_PX, f"{name}: shown {shown} px wide, wider than the page"
    assert width >= PICTURE_SCALE * shown - 2, (
        f"{name}: a {width}-px picture shown at {shown} px is not {PICTURE_SCALE}x sharp")


def test_smallest_text_px_accounts_for_shrinking() -> None:
    """A hand-computed case: 10 pt at 100 px per inch is 13.9 px; the same figure twice as
    wide as the page is shown at half its size, so its text at half the height."""
    figure, ax = book_figure(height=2.0)
    ax.set_title("title", fontsize=10)
    ax.tick_params(labelsize=10)
    ax.set_xlabel("x", fontsize=10)
    assert smallest_text_px(figure)[0] == pytest.approx(10 * 100 / 72)
    wide = figure.get_figwidth() * 2
    figure.set_figwidth(wide)
    assert smallest_text_px(figure)[0] == pytest.approx(10 * 100 / 72 / 2)


def test_book_figure_refuses_a_width_beyond_the_page() -> None:
    with pytest.raises(ValueError, match="wider than the page"):
        book_figure(height=2.0, width=BOOK_WIDTH_IN + 1)
