"""Where the time of a training step (or of MAML's test-time adaptation) goes: torch.profiler.

    python benchmarks/profile_steps.py                       # every workload, 1 thread
    python benchmarks/profile_steps.py --workloads maml --steps 2 --top 15

Each workload runs a few warm-up steps, then ``--steps`` profiled ones; the table lists the
operators with the most self CPU time and their share of the profiled steps' wall time. The
workloads are those of the speed issue:

* ``protonet``: ProtoNet, 60-way 1-shot 5 queries per class (360 images), Adam step;
* ``maml``: second-order MAML, 5-way 1-shot 15 queries, meta-batch 32, one inner step, the
  loop engine, Adam step;
* ``relation``: Relation Network, 5-way 1-shot 19 queries (its shipped training), clipping, Adam;
* ``mann``: MANN, a batch of 16 sequence episodes (5-way, 10 drawings per class), Adam;
* ``maml-eval``: the shipped ``maml-omniglot-20way`` adapting 10 test episodes of 20-way 1-shot
  15 queries (5 inner steps, under ``torch.no_grad()``), as ``fslearn report`` does.

These are measurements, not tests: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import torch
from _common import (  # benchmarks/_common.py, beside this script
    episodic_training_step,
    mann_training_step,
)
from torch.profiler import ProfilerActivity, profile

from fslearn._system import describe_hardware

WORKLOADS = ("protonet", "maml", "relation", "mann", "maml-eval")


def build(workload: str) -> Callable[[int], None]:
    """One step of ``workload`` as a function of the step's index."""
    torch.manual_seed(0)
    if workload == "protonet":
        from fslearn.methods import PrototypicalNetwork

        return episodic_training_step(PrototypicalNetwork(), 60, 1, 5)
    if workload == "maml":
        from fslearn.methods import MAML

        maml = MAML(n_way=5, inner_steps=1, inner_lr=0.4, engine="loop")
        return episodic_training_step(maml, 5, 1, 15, tasks=32)
    if workload == "relation":
        from fslearn.methods import RelationNetwork

        return episodic_training_step(RelationNetwork(aggregate="mean"), 5, 1, 19)
    if workload == "mann":
        return mann_training_step()
    if workload == "maml-eval":
        from fslearn.checkpoints import load_checkpoint
        from fslearn.data import EpisodeSampler, load_omniglot

        method, _ = load_checkpoint("maml-omniglot-20way")
        sampler = EpisodeSampler(load_omniglot("test"), 20, 1, 15, tasks=10, seed=0)

        def evaluation(index: int) -> None:
            with torch.no_grad():
                method(sampler.episode(index)).argmax(-1)

        return evaluation
    raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")


def profile_one(workload: str, warmup: int, steps: int, top: int, by_shape: bool) -> None:
    step = build(workload)
    for index in range(warmup):
        step(index)
    # first without the profiler: wall, user and system CPU time, and page faults per step
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for index in range(warmup, warmup + steps):
        step(index)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    print(f"\n## {workload}: {wall / steps:.3f} s per step (wall), CPU "
          f"{(after.ru_utime - before.ru_utime) / steps:.3f} s user + "
          f"{(after.ru_stime - before.ru_stime) / steps:.3f} s system, "
          f"{(after.ru_minflt - before.ru_minflt) / steps:,.0f} page faults per step")
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=by_shape) as prof:
        for index in range(warmup + steps, warmup + 2 * steps):
            step(index)
    wall = time.perf_counter() - start
    events = sorted(prof.key_averages(group_by_input_shape=by_shape),
                    key=lambda e: e.self_cpu_time_total, reverse=True)
    print(f"{steps} profiled steps: {wall / steps:.3f} s per step under the profiler")
    print(f"{'operator':<48}{'self ms/step':>14}{'% of step':>11}{'calls/step':>12}")
    shown = 0.0
    for event in events[:top]:
        shown += event.self_cpu_time_total / 1e6 / wall
        ms = event.self_cpu_time_total / 1000 / steps
        shapes = f"  {event.input_shapes}"[:90] if by_shape else ""
        print(f"{event.key[:47]:<48}{ms:>14.1f}{100 * ms / 1000 / (wall / steps):>10.1f}%"
              f"{event.count / steps:>12.0f}{shapes}")
    print(f"{'(these operators together)':<62}{100 * shown:>10.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--warmup", type=int, default=2, help="unprofiled steps first (2)")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (default: 3)")
    parser.add_argument("--top", type=int, default=12, help="operators listed (default: 12)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default: 1)")
    parser.add_argument("--by-shape", action="store_true",
                        help="one row per operator and input shapes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {describe_hardware('cpu')}; torch {torch.__version__}; "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for workload in args.workloads.split(","):
        profile_one(workload, args.warmup, args.steps, args.top, args.by_shape)


if __name__ == "__main__":
    main()
