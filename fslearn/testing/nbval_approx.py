"""``# NBVAL_APPROX``: compare the numbers of a notebook cell's outputs with a tolerance (nbval).

``pytest --nbval`` re-executes every notebook and compares each cell's outputs with the stored
ones, character by character. Figures that come out of a training run depend on the rounding of
every float operation along the way, and so on the CPU kernels PyTorch picks (AVX-512, AVX2...):
the same seeded run prints ``1.242`` on one machine and ``1.245`` on another. A cell whose
source has a line::

    # NBVAL_APPROX pct=1.5 abs=0.05

is compared like this instead (every other cell stays strict):

* the text around the numbers must match exactly, and so must the count and format (number of
  decimals) of the numbers;
* a number followed by ``%`` (optionally after one space) may differ by ``pct`` percentage points;
* another number with a decimal point or an exponent may differ by ``abs``, or by ``rel`` times
  the stored value (whichever allows more, when both are given);
* integers (no decimal point: episode counts, sizes, seeds) must match exactly, and so must any
  number whose kind has no tolerance in the marker.

How: the plugin wraps nbval's ``IPyNbCell.compare_outputs`` for the marked cells. It pairs the
text outputs as nbval does (streams by name, ``text/*`` data by MIME type, in order), splits both
texts with one regular expression, and where the text around the numbers agrees it replaces each
new number that is within tolerance by the stored one. nbval then compares as usual, so a number
out of tolerance shows in its ordinary diff, followed by one line saying which numbers exceeded
which tolerance. The sanitizer (``--nbval-sanitize-with``) is applied first, exactly once.

The plugin is enabled by ``-p fslearn.testing.nbval_approx`` (the repository's ``pyproject.toml``
puts it in pytest's ``addopts``) and does nothing unless nbval collects notebooks. Under
``--nbval-lax`` a marked cell is checked as if it had ``# NBVAL_CHECK_OUTPUT``. The functions
:func:`parse_marker` and :func:`merge_numbers` hold the logic and are tested on their own.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MARKER = "NBVAL_APPROX"
KEYS = ("pct", "abs", "rel")

# A number: digits with an optional fraction and exponent. A sign belongs to the number only
# where it cannot be a hyphen ("20-way", "x-1" keep their "-" in the text). The lookahead tells
# a percentage ("76.72%", "0.43 %").
NUMBER = re.compile(
    r"(?:(?<![\w.])[-+])?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?P<percent>(?= ?%))?"
)
_MARKER_LINE = re.compile(r"^\s*#+\s*" + MARKER + r"(?:\s+(?P<args>.*?))?\s*$")


class MarkerError(ValueError):
    """A ``# NBVAL_APPROX`` line that cannot be read (unknown key, not a number...)."""


@dataclass(frozen=True)
class Tolerance:
    """How far a cell's numbers may move: ``pct`` points for percentages, ``abs`` or ``rel``
    (relative to the stored value) for other non-integers. ``None``: must match exactly."""

    pct: float | None = None
    abs: float | None = None
    rel: float | None = None

    def __str__(self) -> str:
        return " ".join(f"{key}={getattr(self, key):g}" for key in KEYS
                        if getattr(self, key) is not None)


def parse_marker(source: str) -> Tolerance | None:
    """The tolerance of the ``# NBVAL_APPROX key=value ...`` line of a cell's ``source``, or
    ``None`` when it has none. Raises :class:`MarkerError` for a malformed or repeated marker."""
    found: Tolerance | None = None
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if not stripped.startswith("#") or not stripped.lstrip("#").lstrip().startswith(MARKER):
            continue  # not a comment that starts with the marker (a mere mention is fine)
        match = _MARKER_LINE.match(line)
        if match is None:
            raise MarkerError(f"line {number}: {stripped!r} is not a {MARKER} marker; write "
                              f"'# {MARKER} pct=1.5 abs=0.05' (keys: {', '.join(KEYS)})")
        if found is not None:
            raise MarkerError(f"line {number}: a second {MARKER} marker in one cell")
        found = _parse_arguments(match.group("args") or "", number)
    return found


