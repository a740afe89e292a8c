"""MAML's speed and memory: the per-task loop engine against the vmap engine.

    python benchmarks/maml.py                      # CPU: both engines, 1 and 5 steps, both orders
    python benchmarks/maml.py --device cuda        # the same on a GPU
    python benchmarks/maml.py --engines loop --steps 1 --orders second --outer-steps 2
    python benchmarks/maml.py --model sinusoid --tasks 25 --shot 5 --query 5 --steps 1 \
        --orders second --outer-steps 200     # the sinusoid MLP (Finn et al.'s recipe)

Each configuration (engine, inner steps, second or first order) runs in a fresh process, so that
its peak memory is its own: the peak resident set size on a CPU, the peak allocated CUDA memory
on a GPU. A configuration is one outer training step of a Conv4 MAML (5-way 1-shot, 15 queries
per class, meta-batch 32 by default) on Omniglot training episodes, timed after one warm-up step;
the figure is tasks per second (meta-batch size x outer steps / seconds). These are
measurements, not tests: nothing here passes or fails. With --json FILE the figures are written
as JSON, with the device and the command that made them.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from _common import run_child, write_results  # benchmarks/_common.py, beside this script

from fslearn._system import describe_hardware


def measure_one(args: argparse.Namespace) -> dict[str, object]:
    """One configuration, in this process: tasks per second and peak memory."""
    from fslearn.data import EpisodeSampler, load_omniglot
    from fslearn.data.sinusoid import SinusoidRegression
    from fslearn.methods import MAML

    device = torch.device(args.device)
    torch.manual_seed(0)
    first_order = args.one_order == "first"
    if args.model == "sinusoid":
        method = MAML(n_way=1, inner_steps=args.one_steps, inner_lr=0.01, hidden_channels=40,
                      first_order=first_order, engine=args.one_engine, task="regression")
        sampler = SinusoidRegression().sampler(args.shot, args.query, args.tasks, seed=0)
    else:
        method = MAML(n_way=args.way, inner_steps=args.one_steps, inner_lr=0.4,
                      first_order=first_order, engine=args.one_engine)
        sampler = EpisodeSampler(load_omniglot("train"), args.way, args.shot, args.query,
                                 tasks=args.tasks, seed=0)
    method.to(device)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)

    def outer_step(index: int) -> None:
        episode = sampler.episode(index).to(device)
        optimizer.zero_grad(set_to_none=True)
        method.training_step(episode)
        optimizer.step()

    outer_step(0)  # warm-up: allocations, kernel selection
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for index in range(1, args.outer_steps + 1):
        outer_step(index)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        memory = "peak allocated CUDA memory"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        memory = "peak resident set size"
    return {"engine": args.one_engine, "inner_steps": args.one_steps, "order": args.one_order,
            "tasks_per_second": round(args.tasks * args.outer_steps / seconds, 2),
            "peak_memory_gib": round(peak, 2), "memory": memory,
            "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--model", choices=("conv4", "sinusoid"), default="conv4",
                        help="conv4 on Omniglot episodes, or the sinusoid MLP (default: conv4)")
    parser.add_argument("--engines", default="loop,vmap", help="default: loop,vmap")
    parser.add_argument("--steps", default="1,5", help="inner steps to measure (default: 1,5)")
    parser.add_argument("--orders", default="second,first", help="default: second,first")
    parser.add_argument("--way", type=int, default=5, help="default: 5")
    parser.add_argument("--shot", type=int, default=1, help="default: 1")
    parser.add_argument("--query", type=int, default=15, help="queries per class (default: 15)")
    parser.add_argument("--tasks", type=int, default=32, help="meta-batch size (default: 32)")
    parser.add_argument("--outer-steps", type=int, default=3,
                        help="timed outer steps per configuration (default: 3)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--one-engine", help=argparse.SUPPRESS)
    parser.add_argument("--one-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-order", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one_engine:  # a child process: one configuration, one JSON line
        print(json.dumps(measure_one(args)))
        return
    common = ["--device", args.device, "--model", args.model, "--way", str(args.way),
              "--shot", str(args.shot), "--query", str(args.query), "--tasks", str(args.tasks),
              "--outer-steps", str(args.outer_steps)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    device = describe_hardware(args.device)
    what = ("sinusoid MLP, " + f"{args.shot} support and {args.query} query points"
            if args.model == "sinusoid" else
            f"Conv4, {args.way}-way {args.shot}-shot, {args.query} queries per class")
    print(f"# MAML, {what}, meta-batch {args.tasks}; {device}; torch {torch.__version__}")
    print(f"{'engine':<8}{'steps':>6}{'order':>8}{'tasks/s':>10}{'peak GiB':>10}")
    rows = []
    for steps in args.steps.split(","):
        for order in args.orders.split(","):
            for engine in args.engines.split(","):
                command = [sys.executable, __file__, *common, "--one-engine", engine,
                           "--one-steps", steps, "--one-order", order]
                row, error = run_child(command, {"engine": engine, "inner_steps": int(steps),
                                                 "order": order})
                if error:
                    print(f"{engine:<8}{steps:>6}{order:>8}  failed: {error}")
                else:
                    print(f"{engine:<8}{steps:>6}{order:>8}{row['tasks_per_second']:>10.2f}"
                          f"{row['peak_memory_gib']:>10.2f}")
                rows.append(row)
    if args.json:
        write_results(args.json, "benchmarks/maml.py", device, rows)

if __name__ == "__main__":
    main()
