"""``fslearn results``: every shipped checkpoint in one table, read from the files beside each
(figures with their 95% CIs beside the paper's, training cost, parameters, test time per
episode); nothing is evaluated."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fslearn.cli._args import command
from fslearn.results_table import format_results, results_table

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """``fslearn results`` and its options."""
    rs = command(
        commands,
        "results",
        "every shipped checkpoint in one table: test figures with their 95%% CIs beside "
        "the paper's, training core-hours, parameters and test time per episode, read "
        "from the shipped files",
    )
    rs.add_argument("--json", action="store_true", help="print one JSON object (default: tables)")


def run(args: argparse.Namespace) -> int:
    """``fslearn results``: returns the exit status."""
    rows = results_table()
    if args.json:
        print(json.dumps({"checkpoints": rows}))
    else:
        print(format_results(rows))
    return 0
