"""``fslearn checkpoints``: the shipped checkpoints and their figures."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fslearn.checkpoints import shipped_checkpoints
from fslearn.cli._args import command, learns_from_sequences, ordinal

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """``fslearn checkpoints`` and its options."""
    ls = command(commands, "checkpoints", "list the shipped checkpoints")
    ls.add_argument("--json", action="store_true",
                    help="print a JSON list (default: a line per checkpoint)")


def run(args: argparse.Namespace) -> int:
    """``fslearn checkpoints``: returns the exit status."""
    shipped = shipped_checkpoints()
    listing = []
    for name, folder in shipped.items():
        record = json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))
        results_file = folder / "results.json"
        results = (json.loads(results_file.read_text(encoding="utf-8"))["results"]
                   if results_file.is_file() else [])
        keys = (("k_shot", "steps", "mse", "ci95")
                if record.get("data", {}).get("dataset") == "sinusoid"
                else ("presentation", "accuracy", "ci95") if learns_from_sequences(record["method"])
                else ("n_way", "k_shot", "accuracy", "ci95"))
        listing.append({"name": name, "method": record["method"], "path": str(folder),
                        "data": record.get("data"), "command": record.get("command"),
                        "results": [{k: r[k] for k in keys} for r in results]})
    if args.json:
        print(json.dumps(listing))
        return 0
    if not listing:
        print("No shipped checkpoints.")
    for item in listing:
        data = item["data"] or {}
        if data.get("dataset") == "sinusoid":
            figures = ", ".join(f"K={r['k_shot']} {r['steps']} step{'s' * (r['steps'] != 1)} "
                                f"MSE {r['mse']:.3f}" for r in item["results"])
            print(f"{item['name']}: {item['method']} on sinusoid regression {figures}")
            continue
        if learns_from_sequences(item["method"]):
            figures = ", ".join(f"{ordinal(r['presentation'])} {100 * r['accuracy']:.2f}%"
                                for r in item["results"] if r["presentation"] in (1, 2, 5, 10))
            print(f"{item['name']}: {item['method']} on {data.get('dataset')} "
                  f"({data.get('protocol', data.get('train_data'))}) sequences, by "
                  f"presentation: {figures}")
            continue
        figures = ", ".join(f"{r['n_way']}w{r['k_shot']}s {100 * r['accuracy']:.2f}%"
                            for r in item["results"])
        print(f"{item['name']}: {item['method']} on {data.get('dataset')} "
              f"({data.get('protocol', data.get('train_data'))}) {figures}")
    return 0
