"""Chapter 7.1's experiments: more examples from the ones you have.

    python tools/augmentation.py               # train the three runs (resumable), then evaluate
    python tools/augmentation.py --collect     # only evaluate finished runs

1. Vinyals's rotated classes, ablated: a Prototypical Network trained on Omniglot's training
   characters with their rotations by 90, 180 and 270 degrees as new classes (4,112 classes, the
   standard) and one trained on the same characters upright only (1,028 classes,
   `--no-rotations`), with the same steps, seed and validation (the standard validation
   classes); each tested on the same 1,000 test episodes of the standard test classes and of the
   test characters upright only.
2. Hallucinated examples: a Prototypical Network with a hallucinator (`fslearn train
   hallucination`, M = 4 generated embeddings per support image), trained exactly as run 1's
   first model, tested on the same episodes; the paired difference is the hallucinator's.
3. Test-time support augmentation: the shipped `protonet-omniglot` scored from its support set
   alone, and with 4 jittered copies of each support image (two jitter strengths), on the same
   1,000 test episodes.

The checkpoints are chosen on validation classes; the test classes are used once, at the end.
Everything runs at one thread; the results, commands, hardware and times go to
book/data/augmentation.json, which the section reads.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "book" / "data" / "augmentation.json"
COMMON = ("--way 60 --shot 1 --query 5 --episodes 1000 --lr-step 2000 --val-every 250 "
          "--val-episodes 600 --checkpoint-every 250 --seed 0 --threads 1 --no-progress")
RUNS = {
    "protonet, rotations as classes": ("protonet", "runs/aug-protonet-rotations", ""),
    "protonet, upright only": ("protonet", "runs/aug-protonet-upright", "--no-rotations"),
    "hallucination (M = 4), rotations as classes": (
        "hallucination", "runs/aug-hallucination", "--hallucinations 4"),
}
SETTINGS = ((5, 1), (20, 1))
EPISODES = 1000
JITTERS = {"none": None, "10 deg, 10% shift, 10% scale": (10.0, 0.1, 0.1),
           "5 deg, 5% shift, 5% scale": (5.0, 0.05, 0.05)}


def command(method: str, folder: str, extra: str) -> list[str]:
    return ["fslearn", "train", method, *shlex.split(COMMON), *shlex.split(extra),
            "--out", folder]


def train_all() -> None:
    for method, folder, extra in RUNS.values():
        subprocess.run(command(method, folder, extra), check=True, cwd=ROOT)


def _row(result, seconds: float) -> dict:
    return {"n_way": result.n_way, "k_shot": result.k_shot, "accuracy": result.accuracy,
            "ci95": result.ci95, "episodes": result.episodes, "seed": result.seed,
            "dataset": result.dataset, "seconds": round(seconds, 1),
            "per_episode": [round(a, 4) for a in result.per_episode]}


def _evaluate(method, dataset, n_way: int, k_shot: int) -> dict:
    from fslearn.evaluation import evaluate

    start = time.process_time()
    result = evaluate(method, dataset, n_way, k_shot, 15, EPISODES, seed=0)
    return _row(result, time.process_time() - start)


def collect() -> dict:
    from fslearn._system import describe_hardware
    from fslearn.augment import AffineJitter, SupportAugmented
    from fslearn.checkpoints import load_checkpoint
    from fslearn.data import load_omniglot

    torch.set_num_threads(1)
    tests = {"standard test classes": load_omniglot("test"),
             "test characters upright only": load_omniglot("test", rotations=False)}
    runs = {}
    for label, (method_name, folder, extra) in RUNS.items():
        best = ROOT / folder / "best"
        if not (best / "checkpoint.json").is_file():
            sys.exit(f"error: {folder} is not trained: run python tools/augmentation.py")
        method, record = load_checkpoint(best)
        last = json.loads((ROOT / folder / "last" / "checkpoint.json").read_text())
        runs[label] = {
            "command": shlex.join(command(method_name, folder, extra)),
            "train_classes": 1028 if "--no-rotations" in extra else 4112,
            "best_episode": record["episode"], "hardware": record["hardware"],
            "training_seconds": last["training_seconds"],
            "validation": [{"episode": h["episode"], "accuracy": h["val_accuracy"]}
                           for h in last["training_state"]["history"] if "val_accuracy" in h],
            "test": {name: [_evaluate(method, data, *s) for s in SETTINGS]
                     for name, data in tests.items()},
        }
        print(f"evaluated {label}", file=sys.stderr)
    shipped, _ = load_checkpoint("protonet-omniglot")
    jitter = {}
    for label, ranges in JITTERS.items():
        model = shipped if ranges is None else SupportAugmented(shipped, 4, AffineJitter(*ranges))
        jitter[label] = [_evaluate(model, tests["standard test classes"], *s) for s in SETTINGS]
        print(f"evaluated jitter {label}", file=sys.stderr)
    return {"script": "tools/augmentation.py", "hardware": describe_hardware("cpu"),
            "episodes": EPISODES, "runs": runs,
            "support_jitter": {"checkpoint": "protonet-omniglot", "copies": 4,
                               "results": jitter}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collect", action="store_true", help="only evaluate finished runs")
    args = parser.parse_args()
    if not args.collect:
        train_all()
    OUTPUT.write_text(json.dumps(collect(), indent=1) + "\n")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
