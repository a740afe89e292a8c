"""Every shipped checkpoint in one table, read from the files that ship with it.

A checkpoint folder holds how the model was made (``checkpoint.json``: method, data, command,
hardware, training time), its test figures beside its paper's (``results.json``, written by
``fslearn report NAME --write``) and, where it was made, ``episodes.json`` (``fslearn report NAME
--write-episodes``): the right answers of every test episode, so that two methods can be compared
on the same episodes, and the test time per episode. Nothing here evaluates a model; the table is
what those files say, so ``fslearn results`` and the book's chapter 8 cannot disagree with them.

* :func:`results_table`: one row (a dict) per shipped checkpoint: figures with their 95% CIs, the
  paper's figure and the gap, training core-hours, parameters, test time per episode;
* :func:`format_results`: the same as text (``fslearn results``);
* :func:`read_episodes`, :func:`episode_accuracies`, :func:`paired_difference`: comparisons on
  identical test episodes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fslearn.checkpoints import read_checkpoint, shipped_checkpoints
from fslearn.evaluation.common import confidence_interval95
from fslearn.methods import METHODS, build_method
from fslearn.results import PAPER_DATASET

__all__ = [
    "EPISODES_FILE",
    "checkpoint_summary",
    "core_hours",
    "episode_accuracies",
    "episodes_entry",
    "format_results",
    "paired_difference",
    "read_episodes",
    "results_table",
    "timing_record",
]

#: the file of per-episode right answers and test times beside results.json
EPISODES_FILE = "episodes.json"
_THREADS = re.compile(r"(\d+)\s+threads?\b")


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def core_hours(record: Mapping[str, Any]) -> float | None:
    """Training time times the CPU threads it ran on, in hours (``training_seconds`` and the
    ``hardware`` words of a checkpoint record, e.g. ``"AMD EPYC, 2 threads"``); None for a run
    on a GPU or a record that does not say."""
    seconds = record.get("training_seconds")
    found = _THREADS.search(str(record.get("hardware", "")))
    if seconds is None or found is None or record.get("device", "cpu") != "cpu":
        return None
    return float(seconds) * int(found.group(1)) / 3600


def _kind(record: Mapping[str, Any]) -> str:
    """``"regression"``, ``"sequences"`` or ``"episodes"``: what the checkpoint is tested on,
    from its record and its method's declaration."""
    if record.get("data", {}).get("dataset") == "sinusoid":
        return "regression"
    method = METHODS.get(str(record.get("method")))
    return "sequences" if method is not None and method.episode_kind == "sequences" else "episodes"


def _parameters(record: Mapping[str, Any]) -> int:
    """Learned parameters of the checkpoint's model (built from its record, weights not read)."""
    method = build_method(str(record["method"]), **record.get("hparams", {}))
    return sum(p.numel() for p in method.parameters())


def _gap(ours: float | None, paper: float | None) -> float | None:
    return None if ours is None or paper is None else ours - paper


def episodes_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """One setting of ``episodes.json`` from a result's ``to_dict(per_episode=True)`` (plus
    ``seconds_per_episode``): the per-episode accuracies stored as whole numbers of right
    answers, exact and a tenth of the size.

    Classification: ``correct: [episodes]`` right answers out of ``queries = n_way * n_query``.
    Sequences: ``correct: [episodes][per_class]`` right answers on each presentation, out of
    ``queries = n_way`` (each class is presented once per presentation number).
    """
    entry = {
        key: value
        for key, value in row.items()
        if key
        not in ("per_episode", "ci95", "paper_accuracy", "by_presentation", "by_presentation_ci95")
    }
    if "per_class" in row:
        queries = int(row["n_way"])
        correct: list[Any] = [
            [round(a * queries) for a in episode] for episode in row["per_episode"]
        ]
    else:
        queries = int(row["n_way"]) * int(row["n_query"])
        correct = [round(a * queries) for a in row["per_episode"]]
    return {**entry, "queries": queries, "correct": correct}


def timing_record(how: str, command: str, hardware: str) -> dict[str, Any]:
    """The ``timing`` entry of ``episodes.json``: how and by which command the test times were
    measured, on what, and how busy the machine was (its 1-minute load average, where the
    system reports one): on a shared machine the times are upper bounds."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"how": how, "command": command, "hardware": hardware, "load_average": load}


def read_episodes(folder: str | Path) -> dict[str, Any] | None:
    """A checkpoint folder's ``episodes.json``, or None where it was not made."""
    return _read_json(Path(folder) / EPISODES_FILE)


