"""Chapter 5's comparison of two MAML recipes on validation classes, at equal outer steps.

    python tools/maml_recipes.py               # train both runs (resumable), then collect
    python tools/maml_recipes.py --collect     # only collect finished runs

Today's recipe (the four-block Conv4 with max-pooling, the support loss's *mean*, alpha = 0.4)
against the authors' (Finn et al.'s strided network, their per-example sum divided by K, their
alpha = 0.4, i.e. a step five times larger at 5-way): 5-way 1-shot, 32 tasks per outer step,
600 outer steps, validated every 100 steps on 300 episodes of the validation classes. The test
classes are never used. Each run is trained by `fslearn train` at one thread into
runs/cmp-*; the validation curves, commands, hardware and times are written to
book/data/maml-recipes.json, which chapter 5 reads.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "book" / "data" / "maml-recipes.json"
COMMON = ("--way 5 --shot 1 --query 1 --tasks 32 --inner-steps 1 --inner-lr 0.4 "
          "--test-inner-steps 3 --episodes 600 --lr 1e-3 --lr-gamma 1 --val-every 100 "
          "--val-episodes 300 --checkpoint-every 50 --seed 0 --threads 1 --no-progress")
RECIPES = {
    "fslearn: Conv4, mean support loss": ("runs/cmp-conv4-mean", ""),
    "authors: strided network, sum over examples / K": (
        "runs/cmp-authors-sum", "--architecture authors --inner-loss sum_over_k"),
}


def command(folder: str, extra: str) -> list[str]:
    """The `fslearn train` command of one recipe."""
    return ["fslearn", "train", "maml", *shlex.split(COMMON), *shlex.split(extra),
            "--out", folder]


def collect() -> dict:
    """Each finished run's validation curve and provenance."""
    recipes = {}
    for label, (folder, extra) in RECIPES.items():
        path = ROOT / folder / "last" / "checkpoint.json"
        if not path.is_file():
            sys.exit(f"error: {path} not found: train it first (python tools/maml_recipes.py)")
        record = json.loads(path.read_text())
        state = record["training_state"]
        recipes[label] = {
            "command": shlex.join(command(folder, extra)),
            "hparams": record["hparams"],
            "hardware": record["hardware"],
            "training_seconds": state["training_seconds"],
            "outer_steps": state["episode"],
            "validation": [{"episode": h["episode"], "accuracy": h["val_accuracy"],
                            "ci95": h["val_ci95"]}
                           for h in state["history"] if "val_accuracy" in h],
        }
    return {"setting": "5-way 1-shot, 32 tasks per step; validation: 300 episodes, 15 queries "
                       "per class, 3 inner steps", "recipes": recipes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", action="store_true", help="only collect finished runs")
    args = parser.parse_args()
    if not args.collect:
        for folder, extra in RECIPES.values():
            subprocess.run([sys.executable, "-m", "fslearn", *command(folder, extra)[1:]],
                           cwd=ROOT, check=True)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(collect(), indent=1) + "\n")
    print(f"Wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
