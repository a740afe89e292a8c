"""``# NBVAL_APPROX`` (fslearn.testing.nbval_approx): numbers of a notebook cell compared with a
tolerance under nbval, everything else strict."""

from __future__ import annotations

import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from fslearn.testing.nbval_approx import (
    MarkerError,
    Tolerance,
    merge_numbers,
    merge_outputs,
    parse_marker,
    split_numbers,
)

pytest_plugins = ["pytester"]

TOL = Tolerance(pct=1.5, abs=0.05)
STORED = ("episodes: 150, training loss over the last 150: 1.242\n"
          "validation, 20-way 1-shot, 600 episodes: 76.72% +/- 0.43%\n")


def run(loss: str = "1.242", accuracy: str = "76.72", ci: str = "0.43", episodes: str = "150"):
    return (f"episodes: {episodes}, training loss over the last 150: {loss}\n"
            f"validation, 20-way 1-shot, 600 episodes: {accuracy}% +/- {ci}%\n")


# --- the marker ---------------------------------------------------------------------------------

def test_parse_marker() -> None:
    assert parse_marker("x = 1\nprint(x)") is None
    assert parse_marker("# NBVAL_APPROX pct=1.5 abs=0.05\nprint(1)") == Tolerance(pct=1.5, abs=0.05)
    assert parse_marker("print(1)\n  #  NBVAL_APPROX rel=1e-2  ") == Tolerance(rel=0.01)
    assert parse_marker("#NBVAL_APPROX pct=2") == Tolerance(pct=2.0)
    assert str(Tolerance(pct=1.5, abs=0.05)) == "pct=1.5 abs=0.05"
    # Mentioned in a string or inside a comment, it is not a marker.
    assert parse_marker('print("NBVAL_APPROX pct=1")') is None
    assert parse_marker("# the tolerance comes from NBVAL_APPROX below\nx = 1") is None


@pytest.mark.parametrize(("source", "message"), [
    ("# NBVAL_APPROX pc=1.5", "unknown NBVAL_APPROX key 'pc'"),
    ("# NBVAL_APPROX pct=one", "is not a number"),
    ("# NBVAL_APPROX pct=-1", "must be a finite number >= 0"),
    ("# NBVAL_APPROX pct=nan", "must be a finite number >= 0"),
    ("# NBVAL_APPROX pct 1.5", "expects key=value"),
    ("# NBVAL_APPROX pct=1 pct=2", "given twice"),
    ("# NBVAL_APPROX", "needs at least one tolerance"),
    ("# NBVAL_APPROX: pct=1.5", "is not a NBVAL_APPROX marker"),
    ("# NBVAL_APPROXIMATE pct=1.5", "is not a NBVAL_APPROX marker"),
    ("# NBVAL_APPROX pct=1\n# NBVAL_APPROX abs=1", "a second NBVAL_APPROX marker"),
])
def test_malformed_markers_are_rejected(source: str, message: str) -> None:
    with pytest.raises(MarkerError, match=message):
        parse_marker(source)


# --- numbers ------------------------------------------------------------------------------------

def test_split_numbers() -> None:
    pieces, numbers = split_numbers(STORED)
    assert [n.group() for n in numbers] == [
        "150", "150", "1.242", "20", "1", "600", "76.72", "0.43"]
    assert [n.group("percent") is not None for n in numbers] == [False] * 6 + [True, True]
    assert pieces[4:6] == ["-way ", "-shot, "]  # hyphens stay text, not signs
    _, numbers = split_numbers("lr=1e-3, change -0.5, 3 % of 150.")
    assert [n.group() for n in numbers] == ["1e-3", "-0.5", "3", "150"]
    assert numbers[2].group("percent") is not None


def test_numbers_within_tolerance_take_the_stored_literal() -> None:
    merged = merge_numbers(run(loss="1.245", accuracy="76.73", ci="0.42"), STORED, TOL)
    assert merged.comparable and merged.exceeded == []
    assert merged.text == STORED
    # At the edge of the tolerance (the subtraction's own rounding is allowed for).
    assert merge_numbers(run(loss="1.292", accuracy="78.22"), STORED, TOL).text == STORED
    assert merge_numbers(run(loss="1.192", accuracy="75.22"), STORED, TOL).text == STORED


def test_one_point_past_the_tolerance_fails() -> None:
    merged = merge_numbers(run(accuracy="79.22"), STORED, TOL)  # 2.5 points: 1 past pct=1.5
    assert merged.text != STORED
    assert merged.exceeded == ["76.72% -> 79.22% (2.5 points > pct=1.5)"]
    assert "79.22%" in merged.text and "1.242" in merged.text
    merged = merge_numbers(run(loss="1.302"), STORED, TOL)
    assert merged.exceeded == ["1.242 -> 1.302 (differs by 0.06 > abs=0.05)"]


def test_integers_must_match() -> None:
    merged = merge_numbers(run(episodes="151", loss="1.243"), STORED, TOL)
    assert merged.exceeded == ["150 -> 151 (an integer: must match exactly)"]
    assert merged.text == run(episodes="151")  # the loss within tolerance is still merged


def test_different_words_fail() -> None:
    new = STORED.replace("validation", "test")
    merged = merge_numbers(new, STORED, TOL)
    assert not merged.comparable
    assert merged.text == new
    more_numbers = STORED.replace("0.43%", "0.43% (2 runs)")
    assert not merge_numbers(more_numbers, STORED, TOL).comparable


