"""``fslearn report``: the four standard Omniglot settings beside the paper's figures (sequence
models: accuracy by presentation beside Santoro et al.'s table; sinusoid models: Finn et al.'s
mean squared errors), optionally stored as results.json in the checkpoint folder."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fslearn._system import describe_hardware
from fslearn.checkpoints import (
    load_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
    write_json_atomically,
)
from fslearn.cli._args import (
    check_episodes,
    command,
    episode_args,
    learns_from_sequences,
    load_for_eval,
    ordinal,
    torch_device,
)
from fslearn.cli.evaluate import evaluate_sequence_checkpoint, print_shot_equivalents
from fslearn.data.sequences import SequenceTasks
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.evaluation import SHOT_EQUIVALENT_NOTE, classification, regression, sequences
from fslearn.evaluation.timing import (
    TIMING_NOTE,
    seconds_per_episode,
    seconds_per_sequence_episode,
)
from fslearn.results import PAPER_DATASET, STANDARD_SETTINGS, paper_figures
from fslearn.results_table import EPISODES_FILE, episodes_entry, timing_record
from fslearn.training_config import config_from_record

__all__ = ["add_parser", "run"]

#: episodes timed for the test time per episode stored by --write-episodes
TIMING_REPEATS = 5


def add_parser(commands: Any) -> None:
    """``fslearn report`` and its options."""
    rp = command(commands, "report",
                  "evaluate the four standard Omniglot settings beside the paper's figures "
                  "(sequence models: accuracy by presentation beside Santoro et al.'s table)")
    rp.add_argument("checkpoint", help="checkpoint folder, run folder, or shipped name")
    episode_args(rp)
    rp.add_argument("--write", action="store_true",
                    help="store the figures as results.json in the checkpoint folder "
                    "(default: only print them)")
    rp.add_argument("--write-episodes", action="store_true",
                    help="store each setting's per-episode right answers and the test time per "
                    "episode as episodes.json in the checkpoint folder, for comparisons on the "
                    "same episodes (fslearn results; the book's chapter 8); results.json is "
                    "written only with --write (default: neither is stored)")
    rp.add_argument("--json", action="store_true",
                    help="print one JSON object (default: a table)")


def _regression_report(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str, str]:
    """Finn et al.'s Table 2 settings for a sinusoid checkpoint: MSE after 1, 5 and 10 steps on
    the checkpoint's K support points, 100 query points per task."""
    device = torch_device(args.device)
    method, record = load_checkpoint(args.checkpoint, device)
    k_shot = config_from_record(record["config"]).k_shot
    published = paper_figures(type(method), "regression")
    paper = published.figures.get(k_shot, {}) if published else {}
    rows = regression.report_rows(method, SinusoidRegression(), k_shot, paper, args.episodes,
                                  args.seed)
    return rows, published.citation if published else None, describe_hardware(device)


def _sequence_report(args: argparse.Namespace, argv: Sequence[str], folder: Path,
                     record: dict[str, Any]) -> int:
    """A sequence model's accuracy by presentation beside Santoro et al.'s Table 1 (5-way
    one-hot episodes only), and as the 5-way 1-shot and 5-shot equivalents."""
    args.per_class = None  # the checkpoint's episodes
    method, result, device = evaluate_sequence_checkpoint(args, record)
    published = paper_figures(type(method), "sequences")
    # the paper's whole table where it declares one, so its other rows stand beside the method's
    table = (published.table or {method.name: published.figures}) if published else {}
    comparable = result.labels == "one_hot"
    paper = {name: figures.get(result.n_way, {}) if comparable else {}
             for name, figures in table.items()}
    own = published.figures.get(result.n_way, {}) if published and comparable else {}
    rows = sequences.report_rows(result, own)
    equivalents = sequences.shot_equivalents(result)
    report = {
        "checkpoint": folder.name,
        "command": shlex.join(["fslearn", *argv]),
        "paper": published.citation if published else None,
        "hardware": describe_hardware(device),
        "n_way": result.n_way, "per_class": result.per_class, "labels": result.labels,
        "episodes": result.episodes, "seed": result.seed, "dataset": result.dataset,
        "results": rows,
        "paper_table": {name: {str(k): v for k, v in figures.items()}
                        for name, figures in paper.items()},
        "shot_equivalents": equivalents,
        "note": SHOT_EQUIVALENT_NOTE,
    }
    if args.json:
        print(json.dumps(report))
    else:
        names = list(table)
        width = max(len(f"paper {name}") for name in names) + 2
        print(f"{result.n_way}-way sequences, {result.per_class} drawings per class, "
              f"{result.labels} labels, {result.episodes} episodes of {result.dataset}")
        print(f"{'presentation':<14}{'fslearn ' + method.name:>22}"
              + "".join(f"{'paper ' + name:>{width}}" for name in names))
        for row in rows:
            k = row["presentation"]
            ours = f"{100 * row['accuracy']:.2f} +/- {100 * row['ci95']:.2f}"
            theirs = "".join(f"{'' if k not in paper[n] else f'{100 * paper[n][k]:.1f}':>{width}}"
                             for n in names)
            print(f"{ordinal(k):<14}{ours:>22}{theirs}")
        print_shot_equivalents(equivalents, 36)
        if published:
            print(f"Paper: {report['paper']}" + ("" if comparable else
                                                 " (one-hot labels only: not comparable)"))
    if args.write:
        write_json_atomically(folder / "results.json", report)
        print(f"Wrote {folder / 'results.json'}", file=sys.stderr)
    if args.write_episodes:
        tasks = SequenceTasks(load_for_eval(args)[1], **record.get("data", {}).get("sequence", {}))
        seconds = seconds_per_sequence_episode(method, tasks, result.n_way, result.per_class,
                                               result.labels, TIMING_REPEATS, args.seed, device)
        _write_episodes(folder, argv, device, [episodes_entry(
            {**result.to_dict(per_episode=True), "seconds_per_episode": seconds})])
    return 0