def episode_accuracies(
    episodes: Mapping[str, Any], n_way: int, k_shot: int
) -> tuple[Tensor, dict[str, Any]] | None:
    """``([episodes] accuracy of each test episode, the setting's entry)`` of the
    ``n_way``-way ``k_shot``-shot setting of an ``episodes.json``; None where it has none."""
    for entry in episodes.get("settings", []):
        if entry.get("n_way") == n_way and entry.get("k_shot") == k_shot:
            correct = torch.tensor(entry["correct"], dtype=torch.float64)
            return correct / entry["queries"], entry
    return None


def paired_difference(
    a: Sequence[float] | Tensor, b: Sequence[float] | Tensor
) -> tuple[float, float]:
    """``(mean of a - b, half-width of its 95% CI)`` for two methods' accuracies on the *same*
    test episodes (``a[i]`` and ``b[i]`` from episode ``i``).

    The interval is :func:`~fslearn.evaluation.confidence_interval95` of the per-episode
    differences. An episode that is hard for one method tends to be hard for the other, so the
    differences vary less than either method's accuracies, and this interval is narrower than
    the ``sqrt(ci_a**2 + ci_b**2)`` of two independent sets of episodes.

    Raises:
        ValueError: the two do not have one accuracy per episode each, for the same episodes.
    """
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if a.shape != b.shape:
        raise ValueError(
            f"a paired comparison needs one accuracy per episode from each method "
            f"on the same episodes, got {a.numel()} and {b.numel()}"
        )
    differences = a - b
    return float(differences.mean()), confidence_interval95(differences)


def _episode_rows(
    results: Mapping[str, Any], times: Mapping[tuple[int, int], float]
) -> list[dict[str, Any]]:
    """Classification rows: figure, CI, paper figure (only on the papers' test set) and gap."""
    rows = []
    for row in results.get("results", []):
        setting = (row["n_way"], row["k_shot"])
        paper = row.get("paper_accuracy") if row.get("dataset") == PAPER_DATASET else None
        rows.append(
            {
                "n_way": row["n_way"],
                "k_shot": row["k_shot"],
                "accuracy": row["accuracy"],
                "ci95": row["ci95"],
                "episodes": row["episodes"],
                "n_query": row["n_query"],
                "seed": row["seed"],
                "dataset": row["dataset"],
                "paper_accuracy": paper,
                "gap": _gap(row["accuracy"], paper),
                "seconds_per_episode": times.get(setting),
            }
        )
    return rows


def _sequence_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "presentation": row["presentation"],
            "accuracy": row["accuracy"],
            "ci95": row["ci95"],
            "paper_accuracy": row.get("paper_accuracy"),
            "gap": _gap(row["accuracy"], row.get("paper_accuracy")),
        }
        for row in results.get("results", [])
    ]


def _regression_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "k_shot": row["k_shot"],
            "steps": row["steps"],
            "mse": row["mse"],
            "ci95": row["ci95"],
            "episodes": row["episodes"],
            "paper_mse": row.get("paper_mse"),
            "gap": _gap(row["mse"], row.get("paper_mse")),
        }
        for row in results.get("results", [])
    ]


def _test_times(episodes: Mapping[str, Any] | None) -> dict[tuple[int, int], float]:
    """``(n_way, k_shot) -> seconds`` of a classification checkpoint's episodes.json."""
    return {
        (e["n_way"], e["k_shot"]): e["seconds_per_episode"]
        for e in (episodes or {}).get("settings", [])
        if "k_shot" in e and e.get("seconds_per_episode") is not None
    }


def _timing(episodes: Mapping[str, Any]) -> dict[str, Any]:
    """The ``timing`` entry of an episodes.json (older files: a sentence, and the hardware of
    the whole file)."""
    timing = episodes.get("timing")
    if isinstance(timing, dict):
        return timing
    return {
        "how": timing,
        "command": episodes.get("command"),
        "hardware": episodes.get("hardware"),
        "load_average": None,
    }


