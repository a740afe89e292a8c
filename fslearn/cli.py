"""The ``fslearn`` command: train, evaluate, report and list checkpoints.

    fslearn train protonet --protocol vinyals --way 60 --shot 1 --query 5 --episodes 20000
    fslearn evaluate protonet-omniglot --way 5 --shot 1 --episodes 1000 --json
    fslearn report protonet-omniglot --write
    fslearn checkpoints
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fslearn.checkpoints import (
    CheckpointError,
    load_checkpoint,
    resolve_checkpoint,
    shipped_checkpoints,
    write_json_atomically,
)
from fslearn.data.download import DownloadError
from fslearn.data.omniglot import PROTOCOLS, DataNotFoundError, load_omniglot
from fslearn.evaluation import MIN_REPORTED_EPISODES, embed_dataset, evaluate
from fslearn.methods import METHODS, MetricMethod, build_method
from fslearn.results import PAPER_RESULTS, STANDARD_SETTINGS
from fslearn.training import TrainingConfig, train

__all__ = ["main"]


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} thread{'s' if threads != 1 else ''}"


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"fslearn: --device {name} was asked for, but PyTorch sees no CUDA "
                         f"device here; use --device cpu.")
    return torch.device(name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fslearn", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    defaults = TrainingConfig()

    tr = commands.add_parser("train", help="train a method episodically on Omniglot")
    tr.add_argument("method", choices=sorted(METHODS))
    tr.add_argument("--protocol", choices=sorted(PROTOCOLS), default="vinyals")
    tr.add_argument("--train-split", default="train",
                    help="split to train on (vinyals: train or trainval; lake: train)")
    tr.add_argument("--val-split", default=None,
                    help="split to validate on, or 'none' (default: val where the protocol "
                    "has one)")
    tr.add_argument("--image-size", type=int, default=28)
    tr.add_argument("--way", type=int, default=defaults.n_way)
    tr.add_argument("--shot", type=int, default=defaults.k_shot)
    tr.add_argument("--query", type=int, default=defaults.n_query)
    tr.add_argument("--tasks", type=int, default=defaults.tasks, help="tasks per step")
    tr.add_argument("--episodes", type=int, default=defaults.episodes)
    tr.add_argument("--lr", type=float, default=defaults.lr)
    tr.add_argument("--lr-step", type=int, default=defaults.lr_step)
    tr.add_argument("--lr-gamma", type=float, default=defaults.lr_gamma)
    tr.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    tr.add_argument("--val-every", type=int, default=defaults.val_every)
    tr.add_argument("--val-episodes", type=int, default=defaults.val_episodes)
    tr.add_argument("--val-way", type=int, default=defaults.val_way)
    tr.add_argument("--val-shot", type=int, default=None)
    tr.add_argument("--val-query", type=int, default=defaults.val_query)
    tr.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    tr.add_argument("--seed", type=int, default=defaults.seed)
    tr.add_argument("--out", type=Path, default=None,
                    help="run folder (default: runs/<method>-<protocol>-<way>w<shot>s-seed<seed>)")
    tr.add_argument("--no-resume", action="store_true",
                    help="start over even if the run folder holds a resumable state")
    tr.add_argument("--data-root", type=Path, default=None)
    tr.add_argument("--device", default="auto")
    tr.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    tr.add_argument("--no-progress", action="store_true")

    ev = commands.add_parser("evaluate", help="accuracy with its 95%% CI over test episodes")
    ev.add_argument("checkpoint", help="checkpoint folder, run folder, or shipped name")
    _episode_args(ev)
    ev.add_argument("--way", type=int, required=True)
    ev.add_argument("--shot", type=int, required=True)
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    rp = commands.add_parser(
        "report", help="evaluate the four standard Omniglot settings beside the paper's figures")
    rp.add_argument("checkpoint")
    _episode_args(rp)
    rp.add_argument("--write", action="store_true",
                    help="store the figures as results.json in the checkpoint folder")
    rp.add_argument("--json", action="store_true")

    ls = commands.add_parser("checkpoints", help="list the shipped checkpoints")
    ls.add_argument("--json", action="store_true")
    return parser


def _episode_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--episodes", type=int, default=1000)
    sub.add_argument("--query", type=int, default=15, help="queries per class")
    sub.add_argument("--protocol", choices=sorted(PROTOCOLS), default=None,
                     help="default: the checkpoint's")
    sub.add_argument("--split", default="test")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--data-root", type=Path, default=None)
    sub.add_argument("--device", default="auto")
    sub.add_argument("--progress", action="store_true")


def _train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    if args.val_split is None:
        val_split = "val" if "val" in PROTOCOLS[args.protocol] else None
    else:
        val_split = None if args.val_split.lower() == "none" else args.val_split
    if args.train_split == "trainval" and val_split == "val":
        raise ValueError("The val classes are part of trainval, so validating on them would "
                         "pick the checkpoint on training classes: add --val-split none.")
    config = TrainingConfig(
        n_way=args.way, k_shot=args.shot, n_query=args.query, tasks=args.tasks,
        episodes=args.episodes, lr=args.lr, lr_step=args.lr_step, lr_gamma=args.lr_gamma,
        weight_decay=args.weight_decay, val_every=args.val_every if val_split else 0,
        val_episodes=args.val_episodes, val_way=args.val_way, val_shot=args.val_shot,
        val_query=args.val_query, checkpoint_every=args.checkpoint_every, seed=args.seed,
    )
    out = args.out or Path("runs") / (
        f"{args.method}-{args.protocol}-{args.way}w{args.shot}s-seed{args.seed}")
    train_data = load_omniglot(args.train_split, args.protocol, args.data_root, args.image_size)
    val_data = (load_omniglot(val_split, args.protocol, args.data_root, args.image_size)
                if val_split else None)
    torch.manual_seed(config.seed)
    method = build_method(args.method, in_channels=train_data.image_shape[0])
    record = {
        "command": shlex.join(["fslearn", *argv]),
        "data": {"dataset": "omniglot", "protocol": args.protocol,
                 "train_split": args.train_split, "val_split": val_split,
                 "image_size": args.image_size},
        "hardware": _hardware(device),
    }
    print(f"Training {args.method} on {train_data.name} ({train_data.num_classes} classes), "
          f"{config.n_way}-way {config.k_shot}-shot, {config.episodes} episodes, into {out}",
          file=sys.stderr)
    try:
        result = train(method, train_data, config, out, val_data, resume=not args.no_resume,
                       device=device, progress=not args.no_progress, record=record)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command again to resume from the last saved state "
              f"in {out / 'last'} (saved every {config.checkpoint_every} episodes).",
              file=sys.stderr)
        return 130
    best = (f", best validation accuracy {100 * result.best_val_accuracy:.2f}%"
            if result.best_val_accuracy is not None else "")
    print(f"Done: {result.episodes} episodes in {result.training_seconds:.0f} s{best}. "
          f"Best checkpoint: {result.best}")
    return 0


def _load_for_eval(args: argparse.Namespace):
    device = _device(args.device)
    method, record = load_checkpoint(args.checkpoint, device)
    data = record.get("data", {})
    protocol = args.protocol or data.get("protocol", "vinyals")
    dataset = load_omniglot(args.split, protocol, args.data_root, data.get("image_size", 28))
    return method, dataset, device


def _check_episodes(episodes: int) -> None:
    if episodes < MIN_REPORTED_EPISODES:
        print(f"Note: {episodes} episodes; published figures use at least "
              f"{MIN_REPORTED_EPISODES}.", file=sys.stderr)


def _evaluate(args: argparse.Namespace) -> int:
    _check_episodes(args.episodes)
    method, dataset, device = _load_for_eval(args)
    result = evaluate(method, dataset, args.way, args.shot, args.query, args.episodes,
                      seed=args.seed, device=device, progress=args.progress)
    if args.json:
        print(json.dumps({"checkpoint": str(resolve_checkpoint(args.checkpoint)),
                          **result.to_dict()}))
    else:
        print(result)
    return 0


def _report(args: argparse.Namespace, argv: Sequence[str]) -> int:
    _check_episodes(args.episodes)
    method, dataset, device = _load_for_eval(args)
    folder = resolve_checkpoint(args.checkpoint)
    paper = PAPER_RESULTS.get(method.name, {})
    rows: list[dict[str, Any]] = []
    embeddings = (embed_dataset(method, dataset, device)
                  if isinstance(method, MetricMethod) else None)
    for n_way, k_shot in STANDARD_SETTINGS:
        result = evaluate(method, dataset, n_way, k_shot, args.query, args.episodes,
                          seed=args.seed, device=device, embeddings=embeddings,
                          progress=args.progress)
        rows.append({**result.to_dict(), "paper_accuracy": paper.get((n_way, k_shot))})
    report = {
        "checkpoint": folder.name,
        "command": shlex.join(["fslearn", *argv]),
        "paper": PAPER_RESULTS.get("citations", {}).get(method.name),
        "hardware": _hardware(device),
        "results": rows,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{'setting':<16}{'fslearn':>22}{'paper':>10}")
        for row in rows:
            ours = f"{100 * row['accuracy']:.2f} +/- {100 * row['ci95']:.2f}"
            theirs = "" if row["paper_accuracy"] is None else f"{100 * row['paper_accuracy']:.1f}"
            print(f"{row['n_way']}-way {row['k_shot']}-shot{'':<4}{ours:>22}{theirs:>10}")
    if args.write:
        write_json_atomically(folder / "results.json", report)
        print(f"Wrote {folder / 'results.json'}", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    shipped = shipped_checkpoints()
    listing = []
    for name, folder in shipped.items():
        record = json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))
        results_file = folder / "results.json"
        results = (json.loads(results_file.read_text(encoding="utf-8"))["results"]
                   if results_file.is_file() else [])
        listing.append({"name": name, "method": record["method"], "path": str(folder),
                        "data": record.get("data"), "command": record.get("command"),
                        "results": [{k: r[k] for k in ("n_way", "k_shot", "accuracy", "ci95")}
                                    for r in results]})
    if args.json:
        print(json.dumps(listing))
        return 0
    if not listing:
        print("No shipped checkpoints.")
    for item in listing:
        figures = ", ".join(f"{r['n_way']}w{r['k_shot']}s {100 * r['accuracy']:.2f}%"
                            for r in item["results"])
        print(f"{item['name']}: {item['method']} on {item['data']['dataset']} "
              f"({item['data']['protocol']}) {figures}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fslearn`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args, argv)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "report":
            return _report(args, argv)
        return _list(args)
    except (CheckpointError, DataNotFoundError, DownloadError, ValueError) as error:
        print(f"fslearn {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
