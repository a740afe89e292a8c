"""One plotting style for the book, its widgets and the package's figures.

A figure on a page of the book is read at the width of a cell's output: 688 CSS pixels in a
1280-pixel-wide window (measured in Chromium with the book's theme). The style draws figures at
that width, at :data:`DISPLAY_DPI` CSS pixels per inch, with fonts that stay at least
:data:`MIN_TEXT_PX` pixels high there; the pictures themselves are rendered at twice that
resolution, so they stay sharp on high-density screens and are never shown larger than their
pixels.

In a notebook::

    from fslearn.plotting import book_figure, use_book_style
    use_book_style()                            # once, in the first cell
    fig, axes = book_figure(1, 2, height=3.0)   # the page's width, 3 inches high

:func:`smallest_text_px` measures a figure as the page will show it; the tests hold every figure
the package draws to :data:`MIN_TEXT_PX`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # matplotlib is a book extra: imported where a function needs it
    from matplotlib.figure import Figure

_Drawing = TypeVar("_Drawing", bound=Callable[..., Any])

__all__ = [
    "BOOK_WIDTH_IN",
    "BOOK_WIDTH_PX",
    "DISPLAY_DPI",
    "MIN_FONT_PT",
    "MIN_TEXT_PX",
    "PICTURE_SCALE",
    "STYLE",
    "book_figure",
    "displayed_width_px",
    "in_book_style",
    "smallest_text_px",
    "use_book_style",
]

#: width of a cell's output on a page of the book, in CSS pixels (1280-pixel window)
BOOK_WIDTH_PX = 688
#: CSS pixels per inch of a figure on the page (matplotlib's own default figure dpi)
DISPLAY_DPI = 100
#: the widest figure that is shown at its full size, in inches
BOOK_WIDTH_IN = BOOK_WIDTH_PX / DISPLAY_DPI
#: pictures are rendered with this many pixels per CSS pixel (sharp on high-density screens)
PICTURE_SCALE = 2
#: no text of a figure may be smaller than this, in CSS pixels, as the page shows it
MIN_TEXT_PX = 8.0
#: the same in points, for a figure shown at its full size
MIN_FONT_PT = MIN_TEXT_PX * 72 / DISPLAY_DPI

#: matplotlib settings of the style: sizes in points, 1 pt = DISPLAY_DPI / 72 CSS pixels
STYLE: dict[str, Any] = {
    "figure.dpi": DISPLAY_DPI,
    "savefig.dpi": DISPLAY_DPI * PICTURE_SCALE,
    "figure.figsize": (BOOK_WIDTH_IN, 3.0),
    "figure.constrained_layout.use": True,
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "legend.fontsize": 8.0,
    "legend.title_fontsize": 8.5,
    "figure.titlesize": 10.0,
}


def use_book_style() -> None:
    """Apply :data:`STYLE` to matplotlib and, in a Jupyter kernel, show figures as pictures at
    :data:`PICTURE_SCALE` times their displayed resolution (matplotlib-inline's "retina"
    format, which records the displayed size beside the picture)."""
    import matplotlib

    matplotlib.rcParams.update(STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # pragma: no cover - outside Jupyter there is nothing more to set
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")
        # The inline backend re-applies its own defaults on its first figure; keep ours.
        matplotlib.rcParams.update(STYLE)


def book_figure(nrows: int = 1, ncols: int = 1, *, height: float,
                width: float = BOOK_WIDTH_IN, **subplots: Any) -> tuple[Figure, Any]:
    """A figure ``width`` inches wide (the page's, by default) and ``height`` high, with a grid
    of ``nrows`` x ``ncols`` axes (``subplots`` goes to :meth:`Figure.subplots`, e.g.
    ``sharey=True``); drawn in the book's style whether or not :func:`use_book_style` ran.

    Returns ``(figure, axes)`` as :func:`matplotlib.pyplot.subplots` does.
    """
    if width > BOOK_WIDTH_IN + 1e-9:
        raise ValueError(f"book_figure: width {width} in is wider than the page "
                         f"({BOOK_WIDTH_IN:.2f} in): lay the panels out over more rows.")
    import matplotlib
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(STYLE):
        figure, axes = plt.subplots(nrows, ncols, figsize=(width, height), **subplots)
    return figure, axes


def in_book_style(draw: _Drawing) -> _Drawing:
    """Decorate a function that draws a figure so that it draws in :data:`STYLE`, whatever the
    caller's matplotlib settings: the package's figures look the same in the book, in a
    student's notebook and in the tests."""

    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return drawn  # type: ignore[return-value]


def displayed_width_px(figure: Figure, dpi: float = DISPLAY_DPI) -> float:
    """CSS pixels the page gives ``figure``: its width at ``dpi`` CSS pixels per inch, shrunk
    to the page's width if wider."""
    return min(figure.get_figwidth() * dpi, BOOK_WIDTH_PX)


def smallest_text_px(figure: Figure) -> tuple[float, str]:
    """``(height in CSS pixels, the text)`` of the smallest visible text of ``figure`` as the
    page shows it: its font size at :data:`DISPLAY_DPI`, times the shrinking of a figure wider
    than the page. ``(inf, "")`` for a figure without text."""
    from matplotlib.text import Text

    figure.draw_without_rendering()  # lays out the tick labels, which exist only once drawn
    shrink = displayed_width_px(figure) / (figure.get_figwidth() * DISPLAY_DPI)
    smallest: tuple[float, str] = (float("inf"), "")
    for text in figure.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        size_px = text.get_fontsize() * DISPLAY_DPI / 72 * shrink
        smallest = min(smallest, (size_px, text.get_text()))
    return smallest
