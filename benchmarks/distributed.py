"""Training on 1 and 2 processes (gloo, CPU): steps per second of each method's training loop,
and the time of the one all-reduce of its gradients that a step of a distributed run adds.

    OMP_NUM_THREADS=1 python benchmarks/distributed.py [--steps 6] [--repeat 3] [--malloc keep]
        [--out FILE]

Each process runs one thread. Images are random 28x28 (Omniglot's size): the compute is
Omniglot's, without loading it. Steps per second are timed from the second step to the last of
a ``fslearn.train`` run (its one checkpoint at the end excluded), the all-reduce as the median of
20 calls of :meth:`fslearn.distributed.World.average_gradients` on 2 processes. The 2-process
and the 1-process passes alternate ``--repeat`` times and each figure is the best of its
repeats (as ``timeit`` advises): on a machine shared with other work, the fastest repeat is
the one least slowed by it.

By default every process first keeps the memory it frees (``--malloc keep``: glibc's
``mallopt(M_MMAP_MAX, 0)`` and a 1 GiB ``M_TRIM_THRESHOLD``, as ``fslearn train`` does first:
``fslearn._system.keep_freed_memory``). With glibc's defaults (``--malloc default``) large
freed activations go back to the operating system and are faulted in again on the next step,
how often depending on each process's history of allocations (glibc's mmap threshold adapts to
the blocks it has freed), so a 1- and a 2-process figure can differ by more than the split of
the work (``results/distributed-malloc-default.json``: MAML's one-process steps fault far more
than its half steps). Each row also records the minor page faults and the user and system CPU
seconds per step (``resource.getrusage`` over the timed steps; on 2 processes, rank 0's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fslearn._system import describe_hardware, keep_freed_memory
from fslearn.data.dataset import FewShotDataset
from fslearn.data.sequences import SequenceTasks
from fslearn.distributed import world
from fslearn.methods import build_method
from fslearn.training import TrainingConfig, train

#: method -> (constructor arguments, training config of one step); each step's work splits in 2
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "protonet": ({}, dict(n_way=5, k_shot=1, n_query=15, batch_size=4)),
    "maml": (dict(n_way=5, engine="loop"), dict(n_way=5, k_shot=1, n_query=15, batch_size=4)),
    "reptile": (dict(n_way=5), dict(n_way=5, k_shot=1, n_query=1, batch_size=4)),
    "baseline": (dict(num_classes=100), dict(batch_size=16)),
    "mann": ({}, dict(n_way=5, per_class=10, batch_size=16)),
}


def _data(name: str) -> FewShotDataset | SequenceTasks:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (100 * 20, 1, 28, 28), generator=generator,
                           dtype=torch.uint8)
    data = FewShotDataset(images, torch.arange(100).repeat_interleave(20),
                          [f"c{i}" for i in range(100)], "noise")
    return SequenceTasks(data, image_size=20) if name == "mann" else data


def _method(name: str, data: Any) -> Any:
    kwargs = CASES[name][0]
    if isinstance(data, SequenceTasks):
        inputs, outputs = data.model_shape(5, "one_hot")
        kwargs = {**kwargs, "input_features": inputs, "num_outputs": outputs}
    torch.manual_seed(0)
    return build_method(name, **kwargs)


def timed_steps(name: str, steps: int, folder: Path) -> dict[str, float]:
    """Steps per second, and minor page faults and user and system CPU seconds per step, from
    the end of the first step to the end of the last."""
    data = _data(name)
    config = TrainingConfig(episodes=steps, val_every=0, checkpoint_every=steps, seed=0,
                            **CASES[name][1])
    marks: list[tuple[float, int, float, float]] = []

    def mark(done: int, loss: float) -> None:
        use = resource.getrusage(resource.RUSAGE_SELF)
        marks.append((time.perf_counter(), use.ru_minflt, use.ru_utime, use.ru_stime))

    train(_method(name, data), data, config, folder, progress=False, device="cpu", callback=mark)
    n, first, last = len(marks) - 1, marks[0], marks[-1]
    return {"steps_per_s": n / (last[0] - first[0]), "faults_per_step": (last[1] - first[1]) / n,
            "user_s_per_step": (last[2] - first[2]) / n, "sys_s_per_step": (last[3] - first[3]) / n}


def _suffixed(figures: dict[str, float], processes: int) -> dict[str, float]:
    return {f"{key}_{processes}": value for key, value in figures.items()}


def all_reduce_seconds(name: str) -> float:
    method = _method(name, _data(name))
    parameters = [p for p in method.parameters() if p.requires_grad]
    for p in parameters:
        p.grad = torch.randn_like(p)
    ranks, seconds = world(), []
    for _ in range(20):
        ranks.barrier()
        start = time.perf_counter()
        ranks.average_gradients(parameters)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _rank(rank: int, port: int, steps: int, out: str, keep: bool) -> None:
    if keep:
        keep_freed_memory()
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in CASES:
            reduce = all_reduce_seconds(name)
            rows[name] = {"all_reduce_ms": 1000 * reduce,
                          **_suffixed(timed_steps(name, steps, Path(folder) / name), 2),
                          "gradient_numbers": sum(p.numel() for p in
                                                  _method(name, _data(name)).parameters())}
    if rank == 0:
        Path(out).write_text(json.dumps(rows))
    dist.destroy_process_group()


def _one_pass(steps: int, keep: bool) -> dict[str, dict[str, Any]]:
    """Every method on 2 processes, then on 1: its row of figures."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        two = Path(folder) / "two.json"
        mp.spawn(_rank, args=(port, steps, str(two), keep), nprocs=2, join=True)
        rows = json.loads(two.read_text())
        os.environ.pop("WORLD_SIZE", None)
        for name in CASES:
            rows[name].update(_suffixed(timed_steps(name, steps, Path(folder) / name), 1))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3,
                        help="alternate the 2- and 1-process passes this many times; keep the "
                             "best of each")
    parser.add_argument("--malloc", choices=("keep", "default"), default="keep",
                        help="keep: every process keeps the memory it frees (as fslearn train "
                             "does); default: glibc's defaults")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep = args.malloc == "keep" and keep_freed_memory()
    load_at_start = os.getloadavg()[0]
    rows: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeat):
        for name, row in _one_pass(args.steps, keep).items():
            best = rows.setdefault(name, row)
            for processes in (1, 2):  # the step figures of the fastest repeat
                if row[f"steps_per_s_{processes}"] > best[f"steps_per_s_{processes}"]:
                    best.update({key: value for key, value in row.items()
                                 if key.endswith(f"_{processes}")})
            best["all_reduce_ms"] = min(best["all_reduce_ms"], row["all_reduce_ms"])
    print(f"{'method':10} {'numbers':>9} {'all-reduce ms':>14} {'steps/s 1 proc':>15} "
          f"{'steps/s 2 proc':>15} {'speed-up':>9} {'faults/step 1, 2':>18}")
    for name, row in rows.items():
        print(f"{name:10} {row['gradient_numbers']:9d} {row['all_reduce_ms']:14.2f} "
              f"{row['steps_per_s_1']:15.2f} {row['steps_per_s_2']:15.2f} "
              f"{row['steps_per_s_2'] / row['steps_per_s_1']:9.2f} "
              f"{row['faults_per_step_1']:9.0f}{row['faults_per_step_2']:9.0f}")
    if args.out:
        record = {"hardware": describe_hardware(torch.device("cpu")), "threads_per_process": 1,
                  "malloc": "keep" if keep else "default",
                  "load_average_1min_at_start": load_at_start,
                  "load_average_1min": os.getloadavg()[0], "steps": args.steps,
                  "repeat": args.repeat, "rows": rows}
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