def _write_episodes(folder: Path, argv: Sequence[str], device: torch.device,
                    settings: list[dict[str, Any]]) -> None:
    """episodes.json: each setting's right answers per episode and its test time per episode."""
    command_line = shlex.join(["fslearn", *argv])
    hardware = describe_hardware(device)
    write_json_atomically(folder / EPISODES_FILE, {
        "checkpoint": folder.name,
        "command": command_line,
        "hardware": hardware,
        "timing": timing_record(TIMING_NOTE.format(repeats=TIMING_REPEATS), command_line,
                                hardware),
        "settings": settings,
    }, indent=None)
    print(f"Wrote {folder / EPISODES_FILE}", file=sys.stderr)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``fslearn report``: returns the exit status."""
    folder = resolve_checkpoint(args.checkpoint)
    record = read_checkpoint(folder).metadata
    if learns_from_sequences(record.get("method")):
        return _sequence_report(args, argv, folder, record)
    check_episodes(args.episodes)
    if record.get("data", {}).get("dataset") == "sinusoid":
        if args.write_episodes:
            raise ValueError(f"--write-episodes stores the right answers of classification and "
                             f"sequence episodes, but {folder.name} is a sinusoid regression "
                             f"model: leave it out.")
        rows, citation, hardware = _regression_report(args)
        report = {"checkpoint": folder.name, "command": shlex.join(["fslearn", *argv]),
                  "paper": citation, "hardware": hardware, "results": rows}
        if args.json:
            print(json.dumps(report))
        else:
            print(f"{'setting':<16}{'fslearn MSE':>22}{'paper':>10}")
            for row in rows:
                theirs = "" if row["paper_mse"] is None else f"{row['paper_mse']:.2f}"
                ours = f"{row['mse']:.3f} +/- {row['ci95']:.3f}"
                steps = f"{row['steps']} step{'s' * (row['steps'] != 1)}"
                print(f"K={row['k_shot']}, {steps:<9}{ours:>22}{theirs:>10}")
        if args.write:
            write_json_atomically(folder / "results.json", report)
            print(f"Wrote {folder / 'results.json'}", file=sys.stderr)
        return 0
    method, dataset, device = load_for_eval(args)
    # the papers' figures are for the Vinyals split (shown beside any of its sets, as before);
    # a Lake-protocol or own-data test set has none beside it
    vinyals = PAPER_DATASET.rsplit("/", 1)[0] + "/"
    published = paper_figures(type(method), "classification")
    paper = published.figures if published and dataset.name.startswith(vinyals) else {}
    rows = classification.report_rows(
        method, dataset, STANDARD_SETTINGS, paper, args.query, args.episodes, args.seed, device,
        args.progress, per_episode=args.write_episodes)
    # the method's own test episodes (such as unlabelled images), beside its papers' figures
    extra = classification.extra_report_rows(
        method, dataset, method.extra_test_settings(config_from_record(
            {"n_way": 5, **record.get("config", {})})),
        dataset.name.startswith(vinyals), args.episodes, args.seed, device, args.progress)
    if args.write_episodes:
        _write_episodes(folder, argv, device, [episodes_entry({
            **row, "seconds_per_episode": seconds_per_episode(
                method, dataset, row["n_way"], row["k_shot"], row["n_query"], TIMING_REPEATS,
                args.seed, device)}) for row in rows])
        for row in rows:
            del row["per_episode"]
    report = {
        "checkpoint": folder.name,
        "command": shlex.join(["fslearn", *argv]),
        "paper": published.citation if published else None,
        "hardware": describe_hardware(device),
        "results": rows,
        **({"extra_results": extra} if extra else {}),
    }
    if args.json:
        print(json.dumps(report))
    else:
        lines = [(f"{row['n_way']}-way {row['k_shot']}-shot", row, 1) for row in rows]
        lines += [(f"{row['n_way']}-way {row['k_shot']}-shot, {row['n_query']} queries, "
                   f"{row.get('unlabelled', 0)} unlabelled, {row.get('distractors', 0)} "
                   f"distractors", row, 2) for row in extra]
        width = max(16, *(len(label) + 2 for label, _, _ in lines))
        print(f"{'setting':<{width}}{'fslearn':>16}{'paper':>10}")
        for label, row, decimals in lines:
            ours = f"{100 * row['accuracy']:.2f} +/- {100 * row['ci95']:.2f}"
            theirs = ("" if row["paper_accuracy"] is None
                      else f"{100 * row['paper_accuracy']:.{decimals}f}")
            print(f"{label:<{width}}{ours:>16}{theirs:>10}")
    if args.write:
        write_json_atomically(folder / "results.json", report)
        print(f"Wrote {folder / 'results.json'}", file=sys.stderr)
    return 0
