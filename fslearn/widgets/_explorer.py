"""What the widgets of every chapter share: the book extras, figures, argument checks, the
palettes, and the explorer widget that redraws a figure when its controls change.

matplotlib and ipywidgets are book extras, imported only when a function needs them
(:func:`_require`); without them the functions raise an :class:`ImportError` that says how to
install them (``pip install 'fslearn[book]'``). Figures are built with
:class:`matplotlib.figure.Figure`, not ``pyplot``, so nothing is drawn or kept behind the
caller's back.
"""

from __future__ import annotations

import copy
import functools
import html
import importlib
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.plotting import PICTURE_SCALE, displayed_width_px

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_BOOK_EXTRAS = "pip install 'fslearn[book]'"
#: colours of the classes in the prototype plots (matplotlib's tab10, as RGB in [0, 1])
_TAB10 = (
    (0.122, 0.467, 0.706), (1.000, 0.498, 0.055), (0.173, 0.627, 0.173), (0.839, 0.153, 0.157),
    (0.580, 0.404, 0.741), (0.549, 0.337, 0.294), (0.890, 0.467, 0.761), (0.498, 0.498, 0.498),
    (0.737, 0.741, 0.133), (0.090, 0.745, 0.812),
)

#: colours of the fits after 0, 1, 2... of the requested numbers of steps (sinusoid fits); the
#: memory pictures colour their heads with the entries from 1 on
_STEP_COLORS = ("0.55", "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
#: colours of a right and a wrong answer (memory and attention pictures)
_RIGHT, _WRONG = "#2ca02c", "#d62728"


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
    """A detached figure of ``width x height`` inches with the constrained layout (not
    ``pyplot``'s, so that nothing is shown or kept behind the caller's back)."""
    figure_module = _require("matplotlib.figure")
    return figure_module.Figure(figsize=(width, height), layout="constrained")


def _png(figure: Figure, dpi: float) -> bytes:
    """``figure`` as PNG bytes for a picture shown at ``dpi`` CSS pixels per inch: rendered at
    :data:`~fslearn.plotting.PICTURE_SCALE` times that, so that it stays sharp."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi * PICTURE_SCALE)
    return buffer.getvalue()


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) in ``low..high`` (no upper
    bound when ``high`` is None); otherwise a :class:`ValueError` that names ``name``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)


def _short_name(name: str) -> str:
    """``"Alphabet_of_the_Magi/character01/rot090"`` -> ``"Alphabet of the Magi 01 (90°)"``."""
    parts = name.split("/")
    if len(parts) >= 2 and parts[1].startswith("character"):
        text = f"{parts[0].replace('_', ' ')} {parts[1].removeprefix('character')}"
        if len(parts) == 3 and parts[2].startswith("rot"):
            text += f" ({int(parts[2].removeprefix('rot'))}°)"
        return text
    return name


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
            # Shown at its width at ``dpi`` (the page's at most), never stretched beyond it.
            self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%",
                                                                           height="auto"))
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
            self.image.width = str(round(displayed_width_px(figure, self._dpi)))
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


def _explorer_ranges(episodes: Episode | EpisodeSampler, seed: int | None, max_index: int,
                     caller: str, check: Callable[[Episode, str], object]
                     ) -> tuple[int, int, int | None]:
    """``(queries per task, last episode index, seed)`` of an episode explorer's sliders: over
    the tasks of an Episode (checked by ``check(episode, caller)``; no seed), or over a
    sampler's episodes ``0..max_index`` (its own seed by default)."""
    if isinstance(episodes, Episode):
        if seed is not None:
            raise ValueError("seed is for an EpisodeSampler; an Episode is a fixed batch")
        check(episodes, caller)
        return int(episodes.query_y.shape[1]), episodes.tasks - 1, None
    if isinstance(episodes, EpisodeSampler):
        seed = episodes.seed if seed is None else seed
        _check_int("seed", seed, 0)
        _check_int("max_index", max_index, 0)
        return episodes.n_way * episodes.n_query, max_index, seed
    raise TypeError(f"{caller} needs an Episode or an EpisodeSampler, got "
                    f"{type(episodes).__name__}")


def _episode_fetcher(episodes: Episode | EpisodeSampler
                     ) -> Callable[[int, int | None], tuple[Episode, int]]:
    """``(index, seed) -> (episode, task)`` for an explorer's sliders: the Episode itself and
    its task ``index``, or the sampler's episode ``index`` drawn with ``seed`` (task 0); the
    last few are kept."""
    @functools.lru_cache(maxsize=8)
    def episode_of(index: int, seed: int | None) -> tuple[Episode, int]:
        if isinstance(episodes, Episode):
            return episodes, index
        sampler = copy.copy(episodes)  # episode i depends only on (seed, i)
        sampler.seed = seed
        return sampler.episode(index), 0
    return episode_of


def _seed_box(seed: int) -> Any:
    """A box for any sampler seed, too many for a slider."""
    widgets = _require("ipywidgets")
    return widgets.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed",
                                  style={"description_width": "initial"},
                                  layout=widgets.Layout(width="160px"))

