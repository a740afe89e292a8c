"""Test time per episode of every shipped checkpoint, measured side by side.

    python benchmarks/test_time.py                      # print the figures
    python benchmarks/test_time.py --write              # and store them in each episodes.json
    python benchmarks/test_time.py --rounds 2 --only protonet-omniglot   # a smoke test

The time of a setting is what scoring one new test episode costs: ``method(episode)`` on one
task built from raw images, one thread, in evaluation mode
(:func:`fslearn.evaluation.timing.seconds_per_episode`; sequence models: one sequence episode).
Each round times one episode of every (checkpoint, setting) in turn, after a warm-up episode, and
the figure kept is the fastest of the rounds: the machine's load then falls on all checkpoints
alike, and the fastest run is the one it disturbed least. Only checkpoints with an
``episodes.json`` (``fslearn report NAME --write-episodes``) are timed, and ``--write`` replaces
the times and the ``timing`` entry there (the right answers are left alone). With --json FILE the
figures are written as JSON, with the device and the command that made them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from functools import partial
from pathlib import Path
from typing import Any

import torch
from _common import write_results  # benchmarks/_common.py, beside this script

from fslearn._system import describe_hardware
from fslearn.checkpoints import load_checkpoint, shipped_checkpoints, write_json_atomically
from fslearn.data import load_omniglot
from fslearn.data.sequences import SequenceTasks
from fslearn.evaluation.timing import (
    TIMING_NOTE,
    seconds_per_episode,
    seconds_per_sequence_episode,
)
from fslearn.results_table import EPISODES_FILE, read_episodes, timing_record


def _timers(names: list[str]) -> list[tuple[str, int, Any]]:
    """``(checkpoint, setting index, timer)`` for every stored setting; ``timer(seed=i)`` times
    one episode of seed ``i`` after a warm-up one."""
    timers = []
    for name in names:
        folder = shipped_checkpoints()[name]
        episodes = read_episodes(folder)
        if episodes is None:
            print(f"{name}: no {EPISODES_FILE}, not timed", file=sys.stderr)
            continue
        method, record = load_checkpoint(folder)
        data = record.get("data", {})
        for index, entry in enumerate(episodes["settings"]):
            protocol, split = entry["dataset"].split("/")[1:]
            dataset = load_omniglot(split, protocol, image_size=int(data.get("image_size", 28)))
            if "per_class" in entry:
                tasks = SequenceTasks(dataset, **data.get("sequence", {}))
                timer = partial(
                    seconds_per_sequence_episode,
                    method,
                    tasks,
                    entry["n_way"],
                    entry["per_class"],
                    entry["labels"],
                    1,
                )
            else:
                timer = partial(
                    seconds_per_episode,
                    method,
                    dataset,
                    entry["n_way"],
                    entry["k_shot"],
                    entry["n_query"],
                    1,
                )
            timers.append((name, index, timer))
    return timers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of one episode each")
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        metavar="NAME",
        help="these shipped checkpoints (default: every one)",
    )
    parser.add_argument(
        "--write", action="store_true", help="store the times in each checkpoint's episodes.json"
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="write the figures as JSON"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.only or list(shipped_checkpoints())
    timers = _timers(names)
    fastest: dict[tuple[str, int], float] = {}
    for round_ in range(args.rounds):
        for name, index, timer in timers:
            seconds = timer(seed=round_)
            fastest[name, index] = min(fastest.get((name, index), seconds), seconds)
        print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    command = shlex.join(["python", "benchmarks/test_time.py", *sys.argv[1:]])
    hardware = describe_hardware("cpu")
    how = (
        TIMING_NOTE.format(repeats=args.rounds)
        + ", one round of every checkpoint at a time (benchmarks/test_time.py)"
    )
    rows = []
    for name in dict.fromkeys(name for name, _, _ in timers):
        folder = shipped_checkpoints()[name]
        episodes = read_episodes(folder)
        assert episodes is not None
        for index, entry in enumerate(episodes["settings"]):
            entry["seconds_per_episode"] = fastest[name, index]
            shape = {key: entry[key] for key in ("n_way", "k_shot", "per_class") if key in entry}
            rows.append({"checkpoint": name, **shape, "seconds_per_episode": fastest[name, index]})
            print(f"{name:<24} {json.dumps(shape):<36} {fastest[name, index]:8.3f} s")
        if args.write:
            episodes["timing"] = timing_record(how, command, hardware)
            write_json_atomically(folder / EPISODES_FILE, episodes, indent=None)
    if args.json is not None:
        write_results(args.json, "benchmarks/test_time.py", "cpu", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
