"""Section 7.2's semi-supervised figures: every semiproto run of Ren et al.'s protocol on their
test episodes, the same episodes for all, with each episode's accuracy for paired comparisons.

    python tools/semi_supervised.py             # every runs/semiproto-omniglot-* run
    python tools/semi_supervised.py --resume    # only the runs not yet measured (or retrained)
    python tools/semi_supervised.py --episodes 20   # a quick look; writes nothing

The runs are the seven of section 7.2 (supervised; soft, cluster and masked refinements, with
and without distractors), each trained by the command recorded in its checkpoint and copied
into the output; the final weights are kept, as the authors keep them. Each is tested as
`fslearn report` tests it, through the method's own test episodes (`extra_test_settings`: 1
support image, 14 queries and 5 unlabelled images per class, without and with 5 distractor
classes; a run trained without unlabelled images also without any), 1000 episodes, seed 0, one
thread, on Vinyals et al.'s test classes. Results, each run's command, training time and
hardware go to book/data/semi-supervised.json; a run is measured again when its weights change.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fslearn._system import describe_hardware  # noqa: E402
from fslearn.checkpoints import load_checkpoint  # noqa: E402
from fslearn.data import load_omniglot  # noqa: E402
from fslearn.evaluation.classification import extra_report_rows  # noqa: E402
from fslearn.training_config import config_from_record  # noqa: E402

OUTPUT = ROOT / "book" / "data" / "semi-supervised.json"
RUNS = ROOT / "runs"
PREFIX = "semiproto-omniglot-"


def measure(folder: Path, test, episodes: int) -> dict:
    """One run's report rows, each with its episodes' accuracies (4 decimals)."""
    method, record = load_checkpoint(folder / "best")
    config = config_from_record(record["config"])
    start = time.process_time()
    rows = extra_report_rows(method, test, method.extra_test_settings(config), with_paper=True,
                             episodes=episodes, seed=0, per_episode=True)
    for row in rows:
        row["per_episode"] = [round(a, 4) for a in row["per_episode"]]
    return {"run": folder.name, "refinement": method.refinement,
            "weights_sha256": record["weights_sha256"], "command": record["command"],
            "sampler": record["config"]["sampler"], "episodes_trained": record["episode"],
            "training_seconds": record.get("training_seconds"), "hardware": record["hardware"],
            "test_cpu_seconds": round(time.process_time() - start, 1), "results": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--resume", action="store_true",
                        help="keep the figures of runs already measured with the same weights")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1, not {args.episodes}")
    torch.set_num_threads(1)
    test = load_omniglot("test", "vinyals")
    folders = []
    for folder in sorted(RUNS.glob(PREFIX + "*")):
        record = folder / "best" / "checkpoint.json"
        if record.is_file():
            saved = json.loads(record.read_text())
            if saved["episode"] >= saved["config"]["episodes"]:
                folders.append(folder)
                continue
        if folder.is_dir():
            print(f"{folder.name}: not finished, left out", flush=True)
    if not folders:
        sys.exit(f"no finished {PREFIX}* run under {RUNS}: train them first (the commands "
                 "are in book/data/semi-supervised.json)")
    known = {}
    if args.resume and OUTPUT.exists():
        known = {run["run"]: run for run in json.loads(OUTPUT.read_text())["runs"]}
    runs = []
    for folder in folders:
        sha = json.loads((folder / "best" / "checkpoint.json").read_text())["weights_sha256"]
        old = known.get(folder.name)
        runs.append(old if old and old["weights_sha256"] == sha else
                    measure(folder, test, args.episodes))
        print(runs[-1]["run"], "  ".join(
            f"{r.get('unlabelled', 0)}u/{r.get('distractors', 0)}d {100 * r['accuracy']:.2f}"
            for r in runs[-1]["results"]), flush=True)
    if args.episodes >= 1000:
        OUTPUT.write_text(json.dumps({
            "command": "python tools/semi_supervised.py", "episodes": args.episodes, "seed": 0,
            "hardware": describe_hardware("cpu"), "torch": torch.__version__, "runs": runs},
            separators=(",", ":")) + "\n")
        print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
