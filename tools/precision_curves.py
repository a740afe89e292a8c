"""float32 against bfloat16 on the same training runs: validation curves, CPU time, speed-up.

    python tools/precision_curves.py               # train the four runs (resumable), then collect
    python tools/precision_curves.py --collect     # only collect finished runs

Two workloads, each trained twice by `fslearn train` at one thread with the same seed (so the
same initial weights and the same episodes), once with `--precision float32` and once with
`--precision bf16`: ProtoNet (60-way 1-shot, 5 queries, 1,500 episodes, validated every 250 on
600 5-way 1-shot episodes) and second-order MAML (5-way 1-shot, 32 tasks per outer step, 150
outer steps, validated every 50 on 300 episodes). Validation runs in the run's own precision.
The test classes are never used. The runs go into runs/precision-*; their validation curves,
commands, hardware, wall and CPU times are written to book/data/precision-curves.json, which
the page "More than one machine" reads.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "book" / "data" / "precision-curves.json"
WORKLOADS = {
    "protonet": "protonet --way 60 --shot 1 --query 5 --episodes 1500 --val-every 250 "
                "--val-episodes 600 --checkpoint-every 250",
    "maml": "maml --way 5 --shot 1 --query 1 --tasks 32 --inner-steps 1 --inner-lr 0.4 "
            "--test-inner-steps 3 --episodes 150 --lr 1e-3 --lr-gamma 1 --val-every 50 "
            "--val-episodes 300 --checkpoint-every 50",
}
PRECISIONS = ("float32", "bf16")
COMMON = "--seed 0 --threads 1 --no-progress"


def folder(workload: str, precision: str) -> str:
    return f"runs/precision-{workload}-{precision}"


def command(workload: str, precision: str) -> list[str]:
    """The `fslearn train` command of one run."""
    return ["fslearn", "train", *shlex.split(WORKLOADS[workload]), *shlex.split(COMMON),
            "--precision", precision, "--out", folder(workload, precision)]


def cpu_seconds_file(workload: str, precision: str) -> Path:
    return ROOT / folder(workload, precision) / "cpu_seconds.json"


def train_all() -> None:
    """Each run not finished yet, with the CPU time it took (user + system, this process's
    children: what the run cost, whatever else ran on the machine)."""
    for workload in WORKLOADS:
        for precision in PRECISIONS:
            if cpu_seconds_file(workload, precision).is_file():
                continue
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(command(workload, precision), check=True, cwd=ROOT)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            cpu_seconds_file(workload, precision).write_text(json.dumps({"cpu_seconds": cpu}))


def collect() -> dict:
    """Each finished run's validation curve and provenance, and each workload's speed-up."""
    runs: dict = {}
    for workload in WORKLOADS:
        for precision in PRECISIONS:
            path = ROOT / folder(workload, precision) / "last" / "checkpoint.json"
            if not path.is_file() or not cpu_seconds_file(workload, precision).is_file():
                sys.exit(f"error: {folder(workload, precision)} is not finished: train it "
                         f"first (python tools/precision_curves.py)")
            record = json.loads(path.read_text())
            state = record["training_state"]
            runs.setdefault(workload, {})[precision] = {
                "command": shlex.join(command(workload, precision)),
                "hardware": record["hardware"],
                "precision": record["precision"],
                "training_seconds": state["training_seconds"],
                "cpu_seconds": round(json.loads(
                    cpu_seconds_file(workload, precision).read_text())["cpu_seconds"], 1),
                "steps": state["episode"],
                "validation": [{"episode": h["episode"], "accuracy": h["val_accuracy"],
                                "ci95": h["val_ci95"]}
                               for h in state["history"] if "val_accuracy" in h],
            }
        pair = runs[workload]
        pair["cpu_speedup"] = round(pair["float32"]["cpu_seconds"] / pair["bf16"]["cpu_seconds"],
                                    2)
    return {"script": "tools/precision_curves.py", "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collect", action="store_true", help="only collect finished runs")
    args = parser.parse_args()
    if not args.collect:
        train_all()
    OUTPUT.write_text(json.dumps(collect(), indent=1) + "\n")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
