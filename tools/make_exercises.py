#!/usr/bin/env python
"""Generate the student notebooks of the exercises from their solution notebooks, and run both.

The solution notebook ``exercises/solutions/CC_K_name.ipynb`` (chapter CC, exercise K) is the
single source of an exercise. Its gap cells are tagged ``solution`` and mark the code to take out::

    def confidence_interval95(accuracies):
        \"\"\"Half-width of ...\"\"\"
        # BEGIN SOLUTION
        ...the answer...
        # END SOLUTION

The student notebook ``exercises/CC_K_name.ipynb`` is the same notebook with every marked region
replaced by ``raise NotImplementedError("Write your code here")`` (at the region's indentation)
and without the cells tagged ``solution-only``. A region must be indented (a function's body):
then the student notebook still runs from top to bottom, the checkers reporting "not done yet".

Both notebooks are executed with nbclient and stored with their outputs (the same kernel as
nbval's: ``python3``, in the notebook's folder, ``OMP_NUM_THREADS=1``). Each records in its
metadata a digest of its cell sources, so ``--check`` can tell, without a kernel, whether the
stored outputs belong to the current sources.

Usage, from anywhere (with the project's virtual environment)::

    .venv/bin/python tools/make_exercises.py            # regenerate and execute every exercise
    .venv/bin/python tools/make_exercises.py 02         # those whose name starts so (04: ch. 4)
    .venv/bin/python tools/make_exercises.py --check    # exit 1 if anything is out of date
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
SOLUTIONS = EXERCISES / "solutions"

SOLUTION_TAG = "solution"
SOLUTION_ONLY_TAG = "solution-only"
BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB = ("# Your code here: replace the line below.",
        'raise NotImplementedError("Write your code here")')
METADATA_KEY = "fslearn_exercise"
KERNEL = "python3"
TIMEOUT_S = 120
# Text that must not appear in stored outputs: it would differ on another machine.
MACHINE_SPECIFIC = re.compile(
    "|".join(re.escape(text) for text in (str(ROOT), str(Path.home()), "/tmp/", "ipykernel_")))


class ExerciseError(Exception):
    """A solution notebook breaks the format (markers, tags)."""


def strip_solution(source: str, where: str) -> str:
    """``source`` with every ``BEGIN``/``END SOLUTION`` region replaced by the stub."""
    lines: list[str] = []
    inside = False
    regions = 0
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ExerciseError(f"{where}, line {number}: {BEGIN} inside another region.")
            indent = line[: len(line) - len(line.lstrip())]
            if not indent:
                raise ExerciseError(
                    f"{where}, line {number}: {BEGIN} at the top level. A gap must be the "
                    f"(indented) body of a function, so that the student notebook still runs "
                    f"from top to bottom.")
            lines.extend(indent + stub for stub in STUB)
            inside, regions = True, regions + 1
        elif marker == END:
            if not inside:
                raise ExerciseError(f"{where}, line {number}: {END} without {BEGIN}.")
            inside = False
        elif not inside:
            lines.append(line)
    if inside:
        raise ExerciseError(f"{where}: {BEGIN} without {END}.")
    if regions == 0:
        raise ExerciseError(f"{where}: tagged {SOLUTION_TAG!r} but has no {BEGIN} region.")
    return "\n".join(lines)


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def student_notebook(solution: NotebookNode, name: str) -> NotebookNode:
    """The student notebook of ``solution`` (not executed)."""
    student = copy.deepcopy(solution)
    cells = []
    for index, cell in enumerate(solution.cells):
        tags = _tags(cell)
        where = f"solutions/{name}, cell {index + 1}"
        has_marker = any(line.strip() in (BEGIN, END) for line in cell.source.splitlines())
        if SOLUTION_ONLY_TAG in tags:
            continue
        new = copy.deepcopy(cell)
        if SOLUTION_TAG in tags:
            if cell.cell_type != "code":
                raise ExerciseError(f"{where}: only code cells can be tagged {SOLUTION_TAG!r}.")
            new.source = strip_solution(cell.source, where)
        elif has_marker:
            raise ExerciseError(f"{where}: has {BEGIN}/{END} markers but is not tagged "
                                f"{SOLUTION_TAG!r}.")
        cells.append(new)
    student.cells = cells
    student.metadata[METADATA_KEY] = {"generated_from": f"solutions/{name}"}
    return student


def sources_digest(notebook: NotebookNode) -> str:
    """A digest of what determines a notebook's outputs: its cells' types, sources and tags."""
    summary = [[cell.cell_type, cell.source, _tags(cell)] for cell in notebook.cells]
    return hashlib.sha256(json.dumps(summary).encode("utf-8")).hexdigest()


def execute(notebook: NotebookNode, folder: Path) -> NotebookNode:
    """Run ``notebook`` in ``folder`` (raises on the first error) and record its digest."""
    from nbclient import NotebookClient  # only needed to execute

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    client = NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name=KERNEL, record_timing=False,
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    notebook.metadata.setdefault(METADATA_KEY, {})["sources_sha256"] = sources_digest(notebook)
    return notebook


def _read(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=4)


def _write(notebook: NotebookNode, path: Path) -> None:
    nbformat.validate(notebook)
    path.write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")


def build(name: str) -> None:
    """Execute the solution notebook ``name``, then generate and execute its student notebook."""
    solution_path, student_path = SOLUTIONS / name, EXERCISES / name
    solution = _read(solution_path)
    solution.metadata.pop(METADATA_KEY, None)
    student = student_notebook(solution, name)  # validates the format before running anything
    for notebook, path in ((solution, solution_path), (student, student_path)):
        start = time.perf_counter()
        execute(notebook, path.parent)
        _write(notebook, path)
        print(f"wrote {path.relative_to(ROOT)} ({time.perf_counter() - start:.1f} s)")


# --------------------------------------------------------------------------------------------
# --check


def _executed_problems(notebook: NotebookNode, label: str) -> list[str]:
    problems = []
    stored = notebook.metadata.get(METADATA_KEY, {}).get("sources_sha256")
    if stored != sources_digest(notebook):
        problems.append(f"{label}: its outputs do not belong to its current sources (edited "
                        f"without re-running the generator).")
    counts = [cell.execution_count for cell in notebook.cells if cell.cell_type == "code"]
    if counts != list(range(1, len(counts) + 1)):
        problems.append(f"{label}: not executed from top to bottom in one go.")
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"{label}, cell {index + 1}: stored an error "
                                f"({output.get('ename')}).")
            text = json.dumps({key: value for key, value in output.get("data", {}).items()
                               if key.startswith("text/")}) + output.get("text", "")
            if MACHINE_SPECIFIC.search(text):
                problems.append(f"{label}, cell {index + 1}: an output shows a machine-specific "
                                f"path.")
    return problems


def _cell_summary(cell: NotebookNode) -> dict[str, Any]:
    return {"id": cell.get("id"), "type": cell.cell_type, "source": cell.source,
            "tags": _tags(cell)}


def check(names: list[str]) -> list[str]:
    """Everything out of date or broken, as messages (empty when all is well)."""
    problems = []
    for name in names:
        solution_path, student_path = SOLUTIONS / name, EXERCISES / name
        solution = _read(solution_path)
        try:
            expected = student_notebook(solution, name)
        except ExerciseError as error:
            problems.append(str(error))
            continue
        problems += _executed_problems(solution, f"solutions/{name}")
        if not student_path.is_file():
            problems.append(f"{name}: the student notebook is missing.")
            continue
        student = _read(student_path)
        want = [_cell_summary(cell) for cell in expected.cells]
        have = [_cell_summary(cell) for cell in student.cells]
        if want != have:
            where = next((i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b),
                         min(len(want), len(have)))
            problems.append(f"{name}: the student notebook differs from what the solution "
                            f"gives, from cell {where + 1} on.")
        else:
            problems += _executed_problems(student, name)
    solutions = {path.name for path in SOLUTIONS.glob("*.ipynb")}
    for path in sorted(EXERCISES.glob("*.ipynb")):
        if path.name not in solutions:
            problems.append(f"{path.name}: a student notebook without a solution notebook.")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="exercise name prefixes (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    names = sorted(path.name for path in SOLUTIONS.glob("*.ipynb")
                   if not args.names or any(path.name.startswith(p) for p in args.names))
    if not names:
        print(f"no solution notebook matches {args.names} in {SOLUTIONS}", file=sys.stderr)
        return 2
    if args.check:
        problems = check(names)
        for problem in problems:
            print(f"out of date: {problem}", file=sys.stderr)
        if problems:
            print("Regenerate with: .venv/bin/python tools/make_exercises.py", file=sys.stderr)
            return 1
        print(f"{len(names)} exercises up to date.")
        return 0
    for name in names:
        try:
            build(name)
        except ExerciseError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
