"""Chapter 7.3's experiment: how the gap to supervised training closes as labels are added.

    python tools/no_labels.py                 # train the four runs (resumable), then evaluate
    python tools/no_labels.py --only scratch  # train only the runs whose name contains it
    python tools/no_labels.py --collect       # only evaluate (finished runs; others left out)

A Prototypical Network is trained with the labels of a fraction of Omniglot's training classes
(`--labelled-classes`: 1% and 10% of the 4,112 rotated classes, all 20 drawings of each), twice
at each fraction: from random weights, and from the shipped self-supervised `protoclr-omniglot`
(`--init-from`). Both runs of a fraction see the same classes and the same episodes (one seed),
for the same fixed budget, chosen in advance: there is no validation, because ProtoCLR's
pre-training saw the validation characters' images (without labels), and choosing on them would
favour it. The final weights are kept.

Each run, `protoclr-omniglot` itself (no labels) and the shipped `protonet-omniglot` (every
label) are tested on the same 1,000 test episodes (seed 0, 15 queries per class) in the four
standard settings; the per-episode accuracies are kept for paired differences. Everything runs
at one thread; commands, records, hardware and times go to book/data/no-labels.json, which the
section reads.
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
OUTPUT = ROOT / "book" / "data" / "no-labels.json"
FRACTIONS = (0.01, 0.1)
COMMON = ("--way 20 --shot 1 --query 15 --episodes 2000 --lr 1e-3 --val-split none "
          "--val-every 0 --checkpoint-every 250 --seed 0 --threads 1 --no-progress")
STARTS = {"scratch": "", "from protoclr-omniglot": "--init-from protoclr-omniglot"}
SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))
EPISODES = 1000


def runs() -> dict[str, tuple[float, str, str]]:
    """``{label: (fraction, output folder, extra options)}`` for every training run."""
    return {f"{100 * fraction:g}% of the classes labelled, {start}": (
        fraction, f"runs/labels-{100 * fraction:g}pct-{start.split()[-1]}", extra)
        for fraction in FRACTIONS for start, extra in STARTS.items()}


def command(fraction: float, folder: str, extra: str) -> list[str]:
    return ["fslearn", "train", "protonet", "--labelled-classes", f"{fraction:g}",
            *shlex.split(COMMON), *shlex.split(extra), "--out", folder]


def _evaluate(method, dataset) -> list[dict]:
    from fslearn.evaluation import evaluate

    rows = []
    for n_way, k_shot in SETTINGS:
        start = time.process_time()
        result = evaluate(method, dataset, n_way, k_shot, 15, EPISODES, seed=0)
        rows.append({"n_way": n_way, "k_shot": k_shot, "accuracy": result.accuracy,
                     "ci95": result.ci95, "cpu_seconds": round(time.process_time() - start, 1),
                     "per_episode": [round(a, 4) for a in result.per_episode]})
    return rows


def collect() -> dict:
    from fslearn._system import describe_hardware
    from fslearn.checkpoints import load_checkpoint
    from fslearn.data import load_omniglot

    torch.set_num_threads(1)
    test = load_omniglot("test")
    models = {}
    for label, name in (("no labels (protoclr-omniglot)", "protoclr-omniglot"),
                        ("every label (protonet-omniglot)", "protonet-omniglot")):
        method, record = load_checkpoint(name)
        models[label] = {"checkpoint": name, "fraction": 0.0 if "protoclr" in name else 1.0,
                         "weights_sha256": record["weights_sha256"],
                         "command": record["command"], "test": _evaluate(method, test)}
        print(f"evaluated {label}", file=sys.stderr, flush=True)
    for label, (fraction, folder, extra) in runs().items():
        last = ROOT / folder / "last"
        if not (last / "checkpoint.json").is_file():
            print(f"left out {label}: {folder} is not trained", file=sys.stderr)
            continue
        method, record = load_checkpoint(last)
        if record["episode"] < record["config"]["episodes"]:
            print(f"left out {label}: {folder} is unfinished", file=sys.stderr)
            continue
        models[label] = {"fraction": fraction, "command": shlex.join(command(fraction, folder,
                                                                             extra)),
                         "labelled_classes": record["data"]["labelled_classes"]["classes"],
                         "init_from": record.get("init_from"),
                         "weights_sha256": record["weights_sha256"],
                         "hardware": record["hardware"],
                         "training_seconds": record["training_seconds"],
                         "test": _evaluate(method, test)}
        print(f"evaluated {label}", file=sys.stderr, flush=True)
    return {"script": "tools/no_labels.py", "hardware": describe_hardware("cpu"),
            "torch": torch.__version__, "episodes": EPISODES, "models": models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collect", action="store_true", help="only evaluate finished runs")
    parser.add_argument("--only", default=None, metavar="TEXT",
                        help="train only the runs whose name contains TEXT")
    args = parser.parse_args()
    chosen = {label: run for label, run in runs().items()
              if args.only is None or args.only in label}
    if not chosen:
        sys.exit(f"error: --only {args.only!r} matches no run; the runs are: "
                 + "; ".join(runs()))
    if not args.collect:
        for fraction, folder, extra in chosen.values():
            subprocess.run(command(fraction, folder, extra), check=True, cwd=ROOT)
        if args.only is not None:
            return
    OUTPUT.write_text(json.dumps(collect(), indent=1) + "\n")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