def checkpoint_summary(folder: str | Path) -> dict[str, Any]:
    """The row of one checkpoint folder: everything :func:`results_table` reports about it.

    Keys: ``name``, ``method``, ``kind`` (``episodes``, ``sequences`` or ``regression``),
    ``dataset``, ``protocol``, ``train_split``, ``seen_evaluation_alphabets`` (the Vinyals
    splits for training hold characters of 8 of the 20 evaluation alphabets; the Lake protocol
    trains on the 30 background alphabets only; None for sinusoids), ``command``, ``hardware``,
    ``training_seconds``, ``core_hours``, ``steps`` (optimizer steps to the kept checkpoint),
    ``parameters``, ``paper`` (the citation in results.json), ``results`` (one dict per setting,
    presentation or number of steps, with the paper's figure and the gap, ours minus theirs),
    ``shot_equivalents`` (sequence models), ``test_time`` (where episodes.json holds one: how the
    test times were measured, by which command, on what hardware, at what load), ``has_episodes``.
    """
    checkpoint = read_checkpoint(folder)
    folder, record = checkpoint.path, checkpoint.metadata
    results = _read_json(folder / "results.json") or {}
    episodes = read_episodes(folder)
    data = record.get("data", {})
    kind = _kind(record)
    protocol = data.get("protocol")
    rows = {
        "episodes": lambda: _episode_rows(results, _test_times(episodes)),
        "sequences": lambda: _sequence_rows(results),
        "regression": lambda: _regression_rows(results),
    }[kind]()
    summary: dict[str, Any] = {
        "name": folder.name,
        "method": record.get("method"),
        "kind": kind,
        "dataset": data.get("dataset"),
        "protocol": protocol,
        "train_split": data.get("train_split"),
        "seen_evaluation_alphabets": (
            None if data.get("dataset") != "omniglot" else protocol == "vinyals"
        ),
        "command": record.get("command"),
        "hardware": record.get("hardware"),
        "training_seconds": record.get("training_seconds"),
        "core_hours": core_hours(record),
        "steps": record.get("episode"),
        "parameters": _parameters(record),
        "paper": results.get("paper"),
        "results": rows,
        "has_episodes": episodes is not None,
        "test_time": None if episodes is None else _timing(episodes),
    }
    if kind == "sequences":
        summary["shot_equivalents"] = results.get("shot_equivalents", [])
        times = [e.get("seconds_per_episode") for e in (episodes or {}).get("settings", [])]
        summary["seconds_per_episode"] = times[0] if times else None
    return summary


def results_table(folders: Sequence[str | Path] | None = None) -> list[dict[str, Any]]:
    """:func:`checkpoint_summary` of each folder (default: every shipped checkpoint, by name)."""
    chosen = list(shipped_checkpoints().values()) if folders is None else folders
    return [checkpoint_summary(folder) for folder in chosen]


def _percent(value: float | None, ci95: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" + ("" if ci95 is None else f" ± {100 * ci95:.2f}")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def _cost(row: Mapping[str, Any]) -> list[str]:
    hours = row["core_hours"]
    return ["-" if hours is None else f"{hours:.2f}", f"{row['parameters']:,}"]


def _trained_on(row: Mapping[str, Any]) -> str:
    """``vinyals train*``; with the test set where it is not the papers' (``lake train, tested
    on omniglot/lake/test``)."""
    if row["dataset"] != "omniglot":
        return str(row["dataset"])
    star = "*" if row["seen_evaluation_alphabets"] else ""
    elsewhere = sorted({r["dataset"] for r in row["results"] if "dataset" in r} - {PAPER_DATASET})
    tested = f", tested on {', '.join(elsewhere)}" if elsewhere else ""
    return f"{row['protocol']} {row['train_split']}{star}{tested}"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [header, *lines]
    ]


def _classification_block(
    rows: list[Mapping[str, Any]], settings: Sequence[tuple[int, int]]
) -> list[str]:
    header = [
        "checkpoint",
        "trained on",
        *[f"{n}-way {k}-shot" for n, k in settings],
        "core-h",
        "params",
        "test/episode",
    ]
    lines = []
    for row in rows:
        by_setting = {(r["n_way"], r["k_shot"]): r for r in row["results"]}
        first = next(iter(row["results"]), {})
        ours = [
            _percent(by_setting[s]["accuracy"], by_setting[s]["ci95"]) if s in by_setting else "-"
            for s in settings
        ]
        lines.append(
            [
                row["name"],
                _trained_on(row),
                *ours,
                *_cost(row),
                _seconds(first.get("seconds_per_episode")),
            ]
        )
        if any(by_setting.get(s, {}).get("paper_accuracy") is not None for s in settings):
            papers = []
            for s in settings:
                paper = by_setting.get(s, {}).get("paper_accuracy")
                papers.append(
                    "-"
                    if paper is None
                    else f"{100 * paper:.1f} ({100 * by_setting[s]['gap']:+.2f})"
                )
            lines.append(["  paper (gap)", "", *papers, "", "", ""])
    return _table(header, lines)


