"""``fslearn challenge``: a checkpoint's error on Lake et al.'s 20-way one-shot challenge (the 20
official runs of ``all_runs.zip``), with its 95% CI over the runs, beside the published errors.

A command of its own rather than an option of ``evaluate``: every option of ``evaluate``
(``--way``, ``--shot``, ``--query``, ``--episodes``, ``--seed``, ``--split``, ``--protocol``)
chooses sampled test episodes, and the challenge fixes all of them (20 given runs, one query per
class); its figure is an error over runs, not an accuracy over sampled episodes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fslearn.checkpoints import load_checkpoint, resolve_checkpoint
from fslearn.cli._args import command, torch_device
from fslearn.data.lake import (
    LAKE_RUNS_FILE,
    LakeRun,
    find_lake_runs,
    load_lake_runs,
    runs_seen_in_training,
)
from fslearn.data.omniglot import load_omniglot_characters
from fslearn.evaluation.challenge import check_takes_challenge, score_challenge
from fslearn.results import LAKE_CHALLENGE_ERRORS

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """``fslearn challenge`` and its options."""
    ch = command(
        commands,
        "challenge",
        "error on Lake et al.'s 20-way one-shot challenge (20 runs of 20 characters of "
        "one alphabet) with its 95%% CI over the runs, beside people's and the "
        "published models'",
    )
    ch.add_argument("checkpoint", help="checkpoint folder, run folder, or shipped name")
    ch.add_argument(
        "--runs",
        type=Path,
        default=None,
        metavar="ZIP",
        help=f"the challenge's {LAKE_RUNS_FILE} (default: found under the data "
        f"root: in it, in its omniglot-lake/, or in an omniglot-lake/ beside it)",
    )
    ch.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="data root to look for the runs under (default: $FSLEARN_DATA, else a "
        "per-user folder)",
    )
    ch.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda if available)")
    ch.add_argument("--json", action="store_true", help="print one JSON object (default: text)")


def run(args: argparse.Namespace) -> int:
    """``fslearn challenge``: returns the exit status."""
    method, record = load_checkpoint(args.checkpoint, torch_device(args.device))
    name = resolve_checkpoint(args.checkpoint).name
    data = record.get("data", {})
    if data.get("dataset") == "sinusoid":
        raise ValueError(
            f"{args.checkpoint} is a sinusoid regression model: the challenge is "
            f"for image classifiers."
        )
    check_takes_challenge(method, str(args.checkpoint))
    if args.runs is not None and args.data_root is not None:
        raise ValueError(
            "--runs names the zip itself and --data-root where to look for it: give one of them."
        )
    path = args.runs if args.runs is not None else find_lake_runs(args.data_root)
    size = int(data.get("image_size", 28))
    runs = load_lake_runs(path=path, image_size=size)
    result = score_challenge(method, runs)
    seen = _seen_in_training(runs, data, args.data_root, size)
    published = {label: error for label, (error, _, _) in LAKE_CHALLENGE_ERRORS.items()}
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": name,
                    "runs_file": str(path),
                    "protocol": data.get("protocol"),
                    "train_split": data.get("train_split"),
                    **result.to_dict(per_episode=True),
                    "seen_in_training": seen,
                    "published": published,
                }
            )
        )
        return 0
    print(f"{name}: {result}")
    items = result.items // result.runs
    for index, (run_name, error) in enumerate(
        zip(result.run_names, result.per_episode, strict=True)
    ):
        known = (
            ""
            if not seen or not seen[index]
            else f" ({seen[index]} of its {items} characters were training characters)"
        )
        print(f"  {run_name}: {round(error * items)}/{items} wrong{known}")
    print(
        "Published: "
        + ", ".join(f"{label} {100 * error:.1f}%" for label, error in published.items())
        + " (Lake et al. 2015; the Siamese convnet on its own protocol)"
    )
    if seen and any(seen):
        print(
            f"Note: {name} was trained on Omniglot {data.get('protocol')} "
            f"{data.get('train_split')}, which holds {sum(seen)} of the {result.items} "
            f"characters of the runs (all 20 drawings of each): not Lake's protocol, which "
            f"trains on the background alphabets only (--protocol lake)."
        )
    return 0


def _seen_in_training(
    runs: list[LakeRun], data: dict[str, Any], root: Path | None, image_size: int
) -> list[int] | None:
    """How many characters of each run the checkpoint's Omniglot training split holds (None
    for a model trained on other images)."""
    if data.get("dataset", "omniglot") != "omniglot" or "protocol" not in data:
        return None
    characters = load_omniglot_characters(root, image_size)
    return runs_seen_in_training(
        runs, characters, data["protocol"], data.get("train_split", "train")
    )
