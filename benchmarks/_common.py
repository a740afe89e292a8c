"""What the benchmark scripts share: one configuration per child process, and the JSON file.

Each configuration runs in a fresh process because ``torch.set_num_threads`` is per process and
a thread pool, once started, does not shrink cleanly; a child prints its figures as one JSON line.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch


def run_child(command: list[str], what: dict[str, object]) -> tuple[dict[str, object], str | None]:
    """Run one configuration's child process.

    Returns its JSON row and ``None``, or (when it failed) ``what`` with an ``error`` entry and
    the last line of its stderr, for the caller to print.
    """
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {**what, "error": last}, last
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def write_results(path: Path, script: str, device: str, rows: list[dict[str, object]],
                  extra: dict[str, object] | None = None) -> None:
    """Write the figures with the command that made them (as run from the repository root),
    the device, the torch version and ``extra`` (say, the machine's load while it ran)."""
    path.write_text(json.dumps({
        "command": shlex.join(["python", script, *sys.argv[1:]]),
        "device": device, "torch": torch.__version__, **(extra or {}), "results": rows},
        indent=2) + "\n")


def mann_training_step() -> Callable[[int], None]:
    """One Adam step of a MANN on batch ``index`` of 16 Omniglot sequence episodes (5-way, 10
    drawings per class, the paper's sizes): the MANN workload of the speed benchmarks."""
    from fslearn.data import load_omniglot
    from fslearn.data.sequences import SequenceSampler
    from fslearn.methods.mann import MANN

    sampler = SequenceSampler(load_omniglot("train"), n_way=5, per_class=10, batch=16, seed=0)
    first = sampler.episode(0)
    model = MANN(first.features, first.num_outputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def mann_step(index: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        model.loss(sampler.episode(index))[0].backward()
        optimizer.step()

    return mann_step


def episodic_training_step(method: torch.nn.Module, n_way: int, k_shot: int, n_query: int,
                           tasks: int = 1) -> Callable[[int], None]:
    """One Adam step of ``method`` (its ``training_step``) on episode ``index`` of ``tasks``
    Omniglot training tasks, N-way K-shot with ``n_query`` queries per class: the episodic
    workloads of the speed benchmarks."""
    from fslearn.data import EpisodeSampler, load_omniglot

    sampler = EpisodeSampler(load_omniglot("train"), n_way, k_shot, n_query, tasks=tasks, seed=0)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)

    def step(index: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        method.training_step(sampler.episode(index))
        optimizer.step()

    return step