def _sequence_block(rows: list[Mapping[str, Any]]) -> list[str]:
    # the presentations of the paper's table and those that stand in for k-shot settings
    presentations = sorted(
        {
            r["presentation"]
            for row in rows
            for r in row["results"]
            if r["paper_accuracy"] is not None
        }
        | {e["presentation"] for row in rows for e in row.get("shot_equivalents", [])}
    )
    header = [
        "checkpoint",
        "trained on",
        *[f"{k}." for k in presentations],
        "core-h",
        "params",
        "test/episode",
    ]
    lines = []
    for row in rows:
        by_k = {r["presentation"]: r for r in row["results"]}
        lines.append(
            [
                row["name"],
                _trained_on(row),
                *[
                    _percent(by_k[k]["accuracy"], by_k[k]["ci95"]) if k in by_k else "-"
                    for k in presentations
                ],
                *_cost(row),
                _seconds(row.get("seconds_per_episode")),
            ]
        )
        lines.append(
            [
                "  paper",
                "",
                *[
                    "-"
                    if by_k.get(k, {}).get("paper_accuracy") is None
                    else f"{100 * by_k[k]['paper_accuracy']:.1f}"
                    for k in presentations
                ],
                "",
                "",
                "",
            ]
        )
    return _table(header, lines)


def _equivalents(rows: list[Mapping[str, Any]]) -> list[str]:
    """Where sequence models stand in N-way K-shot terms (the presentation after K drawings)."""
    lines = []
    for row in rows:
        for e in row.get("shot_equivalents", []):
            lines.append(
                f"  {row['name']} as {e['n_way']}-way {e['k_shot']}-shot "
                f"({e['presentation']}. presentation, another protocol): "
                f"{_percent(e['accuracy'], e['ci95'])}"
            )
    return lines


def _regression_block(rows: list[Mapping[str, Any]]) -> list[str]:
    steps = sorted({r["steps"] for row in rows for r in row["results"]})
    header = [
        "checkpoint",
        "trained on",
        *[f"MSE {s} step{'s' * (s != 1)}" for s in steps],
        "core-h",
        "params",
    ]
    lines = []
    for row in rows:
        by_steps = {r["steps"]: r for r in row["results"]}
        lines.append(
            [
                row["name"],
                _trained_on(row),
                *[
                    f"{by_steps[s]['mse']:.3f} ± {by_steps[s]['ci95']:.3f}"
                    if s in by_steps
                    else "-"
                    for s in steps
                ],
                *_cost(row),
            ]
        )
        lines.append(
            [
                "  paper",
                "",
                *[
                    "-"
                    if by_steps.get(s, {}).get("paper_mse") is None
                    else f"{by_steps[s]['paper_mse']:.2f}"
                    for s in steps
                ],
                "",
                "",
            ]
        )
    return _table(header, lines)


def format_results(
    rows: Sequence[Mapping[str, Any]],
    settings: Sequence[tuple[int, int]] = ((5, 1), (5, 5), (20, 1), (20, 5)),
) -> str:
    """:func:`results_table`'s rows as text: one block per kind of test, and what the columns
    mean."""
    blocks = []
    for kind, title, draw in (
        (
            "episodes",
            "N-way K-shot test accuracy (%, ± 95% CI over the test episodes)",
            lambda chosen: _classification_block(chosen, settings),
        ),
        (
            "sequences",
            "Sequence episodes: accuracy (%) on the k-th presentation of a class",
            _sequence_block,
        ),
        (
            "regression",
            "Sinusoid regression: mean squared error after inner steps",
            _regression_block,
        ),
    ):
        chosen = [row for row in rows if row["kind"] == kind]
        if chosen:
            blocks.append("\n".join([title, *draw(chosen), *_equivalents(chosen)]))
    if not blocks:
        return "No checkpoints."
    timed = {row["test_time"]["hardware"] for row in rows if row.get("test_time")}
    untimed = [
        row["name"] for row in rows if row["kind"] != "regression" and not row["has_episodes"]
    ]
    notes = [
        "* trained on the Vinyals splits, which hold characters of 8 of the 20 evaluation "
        "alphabets, among them some characters of Lake's one-shot runs (fslearn challenge says "
        "which).",
        "gap: ours minus the paper's, in points; a paper figure only beside figures on the "
        f"papers' test set ({PAPER_DATASET}).",
        "core-h: training seconds x CPU threads / 3600, from each checkpoint.json (its hardware).",
        "params: learned parameters of the model the checkpoint rebuilds.",
        "test/episode: CPU seconds (one thread) to score one episode from its images, the "
        "fastest of a few (the first setting shown; every setting in --json), from episodes.json"
        + (f", measured on {', '.join(sorted(timed))}" if timed else "")
        + ".",
    ]
    if untimed:
        notes.append(
            f"no episodes.json (no test time, no paired comparisons) for: "
            f"{', '.join(untimed)}; make it with fslearn report NAME --write-episodes."
        )
    return "\n\n".join(blocks) + "\n\n" + "\n".join(notes)
