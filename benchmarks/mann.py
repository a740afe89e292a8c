"""Training speed of the memory-augmented network and its LSTM baseline, by thread count.

    python benchmarks/mann.py                          # MANN and LSTM, 1 and 2 threads
    python benchmarks/mann.py --threads 1 --steps 3    # a smoke test
    python benchmarks/mann.py --device cuda --threads 1 --json results.json

A training step is what the note on memory networks timed: one batch of 16 sequence episodes
(5-way, 10 drawings per class, 50 steps, 20x20 images), forward, backward and an Adam update, at
the paper's sizes (200 LSTM units, memory 128 x 40, 4 heads). The episodes are sampled before the
clock starts (the sampler's own time per batch is reported apart), and one warm-up step runs
first. Each (model, threads) pair runs in a fresh process, because ``torch.set_num_threads``
is per process and thread pools, once started, do not shrink cleanly. These are measurements,
not tests: nothing here passes or fails. With --json FILE the figures are written as JSON, with
the device and the command that made them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from _common import run_child, write_results  # benchmarks/_common.py, beside this script

from fslearn._system import describe_hardware


def measure_one(args: argparse.Namespace) -> dict[str, object]:
    """One (model, threads) pair, in this process: seconds per training step."""
    from fslearn.data import load_omniglot
    from fslearn.data.sequences import SequenceSampler
    from fslearn.methods.mann import MANN, LSTMBaseline

    device = torch.device(args.device)
    torch.manual_seed(0)
    sampler = SequenceSampler(load_omniglot("train"), n_way=args.way, per_class=args.per_class,
                              batch=args.batch, seed=0)
    start = time.perf_counter()
    episodes = [sampler.episode(i).to(device) for i in range(args.steps + 1)]
    sample_seconds = (time.perf_counter() - start) / len(episodes)
    first = episodes[0]
    if args.one_model == "mann":
        model: torch.nn.Module = MANN(first.features, first.num_outputs)
    else:
        model = LSTMBaseline(first.features, first.num_outputs)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step(episode) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.loss(episode)
        loss.backward()
        optimizer.step()

    train_step(episodes[0])  # warm-up: allocations, kernel selection
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for episode in episodes[1:]:
        train_step(episode)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    return {"model": args.one_model, "threads": torch.get_num_threads(),
            "ms_per_step": round(1000 * seconds, 1),
            "steps_per_second": round(1 / seconds, 2),
            "steps_per_hour": round(3600 / seconds),
            "sampler_ms_per_batch": round(1000 * sample_seconds, 1),
            "timed_steps": args.steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--models", default="mann,lstm", help="default: mann,lstm")
    parser.add_argument("--threads", default="1,2",
                        help="PyTorch CPU thread counts to compare (default: 1,2)")
    parser.add_argument("--steps", type=int, default=10,
                        help="timed training steps per configuration (default: 10)")
    parser.add_argument("--batch", type=int, default=16, help="episodes per batch (default: 16)")
    parser.add_argument("--way", type=int, default=5, help="default: 5")
    parser.add_argument("--per-class", type=int, default=10,
                        help="drawings of each class per episode (default: 10)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--one-model", help=argparse.SUPPRESS)
    parser.add_argument("--one-threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_model:  # a child process: one configuration, one JSON line
        torch.set_num_threads(args.one_threads)
        print(json.dumps(measure_one(args)))
        return
    common = ["--device", args.device, "--steps", str(args.steps), "--batch", str(args.batch),
              "--way", str(args.way), "--per-class", str(args.per_class)]
    device = describe_hardware(args.device)
    print(f"# MANN and LSTM training steps, batch {args.batch}, {args.way}-way x "
          f"{args.per_class} drawings, Adam; {device}; torch {torch.__version__}")
    print(f"{'model':<6}{'threads':>8}{'ms/step':>10}{'steps/s':>9}{'steps/h':>9}"
          f"{'sampler ms':>12}")
    rows = []
    for model in args.models.split(","):
        for threads in args.threads.split(","):
            command = [sys.executable, __file__, *common, "--one-model", model,
                       "--one-threads", threads]
            row, error = run_child(command, {"model": model, "threads": int(threads)})
            if error:
                print(f"{model:<6}{threads:>8}  failed: {error}")
            else:
                print(f"{model:<6}{threads:>8}{row['ms_per_step']:>10.1f}"
                      f"{row['steps_per_second']:>9.2f}{row['steps_per_hour']:>9}"
                      f"{row['sampler_ms_per_batch']:>12.1f}")
            rows.append(row)
    if args.json:
        write_results(args.json, "benchmarks/mann.py", device, rows)

if __name__ == "__main__":
    main()
