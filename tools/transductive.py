"""Chapter 7.2's transductive experiments: what using the query set itself changes.

    python tools/transductive.py            # everything
    python tools/transductive.py --resume   # only what is missing, or whose checkpoint changed
    python tools/transductive.py --resume --only maml-omniglot-5way   # those groups only

1. Prototypes refined by the queries: the shipped `protonet-omniglot`'s weights in a
   semi-supervised Prototypical Network (one soft k-means step) whose unlabelled images are the
   episode's own queries (`SemiSupervisedPrototypes(...).transductive = True`), against the
   Prototypical Network itself, on the same test episodes, in the four standard settings.
2. Batch norm over the query set: the shipped `maml-omniglot-5way` and `reptile-omniglot-5way`
   tested as their reference code does (transductive: the queries are normalised with the
   statistics of the whole query set) and with each query scored beside the support images alone
   (`transductive = False`, Nichol et al.'s non-transductive setting), 5-way 1- and 5-shot.
   The shipped `metalstm-omniglot-5way` transductive and its authors' way (chapter 5): each
   query normalised with running averages of the support mini-batches' statistics
   (`running_batch_norm = True`).

Every figure is over the same 1,000 test episodes (15 queries per class), at one thread; the
per-episode accuracies are kept so the chapter can give paired differences. Results, hardware
and CPU times go to book/data/transductive.json, each group with the weights it measured: after
a checkpoint is retrained and shipped, `--resume` measures its rows again and keeps the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "book" / "data" / "transductive.json"
EPISODES = 1000
BATCH_NORM_MODELS = ("reptile-omniglot-5way", "maml-omniglot-5way", "metalstm-omniglot-5way")
#: the Meta-LSTM's authors' way to test (``running_batch_norm``)
RUNNING = "running averages of the support set"
BATCH_NORM_KINDS = {name: ("transductive", RUNNING) if name.startswith("metalstm")
                    else ("transductive", "non-transductive") for name in BATCH_NORM_MODELS}
#: every group the script measures, in order
GROUP_LABELS = ("protonet-omniglot", "protonet-omniglot, queries refine the prototypes",
                *(f"{name}, {kind}" for name in BATCH_NORM_MODELS
                  for kind in BATCH_NORM_KINDS[name]))


def _row(method, dataset, n_way: int, k_shot: int) -> dict:
    from fslearn.evaluation import evaluate

    start = time.process_time()
    result = evaluate(method, dataset, n_way, k_shot, 15, EPISODES, seed=0)
    return {"n_way": n_way, "k_shot": k_shot, "accuracy": result.accuracy, "ci95": result.ci95,
            "cpu_seconds": round(time.process_time() - start, 1),
            "per_episode": [round(a, 4) for a in result.per_episode]}


def _measure(name: str, known: dict, measure) -> dict:
    """``known[name]`` when it was measured with the shipped ``name``'s current weights, else
    ``{"weights_sha256": ..., "hardware": ..., "rows": measure(method)}`` measured now."""
    from fslearn._system import describe_hardware
    from fslearn.checkpoints import load_checkpoint

    method, record = load_checkpoint(name.split(",")[0])
    if known.get(name, {}).get("weights_sha256") == record["weights_sha256"]:
        return known[name]
    rows = measure(method)
    print(f"{name} done", file=sys.stderr, flush=True)
    return {"weights_sha256": record["weights_sha256"], "hardware": describe_hardware("cpu"),
            "torch": torch.__version__, "rows": rows}


def _save(section: str, label: str, entry: dict) -> None:
    """Write one group into the output at once, keeping every other group the file holds
    (so an interrupted run keeps what it measured, and runs with different ``--only`` can
    share the file)."""
    from fslearn.checkpoints import write_json_atomically

    saved = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {}
    saved.update({"script": "tools/transductive.py", "episodes": EPISODES, "seed": 0})
    saved.setdefault("prototypes", {})
    saved.setdefault("batch_norm", {})
    saved[section][label] = entry
    write_json_atomically(OUTPUT, saved, indent=1)


def main() -> None:
    from fslearn.data import load_omniglot
    from fslearn.methods import SemiSupervisedPrototypes
    from fslearn.results import STANDARD_SETTINGS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows measured with the checkpoints shipped now")
    parser.add_argument("--only", default=None, metavar="TEXT",
                        help="measure only the groups whose label contains TEXT (e.g. "
                        "maml-omniglot-5way); the file keeps the others")
    args = parser.parse_args()
    if args.only is not None and not any(args.only in label for label in GROUP_LABELS):
        parser.error(f"--only {args.only!r} matches no group; the groups are: "
                     f"{'; '.join(GROUP_LABELS)}")
    torch.set_num_threads(1)
    test = load_omniglot("test")
    known: dict = {}
    if args.resume and OUTPUT.exists():
        old = json.loads(OUTPUT.read_text())
        known = {**old.get("prototypes", {}), **old.get("batch_norm", {})}

    def refined_by_queries(protonet) -> list[dict]:
        refined = SemiSupervisedPrototypes(refinement="soft")
        refined.load_state_dict(protonet.state_dict())  # the same embedding, nothing trained
        refined.transductive = True
        return [_row(refined, test, *s) for s in STANDARD_SETTINGS]

    def scored(kind: str) -> Callable:
        def measure(method) -> list[dict]:
            method.transductive = kind == "transductive"
            if kind == RUNNING:
                method.running_batch_norm = True
            return [_row(method, test, 5, k) for k in (1, 5)]
        return measure

    groups = [("prototypes", "protonet-omniglot",
               lambda method: [_row(method, test, *s) for s in STANDARD_SETTINGS]),
              ("prototypes", "protonet-omniglot, queries refine the prototypes",
               refined_by_queries)]
    for name in BATCH_NORM_MODELS:
        groups += [("batch_norm", f"{name}, {kind}", scored(kind))
                   for kind in BATCH_NORM_KINDS[name]]
    assert [label for _, label, _ in groups] == list(GROUP_LABELS)
    for section, label, measure in groups:
        if args.only is None or args.only in label:
            _save(section, label, _measure(label, known, measure))
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
