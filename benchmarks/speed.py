"""Today's speed beside the reference (fslearn before the speed work), workload by workload.

    python benchmarks/speed.py                                   # every workload (about 40 min)
    python benchmarks/speed.py --workloads protonet-train,maml1-train --repeats 3
    python benchmarks/speed.py --json benchmarks/results/speed-cpu.json

Each workload runs in several variants, each in a fresh process, the variants taking turns
(``--repeats`` rounds), one PyTorch thread by default. ``reference`` is the code as it was before
the speed work, kept here as a path of today's code: the glibc allocator's default behaviour
(fslearn's command line now calls :func:`fslearn._system.keep_freed_memory`), the Conv4 in the
default memory layout (with one input channel, ``contiguous(memory_format=channels_last)`` was a
no-op), MAML's batch norm with its affine part outside ``F.batch_norm``, ANIL's inner loop over
the whole network, the Relation Network's concatenated pairs. ``new`` is today's code as the
command line runs it. Other variants: ``easyfsl`` (easyfsl 1.5's ``PrototypicalNetworks`` on a
textbook Conv4 with the same weights and episodes, in a plain process: ``pip install --no-deps
easyfsl``; the ``torchvision`` it imports for its ResNets, unused here, is stubbed where it is
missing), ``bf16`` (today's code under ``--precision bf16``: bfloat16 autocast, its ratio to
``new`` printed too), ``vmap`` (MAML's vmap engine) and ``grouped`` / ``grouped8`` (a textbook
grouped convolution over the tasks of a meta-batch, all of them or 8 at a time, written below).

A step's time is its CPU time (user + system, this process: what the step costs, whatever else
runs on the machine) and its wall time; the figure of a variant is the median over its steps and
then over the rounds; the ratio is the reference's over the variant's. Peak memory is the
process's peak resident set size (``start`` is before the first step: the data and the model).
These are measurements, not tests: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from _common import (  # benchmarks/_common.py, beside this script
    episodic_training_step,
    mann_training_step,
    run_child,
    write_results,
)

from fslearn._system import describe_hardware, keep_freed_memory

#: one step of a workload, given its index; an evaluation returns its accuracy
Step = Callable[[int], float | None]
#: workload -> (its variants, what a step is)
WORKLOADS: dict[str, tuple[tuple[str, ...], str]] = {
    "protonet-train": (("reference", "new", "easyfsl", "bf16"),
                       "ProtoNet training step, 60-way 1-shot 5 queries, Adam"),
    "maml1-train": (("reference", "new", "vmap", "grouped", "grouped8", "bf16"),
                    "MAML 2nd-order outer step, 5-way 1-shot 15 queries, 32 tasks, 1 inner step"),
    "maml5-train": (("reference", "new", "vmap", "grouped8", "bf16"),
                    "MAML 2nd-order outer step, 5-way 1-shot 15 queries, 32 tasks, 5 inner steps"),
    "relation-train": (("reference", "new", "bf16"),
                       "Relation Network training step, 5-way 1-shot 19 queries, Adam"),
    "mann-train": (("reference", "new", "bf16"), "MANN training step, 16 sequences of 50, Adam"),
    "maml20-eval1": (("reference", "new", "bf16"),
                     "maml-omniglot-20way, 10 test episodes 20-way 1-shot (5 steps)"),
    "maml20-eval5": (("reference", "new"),
                     "maml-omniglot-20way, 10 test episodes 20-way 5-shot (5 steps)"),
    "anil-eval5": (("reference", "new"), "anil-omniglot-5way, 50 test episodes 5-way 5-shot"),
    "protonet-eval": (("reference", "new", "bf16"),
                      "protonet-omniglot, 1000 test episodes 20-way 1-shot, embedding included"),
    "relation-eval1": (("reference", "new", "bf16"),
                       "relationnet-omniglot, 1000 test episodes 5-way 1-shot, embedding "
                       "included"),
    "relation-eval20": (("reference", "new"),
                        "relationnet-omniglot, 100 test episodes 20-way 5-shot, embedding "
                        "included"),
}


# -- the reference paths ----------------------------------------------------------------------
def use_reference_paths() -> None:
    """Today's code put back on the paths it took before the speed work (see the docstring)."""
    from torch.func import functional_call

    from fslearn.backbones import Conv4, StridedConv4
    from fslearn.methods.inner_loop import InnerLoopMethod, inner_loop
    from fslearn.methods.relation import RelationEncoder, RelationModule, relation_pairs

    for network in (Conv4, StridedConv4):
        network.channels_last = property(lambda self: False, lambda self, value: None)

    def use_layout(self: InnerLoopMethod, flag: bool) -> None:  # no layout, unfused batch norm
        for module in self.network.modules():
            if hasattr(module, "fuse_affine"):
                module.fuse_affine = False

    def adapt_and_score(self, params, step_sizes, support_x, support_y, query_x):  # type: ignore[no-untyped-def]
        steps = self.training_inner_steps if self.training else self.test_inner_steps
        adapted = inner_loop(self.network, params, support_x, support_y, steps, step_sizes,
                             self.first_order, self.task_loss,
                             loss_scale=self.loss_scale(support_x.shape[0]))
        return functional_call(self.network, adapted, (query_x,))

    def concatenated_pairs(self, class_maps, query_maps, pairs_per_chunk=None):  # type: ignore[no-untyped-def]
        if pairs_per_chunk is None:
            pairs = relation_pairs(class_maps, query_maps)
            return self(pairs.flatten(0, 2)).view(pairs.shape[:3])
        (tasks, n_way), n_query = class_maps.shape[:2], query_maps.shape[1]
        query_rows = query_maps.flatten(0, 1)
        rows = torch.arange(tasks * n_query)
        chunks = []
        for part in rows.split(max(1, pairs_per_chunk // n_way)):
            pairs = relation_pairs(class_maps[part // n_query], query_rows[part].unsqueeze(1))
            chunks.append(self(pairs.flatten(0, 2)).view(len(part), n_way))
        return torch.cat(chunks).view(tasks, n_query, n_way)

    InnerLoopMethod._use_channels_last = use_layout  # type: ignore[method-assign]
    InnerLoopMethod.adapt_and_score = adapt_and_score  # type: ignore[method-assign]
    RelationModule.score_all_pairs = concatenated_pairs  # type: ignore[method-assign]
    RelationEncoder.forward = lambda self, x: self.features(x)  # type: ignore[method-assign]


# -- the workloads ----------------------------------------------------------------------------
def _easyfsl() -> ModuleType:
    """easyfsl's methods, with ``torchvision.models.resnet`` stubbed where torchvision cannot
    be imported: easyfsl imports it for its ResNet backbones, which nothing here uses."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        stub = ModuleType("torchvision.models.resnet")
        for name in ("BasicBlock", "Bottleneck", "conv1x1", "conv3x3"):
            setattr(stub, name, type(name, (), {}))
        for name, module in (("torchvision", ModuleType("torchvision")),
                             ("torchvision.models", ModuleType("torchvision.models")),
                             ("torchvision.models.resnet", stub)):
            sys.modules[name] = module
    import easyfsl.methods

    return easyfsl.methods


def easyfsl_protonet_step() -> Step:
    """easyfsl's PrototypicalNetworks on a textbook Conv4 (conv, batch norm, ReLU, max-pool),
    the same initial weights as fslearn's (same seed), the same episodes, Adam."""
    from torch import nn

    from fslearn.data import EpisodeSampler, load_omniglot
    from fslearn.methods import PrototypicalNetwork

    ours = PrototypicalNetwork()  # its weights, copied into the textbook network
    layers: list[nn.Module] = []
    for block in ours.backbone.features:
        conv, norm = nn.Conv2d(block[0].in_channels, 64, 3, padding=1), nn.BatchNorm2d(64)
        conv.load_state_dict(block[0].state_dict())
        norm.load_state_dict(block[1].state_dict())
        layers += [conv, norm, nn.ReLU(), nn.MaxPool2d(2)]
    model = _easyfsl().PrototypicalNetworks(nn.Sequential(*layers, nn.Flatten()))
    sampler = EpisodeSampler(load_omniglot("train"), 60, 1, 5, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(index: int) -> None:
        episode = sampler.episode(index)
        optimizer.zero_grad(set_to_none=True)
        model.process_support_set(episode.support_x[0], episode.support_y[0])
        loss = torch.nn.functional.cross_entropy(model(episode.query_x[0]), episode.query_y[0])
        loss.backward()
        optimizer.step()

    return step


def grouped_maml_step(steps: int, chunk: int | None) -> Step:
    """A textbook grouped-convolution MAML step: the tasks of a chunk side by side as the
    groups of each convolution (per-task fast weights), batch norm per task (each task's
    channels are their own), a batched matrix product for the head; the chunk's query loss is
    back-propagated before the next chunk. Second order, fslearn's Conv4 and its weights."""
    import torch.nn.functional as F
    from torch.func import grad

    from fslearn.data import EpisodeSampler, load_omniglot
    from fslearn.methods import MAML

    method = MAML(n_way=5, inner_steps=steps, inner_lr=0.4)
    sampler = EpisodeSampler(load_omniglot("train"), 5, 1, 15, tasks=32, seed=0)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    blocks = len(method.network[0].features)

    def network(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        tasks, batch = x.shape[:2]  # x: [tasks, batch, 1, H, W] -> logits [tasks, batch, n]
        # the default memory layout, as the loop's: channels-last batch norm with batch statistics
        # is faster but about 1e-3 off in float32 (see fslearn.backbones.channels_last)
        h = x.transpose(0, 1).reshape(batch, tasks * x.shape[2], *x.shape[3:])
        for i in range(blocks):
            w = params[f"0.features.{i}.0.weight"]
            h = F.conv2d(h, w.flatten(0, 1), params[f"0.features.{i}.0.bias"].flatten(),
                         padding=1, groups=tasks)
            h = F.batch_norm(h, None, None, params[f"0.features.{i}.1.weight"].flatten(),
                             params[f"0.features.{i}.1.bias"].flatten(), training=True)
            h = F.relu(F.max_pool2d(h, 2))
        h = h.reshape(batch, tasks, -1).transpose(0, 1)
        return torch.baddbmm(params["1.bias"].unsqueeze(1), h, params["1.weight"].transpose(1, 2))

    def step(index: int) -> None:
        episode = sampler.episode(index)
        optimizer.zero_grad(set_to_none=True)
        size = chunk or episode.tasks
        for start in range(0, episode.tasks, size):
            part = slice(start, start + size)
            sx, sy = episode.support_x[part], episode.support_y[part]
            tasks = sx.shape[0]
            fast = {name: value.expand(tasks, *value.shape)
                    for name, value in method.network.named_parameters()}

            def support_loss(p: dict[str, torch.Tensor], sx: torch.Tensor = sx,
                             sy: torch.Tensor = sy) -> torch.Tensor:
                return sx.shape[0] * F.cross_entropy(network(p, sx).flatten(0, 1), sy.flatten())

            for _ in range(steps):
                gradients = grad(support_loss)(fast)
                fast = {name: value - 0.4 * gradients[name] for name, value in fast.items()}
            logits = network(fast, episode.query_x[part])
            loss = F.cross_entropy(logits.flatten(0, 1), episode.query_y[part].flatten())
            (loss * tasks / episode.tasks).backward()
        optimizer.step()

    return step


def _evaluation(name: str, n_way: int, k_shot: int, episodes: int) -> Step:
    from fslearn.checkpoints import load_checkpoint
    from fslearn.data import load_omniglot
    from fslearn.evaluation import evaluate

    method, _ = load_checkpoint(name)
    test = load_omniglot("test")
    return lambda index: evaluate(method, test, n_way, k_shot, 15, episodes, seed=index).accuracy


def build(workload: str, variant: str) -> Step:
    """One step of ``workload`` in ``variant``, as a function of the step's index."""
    torch.manual_seed(0)
    from fslearn.methods import MAML, PrototypicalNetwork, RelationNetwork

    if workload == "protonet-train":
        if variant == "easyfsl":
            return easyfsl_protonet_step()
        return episodic_training_step(PrototypicalNetwork(), 60, 1, 5)
    if workload in ("maml1-train", "maml5-train"):
        steps = int(workload[4])
        if variant.startswith("grouped"):
            return grouped_maml_step(steps, int(variant[7:]) if variant[7:] else None)
        engine = "vmap" if variant == "vmap" else "loop"
        return episodic_training_step(MAML(n_way=5, inner_steps=steps, inner_lr=0.4, engine=engine),
                              5, 1, 15, tasks=32)
    if workload == "relation-train":
        return episodic_training_step(RelationNetwork(aggregate="mean"), 5, 1, 19)
    if workload == "mann-train":
        return mann_training_step()
    evaluations = {"maml20-eval1": ("maml-omniglot-20way", 20, 1, 10),
                   "maml20-eval5": ("maml-omniglot-20way", 20, 5, 10),
                   "anil-eval5": ("anil-omniglot-5way", 5, 5, 50),
                   "protonet-eval": ("protonet-omniglot", 20, 1, 1000),
                   "relation-eval1": ("relationnet-omniglot", 5, 1, 1000),
                   "relation-eval20": ("relationnet-omniglot", 20, 5, 100)}
    if workload in evaluations:
        return _evaluation(*evaluations[workload])
    raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")


def _in_bf16(step: Step) -> Step:
    """``step`` as ``--precision bf16`` runs it."""
    from fslearn.precision import computing_in

    def bf16_step(index: int) -> float | None:
        with computing_in("bf16", "cpu"):
            return step(index)
    return bf16_step


def measure(workload: str, variant: str, warmup: int, steps: int) -> dict[str, object]:
    """In this (child) process: median CPU and wall time per step, peak memory."""
    if variant == "reference":
        use_reference_paths()
    elif variant != "easyfsl":  # easyfsl runs as a plain script would
        keep_freed_memory()
    step = build(workload, "new" if variant == "bf16" else variant)
    if variant == "bf16":
        step = _in_bf16(step)
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    for index in range(warmup):
        step(index)
    cpu, wall, accuracies = [], [], []
    for index in range(warmup, warmup + steps):
        c, w = time.process_time(), time.perf_counter()
        accuracies.append(step(index))
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return {"workload": workload, "variant": variant, "cpu_s": statistics.median(cpu),
            "wall_s": statistics.median(wall), "steps": steps, "start_rss_gib": start_rss,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "accuracies": accuracies if accuracies[0] is not None else None}


def summarise(workload: str, runs: list[dict[str, object]]) -> list[dict[str, object]]:
    """One row per variant: medians over the rounds, ratios to the reference."""
    rows = []
    by_variant: dict[str, list[dict[str, object]]] = {}
    for run in runs:
        if "error" not in run:
            by_variant.setdefault(str(run["variant"]), []).append(run)
    for variant, mine in by_variant.items():
        row: dict[str, object] = {"workload": workload, "variant": variant, "rounds": len(mine)}
        for key in ("cpu_s", "wall_s", "start_rss_gib", "peak_rss_gib"):
            row[key] = round(statistics.median(float(r[key]) for r in mine), 4)  # type: ignore[arg-type]
        if mine[0]["accuracies"] is not None:  # the timed steps' test accuracies (one round's)
            row["accuracies"] = mine[0]["accuracies"]
        rows.append(row)
    reference = next((r for r in rows if r["variant"] == "reference"), None)
    new = next((r for r in rows if r["variant"] == "new"), None)
    for row in rows:
        for key in ("cpu_s", "wall_s"):
            row[f"{key[:-2]}_ratio"] = (round(float(reference[key]) / float(row[key]), 2)  # type: ignore[arg-type]
                                        if reference else None)
        if row["variant"] == "bf16" and new:  # the option's own speed-up, over today's float32
            row["cpu_ratio_to_new"] = round(float(new["cpu_s"]) / float(row["cpu_s"]), 2)  # type: ignore[arg-type]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--variants", default=None,
                        help="only these variants (comma-separated; default: each workload's)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of variants (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:  # one workload in one variant, one JSON line
        workload, variant = args.child.split(":")
        print(json.dumps(measure(workload, variant, args.warmup, args.steps)))
        return
    device = describe_hardware("cpu")
    load_at_start = os.getloadavg()[0]  # the machine's load: CPU time is what it disturbs least
    print(f"# {device}; torch {torch.__version__}; CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    print(f"{'workload':<17}{'variant':<10}{'CPU s':>9}{'wall s':>9}{'CPU x':>7}{'wall x':>8}"
          f"{'start GiB':>10}{'peak GiB':>9}{'CPU x new':>10}")
    rows: list[dict[str, object]] = []
    for workload in args.workloads.split(","):
        variants = [v for v in WORKLOADS[workload][0]
                    if args.variants is None or v in args.variants.split(",")]
        print(f"## {WORKLOADS[workload][1]}")
        runs = []
        for _ in range(args.repeats):
            for variant in variants:
                command = [sys.executable, __file__, "--child", f"{workload}:{variant}",
                           "--warmup", str(args.warmup), "--steps", str(args.steps),
                           "--threads", str(args.threads)]
                run, error = run_child(command, {"workload": workload, "variant": variant})
                if error:
                    print(f"{workload:<17}{variant:<10}  failed: {error}")
                runs.append(run)
        for row in summarise(workload, runs):
            ratios = (f"{row['cpu_ratio']:>7.2f}{row['wall_ratio']:>8.2f}"
                      if row["cpu_ratio"] is not None else f"{'-':>7}{'-':>8}")  # no reference
            print(f"{workload:<17}{row['variant']!s:<10}{row['cpu_s']:>9.3f}{row['wall_s']:>9.3f}"
                  f"{ratios}"
                  f"{row['start_rss_gib']:>10.2f}{row['peak_rss_gib']:>9.2f}"
                  f"{row.get('cpu_ratio_to_new', '')!s:>10}")
            rows.append({**row, "what": WORKLOADS[workload][1]})
    if args.json:
        write_results(args.json, "benchmarks/speed.py", device, rows, {
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "load_average_1min_at_start": load_at_start,
            "load_average_1min_at_end": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