def _parse_arguments(args: str, number: int) -> Tolerance:
    values: dict[str, float] = {}
    for item in args.split():
        key, equals, text = item.partition("=")
        if not equals:
            raise MarkerError(f"line {number}: {MARKER} expects key=value, got {item!r}")
        if key not in KEYS:
            raise MarkerError(f"line {number}: unknown {MARKER} key {key!r} "
                              f"(known: {', '.join(KEYS)})")
        if key in values:
            raise MarkerError(f"line {number}: {MARKER} key {key!r} given twice")
        try:
            value = float(text)
        except ValueError:
            raise MarkerError(f"line {number}: {MARKER} {key}={text!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise MarkerError(f"line {number}: {MARKER} {key}={text} must be a finite number >= 0")
        values[key] = value
    if not values:
        raise MarkerError(f"line {number}: {MARKER} needs at least one tolerance "
                          f"({', '.join(KEYS)}), e.g. '# {MARKER} pct=1.5 abs=0.05'")
    return Tolerance(**values)


@dataclass
class Merge:
    """The result of :func:`merge_numbers`: ``text`` is the new text with every number within
    tolerance replaced by the stored one; ``comparable`` is False when the text around the
    numbers (or their count) differs; ``exceeded`` describes each number out of tolerance."""

    text: str
    comparable: bool
    exceeded: list[str] = field(default_factory=list)


def split_numbers(text: str) -> tuple[list[str], list[re.Match[str]]]:
    """The text between the numbers (one more piece than numbers) and the numbers."""
    pieces, numbers, start = [], [], 0
    for match in NUMBER.finditer(text):
        pieces.append(text[start:match.start()])
        numbers.append(match)
        start = match.end()
    pieces.append(text[start:])
    return pieces, numbers


def _decimals(literal: str) -> tuple[int, bool]:
    mantissa, _, exponent = literal.lower().partition("e")
    return len(mantissa.partition(".")[2]), bool(exponent)


def compare_number(new: str, stored: str, percent: bool, tolerance: Tolerance) -> str | None:
    """``None`` if the printed number ``new`` may stand for ``stored``, else why not."""
    if new == stored:
        return None
    is_float = any(c in stored for c in ".eE")
    if _decimals(new) != _decimals(stored):
        return f"{stored} -> {new} (printed with a different format)"
    difference = abs(float(new) - float(stored))
    slack = 1e-9 * max(1.0, abs(float(stored)))  # the rounding of the subtraction itself
    if percent and tolerance.pct is not None:
        if difference <= tolerance.pct + slack:
            return None
        return f"{stored}% -> {new}% ({difference:.4g} points > pct={tolerance.pct:g})"
    if percent:
        return f"{stored}% -> {new}% (a percentage: exact, the marker has no pct=)"
    if not is_float:
        return f"{stored} -> {new} (an integer: must match exactly)"
    if tolerance.abs is None and tolerance.rel is None:
        return f"{stored} -> {new} (exact: the marker has no abs= or rel=)"
    allowed = max(tolerance.abs or 0.0, (tolerance.rel or 0.0) * abs(float(stored)))
    if difference <= allowed + slack:
        return None
    limits = " or ".join(f"{key}={getattr(tolerance, key):g}" for key in ("abs", "rel")
                         if getattr(tolerance, key) is not None)
    return f"{stored} -> {new} (differs by {difference:.4g} > {limits})"


def merge_numbers(new: str, stored: str, tolerance: Tolerance) -> Merge:
    """Compare the numbers of ``new`` with those of ``stored`` by the rules of ``tolerance``.

    If the text around the numbers agrees, each number of ``new`` within tolerance is replaced by
    the stored one, so ``Merge.text == stored`` exactly when every number is within tolerance.
    """
    new_pieces, new_numbers = split_numbers(new)
    stored_pieces, stored_numbers = split_numbers(stored)
    if new_pieces != stored_pieces:
        return Merge(new, comparable=False)
    out, exceeded = [new_pieces[0]], []
    for piece, mine, theirs in zip(new_pieces[1:], new_numbers, stored_numbers, strict=True):
        percent = theirs.group("percent") is not None
        problem = compare_number(mine.group(), theirs.group(), percent, tolerance)
        if problem is None:
            out.append(theirs.group())
        else:
            out.append(mine.group())
            exceeded.append(problem)
        out.append(piece)
    return Merge("".join(out), comparable=True, exceeded=exceeded)


# --- nbval ------------------------------------------------------------------------------------

_NOT_SANITIZED = ("output_type", "name", "metadata", "traceback", "execution_count")


def _sanitized_copy(output: Any, sanitize: Callable[[str], str]) -> Any:
    """A deep copy of a notebook output with nbval's sanitizer applied to its text values."""
    import nbformat

    result = nbformat.from_dict(copy.deepcopy(dict(output)))
    for key, value in result.items():
        if key == "data":
            for mime, content in value.items():
                if isinstance(content, str):
                    value[mime] = sanitize(content)
        elif key not in _NOT_SANITIZED and isinstance(value, str):
            result[key] = sanitize(value)
    return result


def _text_fields(outputs: Iterable[Any], skip: Iterable[str]) -> dict[str, list[tuple[Any, str]]]:
    """The text values nbval compares, keyed as nbval keys them (stream name, MIME type), in
    order: ``(container, key)`` pairs, so that the value can be replaced in place."""
    fields: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    for output in outputs:
        if output.get("output_type") == "stream":
            fields[output["name"]].append((output, "text"))
            continue
        data = output.get("data") or {}
        for mime, content in data.items():
            if mime.startswith("text/") and mime not in skip and isinstance(content, str):
                fields[mime].append((data, mime))
    return fields


def merge_outputs(new: list[Any], stored: list[Any], tolerance: Tolerance,
                  skip: Iterable[str] = ()) -> list[str]:
    """Apply :func:`merge_numbers` to each pair of text values of two cells' outputs, in place
    in ``new``. Returns the notes for nbval's report (empty when everything was within
    tolerance)."""
    skip = tuple(skip)
    mine, theirs = _text_fields(new, skip), _text_fields(stored, skip)
    exceeded: list[str] = []
    differing: list[str] = []
    for key, pairs in mine.items():
        # Unequal counts of outputs: nbval reports them; the pairs that exist are still merged.
        for (container, name), (ref, ref_name) in zip(pairs, theirs.get(key, []), strict=False):
            merged = merge_numbers(container[name], ref[ref_name], tolerance)
            container[name] = merged.text
            exceeded.extend(merged.exceeded)
            if not merged.comparable and key not in differing:
                differing.append(key)
    notes = []
    if exceeded:
        notes.append(f"{MARKER} {tolerance}: outside the tolerance (stored -> new): "
                     + "; ".join(exceeded) + " (numbers within it are shown as stored)")
    if differing:
        notes.append(f"{MARKER} {tolerance}: the text around the numbers of "
                     f"{', '.join(differing)} differs from the stored output, so its numbers "
                     f"were compared exactly")
    return notes


def _identity(text: str) -> str:
    return text


def _compare_approx(item: Any, original: Callable[..., bool], tolerance: Tolerance,
                    test: list[Any], ref: list[Any], skip_compare: Any = None) -> bool:
    """nbval's comparison of one cell, with the numbers within tolerance taken as equal."""
    skip = skip_compare or item.parent.skip_compare
    test = [_sanitized_copy(output, item.sanitize) for output in test]
    ref = [_sanitized_copy(output, item.sanitize) for output in ref]
    notes = merge_outputs(test, ref, tolerance, skip)
    item.sanitize = _identity  # sanitized above, exactly once: a sanitizer need not be idempotent
    try:
        same = original(test, ref, skip_compare)
    finally:
        del item.sanitize
    if not same:
        item.comparison_traceback.extend(notes)
    return same


def _reject(error: MarkerError, *args: Any, **kwargs: Any) -> bool:
    raise error


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    """Give each notebook cell with a ``# NBVAL_APPROX`` line the tolerant comparison."""
    try:
        from nbval.plugin import IPyNbCell, find_comment_markers, find_metadata_tags
    except ImportError:  # nbval is not installed: no notebook is collected either
        return
    for item in items:
        if not isinstance(item, IPyNbCell):
            continue
        try:
            tolerance = parse_marker(item.cell.source)
        except MarkerError as error:
            error = MarkerError(f"{item.nodeid}: {error}")
            item.compare_outputs = functools.partial(_reject, error)
            item.options["check"] = True
            continue
        if tolerance is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbval warns about conflicting markers itself
            explicit = dict(find_metadata_tags(item.cell.metadata))
            explicit.update(find_comment_markers(item.cell.source))
        if "check" not in explicit:  # under --nbval-lax too, unless told to ignore the output
            item.options["check"] = True
        item.compare_outputs = functools.partial(_compare_approx, item, item.compare_outputs,
                                                 tolerance)
