"""Accuracy of one shipped model at every shot from 1 to K, for the book's figures.

    python tools/by_shot.py snail-omniglot-5way --shots 1 2 3 4 5

A model that trains on several shots at once (SNAIL draws K from 1 to 5 every step) scores any
of them; `fslearn report` gives the papers' two, 1 and 5. This scores each shot on the same
1,000 test episodes as `fslearn report` (seed 0, 15 queries per class) and writes the figures,
the command, the hardware and the CPU time under the checkpoint's name in
book/data/by-shot.json (other checkpoints' entries are kept).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "book" / "data" / "by-shot.json"
EPISODES = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a shipped name or checkpoint folder")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--way", type=int, default=5)
    args = parser.parse_args()
    if args.way < 2 or min(args.shots) < 1:
        parser.error(f"--way must be at least 2 and every --shots at least 1, got --way "
                     f"{args.way} and --shots {' '.join(map(str, args.shots))}")

    from fslearn._system import describe_hardware
    from fslearn.checkpoints import load_checkpoint, write_json_atomically
    from fslearn.data import load_omniglot
    from fslearn.evaluation import evaluate

    torch.set_num_threads(1)
    method, record = load_checkpoint(args.checkpoint)
    protocol = record["data"].get("protocol", "vinyals")  # the test split of its own protocol
    test = load_omniglot("test", protocol=protocol,
                         image_size=record["data"].get("image_size", 28))
    rows = []
    for k_shot in args.shots:
        start = time.process_time()
        result = evaluate(method, test, args.way, k_shot, 15, EPISODES, seed=0)
        rows.append({"n_way": args.way, "k_shot": k_shot, "accuracy": result.accuracy,
                     "ci95": result.ci95, "episodes": EPISODES,
                     "cpu_seconds": round(time.process_time() - start, 1)})
        print(f"{args.way}-way {k_shot}-shot: {100 * result.accuracy:.2f} ± "
              f"{100 * result.ci95:.2f}", flush=True)
    saved = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {}
    saved[args.checkpoint] = {
        "command": "python " + shlex.join(["tools/by_shot.py", *sys.argv[1:]]),
        "dataset": f"omniglot/{protocol}/test", "n_query": 15, "seed": 0,
        "hardware": describe_hardware("cpu"), "results": rows}
    write_json_atomically(OUTPUT, saved, indent=1)


if __name__ == "__main__":
    main()