def test_format_and_kinds_without_tolerance_are_exact() -> None:
    # A change of format is a change of the code, not of rounding.
    assert merge_numbers("loss 1.24", "loss 1.242", TOL).exceeded == [
        "1.242 -> 1.24 (printed with a different format)"]
    # Percentages need pct=, other non-integers abs= or rel=.
    assert merge_numbers("76.73%", "76.72%", Tolerance(abs=1)).exceeded == [
        "76.72% -> 76.73% (a percentage: exact, the marker has no pct=)"]
    assert merge_numbers("1.245", "1.242", Tolerance(pct=1)).exceeded == [
        "1.242 -> 1.245 (exact: the marker has no abs= or rel=)"]


def test_relative_tolerance() -> None:
    assert merge_numbers("2.05e-03", "2.00e-03", Tolerance(rel=0.05)).exceeded == []
    assert merge_numbers("2.15e-03", "2.00e-03", Tolerance(rel=0.05)).exceeded != []
    # With both, whichever allows more.
    assert merge_numbers("100.9", "100.0", Tolerance(abs=0.1, rel=0.01)).exceeded == []
    assert merge_numbers("0.2", "0.1", Tolerance(abs=0.1, rel=0.01)).exceeded == []


def test_merge_outputs_pairs_outputs_as_nbval_does() -> None:
    def outputs(text: str, value: str) -> list:
        return [new_output("stream", name="stdout", text=text),
                new_output("stream", name="stderr", text="warning: 3 things\n"),
                new_output("execute_result", data={"text/plain": value, "image/png": "AAAA"},
                           execution_count=1)]

    new, stored = outputs(run(loss="1.244"), "0.771"), outputs(STORED, "0.767")
    assert merge_outputs(new, stored, TOL) == []
    assert new[0]["text"] == STORED and new[2]["data"]["text/plain"] == "0.767"
    new = outputs(run(accuracy="80.00"), "0.771")
    notes = merge_outputs(new, stored, TOL)
    assert notes == ["NBVAL_APPROX pct=1.5 abs=0.05: outside the tolerance (stored -> new): "
                     "76.72% -> 80.00% (3.28 points > pct=1.5) (numbers within it are shown "
                     "as stored)"]
    new = outputs(STORED.replace("validation", "test"), "0.767")
    assert "the text around the numbers of stdout differs" in merge_outputs(new, stored, TOL)[0]


# --- end to end: pytest --nbval on a small notebook ---------------------------------------------

def _cell(source: str, text: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source, execution_count=1)
    cell.outputs = [new_output("stream", name="stdout", text=text)]
    return cell


def test_nbval_with_the_plugin(pytester: pytest.Pytester) -> None:
    marker = "# NBVAL_APPROX pct=1.5 abs=0.05\n"
    result_cell = new_code_cell(marker + "1.245", execution_count=1)
    result_cell.outputs = [new_output("execute_result", data={"text/plain": "1.242"},
                                      execution_count=1)]
    cells = [
        # 0: within tolerance (stream), passes
        _cell(marker + 'print("loss 1.245, accuracy 76.73%")', "loss 1.242, accuracy 76.72%\n"),
        # 1: within tolerance (execute_result, text/plain), passes
        result_cell,
        # 2: accuracy 2.5 points off, fails
        _cell(marker + 'print("loss 1.245, accuracy 79.22%")', "loss 1.242, accuracy 76.72%\n"),
        # 3: an integer differs, fails
        _cell(marker + 'print("episodes: 151")', "episodes: 150\n"),
        # 4: no marker: strict, fails
        _cell('print("loss 1.245")', "loss 1.242\n"),
        # 5: no marker, same output, passes
        _cell('print("loss 1.242")', "loss 1.242\n"),
        # 6: malformed marker, fails with a clear message
        _cell("# NBVAL_APPROX pc=1.5\nprint(1.5)", "1.5\n"),
        # 7: sanitized first (here, addresses whose digits differ), then compared: passes
        _cell(marker + 'print("at 0x7f3a, loss 1.245")', "at 0x1234, loss 1.242\n"),
    ]
    notebook = new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, str(pytester.path / "approx.ipynb"))
    pytester.makefile(".cfg", sanitize="regex: 0x[0-9a-f]+\nreplace: 0xADDRESS\n")
    result = pytester.runpytest(
        "-p", "fslearn.testing.nbval_approx", "--nbval", "--nbval-current-env",
        "--nbval-sanitize-with", "sanitize.cfg", "-p", "no:cacheprovider", "approx.ipynb")
    result.assert_outcomes(passed=4, failed=4)
    out = result.stdout.str()
    for cell in (2, 3, 4, 6):
        assert f"approx.ipynb::Cell {cell} " in out
    assert "76.72% -> 79.22% (2.5 points > pct=1.5)" in out
    assert "150 -> 151 (an integer: must match exactly)" in out
    assert "unknown NBVAL_APPROX key 'pc'" in out
    # Under --nbval-lax a marked cell is checked (as with # NBVAL_CHECK_OUTPUT), others are not.
    lax = pytester.runpytest(
        "-p", "fslearn.testing.nbval_approx", "--nbval-lax", "--nbval-current-env",
        "--nbval-sanitize-with", "sanitize.cfg", "-p", "no:cacheprovider", "approx.ipynb")
    lax.assert_outcomes(passed=5, failed=3)
    # The plugin does nothing without nbval.
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    plain = pytester.runpytest("-p", "fslearn.testing.nbval_approx", "-p", "no:cacheprovider",
                               "test_plain.py")
    plain.assert_outcomes(passed=1)


def test_root_conftest_loads_the_plugin(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("fslearn.testing.nbval_approx")
    assert "fslearn.testing.nbval_approx" in sys.modules
