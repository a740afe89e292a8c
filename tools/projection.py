"""How far each shipped checkpoint's recipe would have to run to reach its paper's figure.

    python tools/projection.py            # table on the terminal, book/data/projections.json

For every shipped checkpoint whose history holds at least 5 validation points and whose
results.json has a paper figure in its validation setting (5-way 1-shot for most), a power law
with a floor is fitted to the validation curve (`fslearn.projection.fit_learning_curve`), and the
steps at which the fitted curve reaches the paper's figure are projected, with their cost in
core-hours at the run's own speed (its training seconds per step, times its threads).

Two cautions, printed with the table: validation classes are not test classes (the paper's
figure is a test figure), and the fit assumes the recipe, learning-rate schedule included, goes
on as it ran. A figure at or above the fitted ceiling is reported as out of this recipe's reach.

A check on every projection, one rule for every checkpoint: the same fit to the second half of
the curve alone (the points after half the run's steps, where there are at least MIN_POINTS of
them). A power law describes a learning curve after its start, not the start itself (a plateau at
chance, as the MANN's, or a fast first rise); where the two projections differ much, the curve
changed its course during the run, and both hold loosely.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "book" / "data" / "projections.json"
#: fewer validation points than this make no projection (three points fit any power law)
MIN_POINTS = 5
#: a projection beyond this many times the run's own length is reported as such, not as a number
MAX_FACTOR = 1000


def _curve_and_paper(record: dict, history: list[dict], report: dict
                     ) -> tuple[list, list[tuple[int, float]], float | None]:
    """The validation setting, its curve and the paper's figure in it. A sequence model (MANN)
    is compared at the last presentation its paper reports, read from the accuracy by
    presentation that its validation entries keep (``val_by_presentation``)."""
    config = record["config"]
    if "per_class" in report:  # sequence episodes: the papers report each presentation
        figures = {r["presentation"]: r["paper_accuracy"] for r in report["results"]
                   if r.get("paper_accuracy") is not None}
        if not figures:
            return [], [], None
        presentation = max(figures)
        points = [(h["episode"], h["val_by_presentation"][presentation - 1]) for h in history
                  if len(h.get("val_by_presentation", ())) >= presentation]
        return [config.get("val_way"), f"presentation {presentation}"], points, \
            figures[presentation]
    setting = [config.get("val_way"), config.get("val_shot") or config.get("k_shot")]
    points = [(h["episode"], h["val_accuracy"]) for h in history if "val_accuracy" in h]
    paper = next((r.get("paper_accuracy") for r in report["results"]
                  if [r.get("n_way"), r.get("k_shot")] == setting), None)
    return setting, points, paper


def project(name: str, folder: Path) -> dict | None:
    """The projection of one shipped checkpoint, or None where it has no validation curve or no
    paper figure in its validation setting."""
    record = json.loads((folder / "checkpoint.json").read_text())
    history_file, results_file = folder / "history.json", folder / "results.json"
    if not (history_file.is_file() and results_file.is_file()):
        return None
    setting, points, paper = _curve_and_paper(record, json.loads(history_file.read_text()),
                                              json.loads(results_file.read_text()))
    if len(points) < MIN_POINTS or paper is None:
        return None
    threads = int(re.search(r"(\d+) threads?$", record["hardware"]).group(1))
    core_seconds_per_step = record["training_seconds"] * threads / record["episode"]
    last_step = points[-1][0]
    second_half = [(step, accuracy) for step, accuracy in points if step > last_step / 2]
    half_projection = None
    if len(second_half) >= MIN_POINTS:
        half_projection = {**_projection(second_half, paper, last_step, core_seconds_per_step),
                           "first_step": second_half[0][0],
                           "validation_points": len(second_half)}
    return {"checkpoint": name, "setting": setting, "validation_points": len(points),
            "last_step": last_step, "best_validation": max(a for _, a in points),
            "paper_accuracy": paper,
            **_projection(points, paper, last_step, core_seconds_per_step),
            "second_half": half_projection,
            "core_hours_so_far": last_step * core_seconds_per_step / 3600,
            "hardware": record["hardware"]}


def _projection(points: list[tuple[int, float]], paper: float, last_step: int,
                core_seconds_per_step: float) -> dict:
    """The power law fitted to these validation points, and the steps (and core-hours) at which
    it reaches the paper's figure: None beyond its ceiling or beyond MAX_FACTOR times the run."""
    from fslearn.projection import fit_learning_curve

    fit = fit_learning_curve(*zip(*points, strict=True))
    needed = fit.steps_to(paper)
    beyond = needed is not None and needed > MAX_FACTOR * last_step
    return {"fit": {"floor": fit.floor, "scale": fit.scale, "exponent": fit.exponent,
                    "rms": fit.rms},
            "ceiling": fit.ceiling,
            "steps_to_paper": None if beyond else needed,
            "beyond_1000x_the_run": beyond,
            "core_hours_to_paper": (None if needed is None or beyond
                                    else needed * core_seconds_per_step / 3600)}


def steps_text(projection: dict | None) -> str:
    """A projection's steps to the paper's figure, or why it has none."""
    if projection is None:
        return f"< {MIN_POINTS} points"
    if projection["beyond_1000x_the_run"]:
        return f"> {MAX_FACTOR}x run"
    if projection["steps_to_paper"] is None:
        return "beyond ceiling"
    return f"{projection['steps_to_paper']:,.0f}"


def main() -> None:
    from fslearn.checkpoints import shipped_checkpoints

    rows = [row for name, folder in shipped_checkpoints().items()
            if (row := project(name, folder)) is not None]
    OUTPUT.write_text(json.dumps({"script": "tools/projection.py", "projections": rows},
                                 indent=1) + "\n")
    print(f"{'checkpoint':24} {'setting':8} {'run':>7} {'best val':>8} {'ceiling':>8} "
          f"{'rms':>5} {'paper':>6} {'steps to paper':>15} {'core-h':>8} {'2nd half':>15}")
    for row in rows:
        hours = ("-" if row["core_hours_to_paper"] is None
                 else f"{row['core_hours_to_paper']:,.0f}")
        way, shot = row["setting"]
        label = f"{way}w{shot}s" if isinstance(shot, int) else f"{way}w {shot.split()[-1]}th"
        print(f"{row['checkpoint']:24} {label:8} "
              f"{row['last_step']:>7,} {100 * row['best_validation']:8.2f} "
              f"{100 * row['ceiling']:8.2f} {100 * row['fit']['rms']:5.2f} "
              f"{100 * row['paper_accuracy']:6.2f} {steps_text(row):>15} {hours:>8} "
              f"{steps_text(row['second_half']):>15}")
    print("validation classes are not the paper's test classes; the fit assumes the recipe "
          "goes on as it ran")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
