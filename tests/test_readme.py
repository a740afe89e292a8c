"""The README's tables of figures are generated from the shipped files and cannot drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    return load_tool("readme_tables")


def test_readme_tables_match_the_shipped_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert _tool().main(["--check"]) == 0, capsys.readouterr().err


def test_check_names_a_table_that_drifted() -> None:
    tool = _tool()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next((line for line in text.splitlines() if line.startswith("| `maml-omniglot-20way` |")),
               None)
    assert row is not None, "the README no longer shows the 20-way MAML row this test edits"
    cells = row.split(" | ")
    cells[2] = "0.00 ± 0.00"  # the 20-way 1-shot figure, edited by hand
    drifted = text.replace(row, " | ".join(cells))
    assert drifted != text
    _, changed = tool.render(drifted)
    assert changed == ["maml-20way-checkpoints"]


def test_a_missing_marker_is_refused() -> None:
    tool = _tool()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    without = text.replace(
        "<!-- generated: mann-benchmark (python tools/readme_tables.py) -->\n", ""
    )
    with pytest.raises(SystemExit, match="lacks the markers of mann-benchmark"):
        tool.render(without)


def test_a_missing_results_file_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tool = _tool()
    monkeypatch.setattr(tool, "BENCHMARKS", tool.ROOT / "benchmarks" / "no-such-folder")
    with pytest.raises(SystemExit, match=r"maml-cpu\.json is missing: ship the checkpoint"):
        tool.maml_benchmark_table()


def test_the_steps_column_counts_the_steps_the_run_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run stopped as flat: "600 of 700" (its history ends at 700), not "600 of 2000" (what
    its command asks for); a run with no history falls back to its command's steps."""
    tool = _tool()
    shipped = tool.PRETRAINED / "maml-omniglot-20way"
    copy = tmp_path / "maml-omniglot-20way"
    copy.mkdir()
    for part in ("checkpoint.json", "results.json"):
        (copy / part).write_text((shipped / part).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(tool, "PRETRAINED", tmp_path)
    (copy / "history.json").write_text(
        '[{"episode": 100}, {"episode": 700}]', encoding="utf-8"
    )
    assert tool._steps_made("maml-omniglot-20way", 2000) == 700
    kept = json.loads((copy / "checkpoint.json").read_text())["episode"]
    assert f"| {kept} of 700 x 16 |" in tool._inner_loop_table(("maml-omniglot-20way",), 20)
    (copy / "history.json").unlink()
    assert tool._steps_made("maml-omniglot-20way", 2000) == 2000
    assert f"| {kept} of 2000 x 16 |" in tool._inner_loop_table(("maml-omniglot-20way",), 20)
