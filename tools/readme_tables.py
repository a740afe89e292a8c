#!/usr/bin/env python
"""Write the README's tables of figures from the files they come from, so they cannot drift.

Each generated table sits between two marker lines in README.md::

    <!-- generated: NAME (python tools/readme_tables.py) -->
    | ... the table ... |
    <!-- end generated -->

and is made from the shipped checkpoints' ``checkpoint.json`` / ``results.json``
(``fslearn/pretrained/``) or a benchmark's results (``benchmarks/results/``).

Usage, from anywhere::

    python tools/readme_tables.py           # rewrite the tables in README.md
    python tools/readme_tables.py --check   # exit 1, naming the tables, if README.md differs

The tests run ``--check`` (tests/test_readme.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this checkout's fslearn, whichever is installed
    sys.path.insert(0, str(ROOT))

from fslearn.training_config import config_from_record  # noqa: E402

README = ROOT / "README.md"
PRETRAINED = ROOT / "fslearn" / "pretrained"
BENCHMARKS = ROOT / "benchmarks" / "results"
SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))
_BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) \(python tools/readme_tables\.py\) -->\n)"
                    r"(?P<body>.*?)(<!-- end generated -->)", re.DOTALL)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SystemExit(f"tools/readme_tables.py: {path.relative_to(ROOT)} is missing: ship the "
                         f"checkpoint (bash tools/ship_checkpoint.sh) or run its benchmark first.")
    return json.loads(path.read_text(encoding="utf-8"))


def _load(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = PRETRAINED / name
    return _read_json(folder / "checkpoint.json"), _read_json(folder / "results.json")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def _by_setting(results: dict[str, Any]) -> dict[tuple[int, int], dict[str, Any]]:
    return {(row["n_way"], row["k_shot"]): row for row in results["results"]}


def _percent(row: dict[str, Any] | None, digits: int = 2) -> str:
    if row is None:
        return "-"
    return f"{100 * row['accuracy']:.{digits}f} ± {100 * row['ci95']:.{digits}f}"


def _paper(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _four_settings_row(name: str, hours: bool = False) -> list[str]:
    """A checkpoint's row in the four settings: name, training time (minutes, or hours), the
    four test figures and the paper's, '/'-separated."""
    record, results = _load(name)
    by_setting = _by_setting(results)
    papers = [_paper(by_setting.get(s, {}).get("paper_accuracy")) for s in SETTINGS]
    seconds = record["training_seconds"]
    training = f"{seconds / 3600:.1f} h" if hours else f"{seconds / 60:.0f} min"
    return [f"`{name}`", training, *[_percent(by_setting.get(s)) for s in SETTINGS],
            " / ".join(papers)]


def metric_table() -> str:
    """Chapters 3-4: the transfer baselines and metric methods in the four settings (the graph
    network, one model per N, in its two 5-way ones)."""
    names = ("baseline-omniglot", "baselinepp-omniglot", "siamese-omniglot",
             "matchingnet-omniglot", "relationnet-omniglot", "gnn-omniglot-5way")
    return _table(["checkpoint", "training", "5-way 1-shot", "5-way 5-shot", "20-way 1-shot",
                   "20-way 5-shot", "paper"], [_four_settings_row(name) for name in names])


def _steps_made(name: str, planned: int) -> int:
    """The last step in the shipped run's history.json (the planned steps where it has none)."""
    history_file = PRETRAINED / name / "history.json"
    history = json.loads(history_file.read_text(encoding="utf-8")) if history_file.is_file() else []
    return max((entry["episode"] for entry in history), default=planned)


def _inner_loop_table(names: tuple[str, ...], n_way: int) -> str:
    rows = []
    for name in names:
        record, results = _load(name)
        by_setting = _by_setting(results)
        cells = []
        for k_shot in (1, 5):
            row = by_setting.get((n_way, k_shot))
            cells += [_percent(row), _paper(row.get("paper_accuracy") if row else None)]
        config = config_from_record(record["config"])
        # the step kept (best on validation) and the steps the run made, where they differ: a
        # run stopped as flat made fewer than its command asks for, and its history says how many
        steps_made = _steps_made(name, config.episodes)
        steps = (f"{record['episode']}" if record["episode"] >= steps_made
                 else f"{record['episode']} of {steps_made}")
        rows.append([f"`{name}`", f"{steps} x {config.batch_size}", *cells])
    return _table(["checkpoint", "outer steps x tasks", f"{n_way}-way 1-shot", "paper",
                   f"{n_way}-way 5-shot", "paper"], rows)


def maml_5way_table() -> str:
    """Chapter 5: the 5-way inner-loop checkpoints (the Meta-LSTM's inner loop is learned)."""
    return _inner_loop_table(("maml-omniglot-5way", "fomaml-omniglot-5way",
                              "metasgd-omniglot-5way", "anil-omniglot-5way",
                              "reptile-omniglot-5way", "metalstm-omniglot-5way"), 5)


def maml_20way_table() -> str:
    """Chapter 5: the 20-way MAML and ANIL (Raghu et al.'s only Omniglot setting)."""
    return _inner_loop_table(("maml-omniglot-20way", "anil-omniglot-20way"), 20)


def sinusoid_table() -> str:
    """Chapter 5: Finn et al.'s sinusoid regression, MSE after 1, 5 and 10 steps."""
    rows = []
    for name, label in (("maml-sinusoid", "MAML"), ("pretrained-sinusoid", "pretrained")):
        _, results = _load(name)
        by_steps = {row["steps"]: row for row in results["results"]}
        steps = sorted(by_steps)
        rows.append([f"{label}, fslearn", *[f"{by_steps[s]['mse']:.3f} ± {by_steps[s]['ci95']:.3f}"
                                           for s in steps]])
        rows.append([f"{label}, paper", *[f"{by_steps[s]['paper_mse']:g}" for s in steps]])
    return _table(["K = 5, MSE", "1 step", "5 steps", "10 steps"], rows)


def mann_table() -> str:
    """Chapter 6: accuracy by presentation of the MANN and its LSTM, beside Santoro et al."""
    presentations = (1, 2, 3, 4, 5, 10)
    ordinals = {1: "1st", 2: "2nd", 3: "3rd"}
    rows = []
    for name, label in (("mann-omniglot", "MANN"), ("lstm-omniglot", "LSTM")):
        record, results = _load(name)
        by_presentation = {row["presentation"]: row for row in results["results"]}
        chosen = [by_presentation[p] for p in presentations]
        episodes = config_from_record(record["config"]).batch_size
        rows.append([f"`{name}`", f"{record['episode']:,} x {episodes}",
                     f"{record['training_seconds'] / 3600:.1f} h",
                     *[_percent(row, digits=1) for row in chosen]])
        rows.append([f"{label}, Santoro et al.", "", "", *[_paper(row["paper_accuracy"])
                                                          for row in chosen]])
    return _table(["checkpoint", "steps x episodes", "training",
                   *[ordinals.get(p, f"{p}th") for p in presentations]], rows)


def semi_supervised_table() -> str:
    """Chapter 7.2: the shipped semi-supervised model on Ren et al.'s test episodes."""
    record, results = _load("semiproto-omniglot")
    rows = []
    for row in results.get("extra_results", []):
        distractors = row.get("distractors", 0)
        paper = row.get("paper_accuracy")
        rows.append([f"`semiproto-omniglot` ({record['hparams']['refinement']})",
                     f"{row['n_way']}-way {row['k_shot']}-shot, {row['n_query']} queries, "
                     f"{row.get('unlabelled', 0)} unlabelled per class, {distractors} "
                     f"distractor classes", _percent(row),
                     "-" if paper is None else f"{100 * paper:.2f}"])
    return _table(["checkpoint", "test episodes", "accuracy", "Ren et al., Table 1"], rows)


def self_supervised_table() -> str:
    """Chapter 7.3: the shipped self-supervised ProtoCLR in the four settings."""
    return _table(["checkpoint", "training", "5-way 1-shot", "5-way 5-shot", "20-way 1-shot",
                   "20-way 5-shot", "ProtoTransfer"],
                  [_four_settings_row("protoclr-omniglot", hours=True)])


def _benchmark(name: str) -> dict[str, Any]:
    return _read_json(BENCHMARKS / f"{name}.json")


def maml_benchmark_table() -> str:
    """MAML's two engines on the CPU (benchmarks/results/maml-cpu.json)."""
    entries = {(e["inner_steps"], e["order"], e["engine"]): e
               for e in _benchmark("maml-cpu")["results"]}
    rows = []
    configurations = sorted({(s, o) for s, o, _ in entries}, key=lambda k: (k[0], k[1] != "second"))
    for steps, order in configurations:
        loop, vmap = entries[(steps, order, "loop")], entries[(steps, order, "vmap")]
        rows.append([f"{steps}, {order}", f"{loop['tasks_per_second']:.2f}",
                     f"{vmap['tasks_per_second']:.2f}", f"{loop['peak_memory_gib']:.2f}",
                     f"{vmap['peak_memory_gib']:.2f}"])
    return _table(["inner steps, order", "loop tasks/s", "vmap tasks/s", "loop peak GiB",
                   "vmap peak GiB"], rows)


def mann_benchmark_table() -> str:
    """A training step of the MANN and its LSTM (benchmarks/results/mann-cpu.json)."""
    rows = [[entry["model"].upper(), str(entry["threads"]), f"{entry['ms_per_step']:.1f}",
             f"{entry['steps_per_hour']:,}", f"{entry['sampler_ms_per_batch']:.1f}"]
            for entry in _benchmark("mann-cpu")["results"]]
    return _table(["model", "threads", "ms per step", "steps per hour", "sampler ms per batch"],
                  rows)


def speed_benchmark_table() -> str:
    """Each workload's variants beside the reference (benchmarks/results/speed-cpu.json)."""
    entries = _benchmark("speed-cpu")["results"]
    reference = {e["workload"]: e for e in entries if e["variant"] == "reference"}
    rows = []
    for entry in entries:
        if entry["variant"] == "reference":
            continue
        base = reference[entry["workload"]]
        rows.append([entry["what"], entry["variant"], f"{base['cpu_s']:.3f}",
                     f"{entry['cpu_s']:.3f}", f"**{entry['cpu_ratio']:.2f}x**",
                     f"{entry['wall_ratio']:.2f}x",
                     f"{base['peak_rss_gib']:.2f} / {entry['peak_rss_gib']:.2f}"])
    return _table(["workload (one step)", "variant", "reference CPU s", "variant CPU s",
                   "CPU-time ratio", "wall ratio", "peak GiB, reference / variant"], rows)


def speed_bf16_table() -> str:
    """``--precision bf16`` beside float32: per step (benchmarks/results/speed-bf16-cpu.json)
    and over whole runs with their last validation (book/data/precision-curves.json)."""
    entries = _benchmark("speed-bf16-cpu")["results"]
    by_what: dict[str, dict[str, Any]] = {}
    for entry in entries:
        by_what.setdefault(entry["what"], {})[entry["variant"]] = entry
    rows = [[what, f"{v['new']['cpu_s']:.3f}", f"{v['bf16']['cpu_s']:.3f}",
             f"**{v['new']['cpu_s'] / v['bf16']['cpu_s']:.2f}x**", "-"]
            for what, v in by_what.items() if {"new", "bf16"} <= v.keys()]
    curves = _read_json(ROOT / "book" / "data" / "precision-curves.json")["runs"]
    for workload, pair in curves.items():
        last = [pair[p]["validation"][-1] for p in ("float32", "bf16")]
        rows.append([f"whole run: `{workload}`, {pair['float32']['steps']} steps with "
                     f"validations (`tools/precision_curves.py`)",
                     f"{pair['float32']['cpu_seconds']:.0f}", f"{pair['bf16']['cpu_seconds']:.0f}",
                     f"**{pair['cpu_speedup']:.2f}x**",
                     " / ".join(f"{100 * v['accuracy']:.2f} ± {100 * v['ci95']:.2f}"
                                for v in last)])
    return _table(["workload", "float32 CPU s", "bf16 CPU s", "speed-up",
                   "last validation, float32 / bf16 (%)"], rows)


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def speed_targets_table() -> str:
    """Issue 22's targets beside the figures of benchmarks/results/speed-cpu.json (CPU time of
    one thread; a workload left out of the run says so)."""
    rows_by = {(e["workload"], e["variant"]): e for e in _benchmark("speed-cpu")["results"]}

    def measured(workload: str) -> bool:
        return (workload, "new") in rows_by and (workload, "reference") in rows_by

    rows = []
    if measured("protonet-train"):
        new, ref = rows_by["protonet-train", "new"], rows_by["protonet-train", "reference"]
        easy = rows_by.get(("protonet-train", "easyfsl"))
        against = f"; {easy['cpu_s'] / new['cpu_s']:.2f}x as fast as easyfsl" if easy else ""
        rows.append(["ProtoNet training step, 60-way 1-shot", ">= 1.8x the reference",
                     f"{new['cpu_ratio']:.2f}x{against}", _met(new["cpu_ratio"] >= 1.8)])
    for steps in (1, 5):
        workload = f"maml{steps}-train"
        if measured(workload):
            new, ref = rows_by[workload, "new"], rows_by[workload, "reference"]
            memory = new["peak_rss_gib"] / ref["peak_rss_gib"]
            rows.append([f"MAML 2nd-order outer step, 5-way 1-shot, 32 tasks, {steps} inner "
                         f"step{'s' if steps > 1 else ''}", ">= 2x, peak memory <= 1.2x",
                         f"{new['cpu_ratio']:.2f}x, memory {memory:.2f}x",
                         _met(new["cpu_ratio"] >= 2 and memory <= 1.2)])
    for workload, what in (("protonet-eval", "ProtoNet, 20-way 1-shot"),
                           ("relation-eval1", "Relation Network, 5-way 1-shot")):
        if measured(workload):
            new, ref = rows_by[workload, "new"], rows_by[workload, "reference"]
            rows.append([f"1000 test episodes, {what}", "<= 10 s",
                         f"{new['cpu_s']:.1f} s (reference {ref['cpu_s']:.1f} s)",
                         _met(new["cpu_s"] <= 10)])
    if measured("maml20-eval1") and measured("maml20-eval5"):
        # the report's 1000 episodes of each of its two settings; a step is 10 episodes
        new, ref = ((100 * sum(rows_by[f"maml20-eval{k}", v]["cpu_s"] for k in (1, 5)) / 60)
                    for v in ("new", "reference"))
        rows.append(["`fslearn report maml-omniglot-20way` (1000 episodes of 20-way 1- and "
                     "5-shot, from 10 of each)", "<= 10 min", f"{new:.1f} min (reference "
                     f"{ref:.1f} min)", _met(new <= 10)])
    bf16 = {(e["workload"], e["variant"]): e for e in _benchmark("speed-bf16-cpu")["results"]}
    gains = [f"{what} {bf16[w, 'new']['cpu_s'] / bf16[w, 'bf16']['cpu_s']:.2f}x"
             for w, what in (("protonet-train", "ProtoNet step"), ("maml1-train", "MAML step"))
             if (w, "new") in bf16 and (w, "bf16") in bf16]
    curves = _read_json(ROOT / "book" / "data" / "precision-curves.json")["runs"]
    costs = []
    for workload, pair in curves.items():
        last = {p: pair[p]["validation"][-1]["accuracy"] for p in ("float32", "bf16")}
        costs.append(f"{workload} validation {100 * (last['bf16'] - last['float32']):+.2f} "
                     f"points")
    rows.append(["`--precision bf16`", "speed-up and accuracy cost measured and written down",
                 "; ".join(gains + costs), _met(bool(gains and costs))])
    return _table(["workload", "issue 22's target", "measured (CPU time, one thread)", "met"],
                  rows)


TABLES: dict[str, Callable[[], str]] = {
    "metric-checkpoints": metric_table,
    "maml-5way-checkpoints": maml_5way_table,
    "maml-20way-checkpoints": maml_20way_table,
    "sinusoid-checkpoints": sinusoid_table,
    "mann-checkpoints": mann_table,
    "semi-supervised-checkpoint": semi_supervised_table,
    "self-supervised-checkpoint": self_supervised_table,
    "maml-benchmark": maml_benchmark_table,
    "mann-benchmark": mann_benchmark_table,
    "speed-benchmark": speed_benchmark_table,
    "speed-targets": speed_targets_table,
    "speed-bf16": speed_bf16_table,
}


def render(text: str) -> tuple[str, list[str]]:
    """``text`` with every generated table rewritten, and the names of those that changed."""
    changed: list[str] = []
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise SystemExit(f"README.md names a generated table {name!r} that "
                             f"tools/readme_tables.py does not make ({', '.join(TABLES)}).")
        seen.add(name)
        body = TABLES[name]()
        if body != match.group("body"):
            changed.append(name)
        return match.group(1) + body + match.group(4)

    new_text = _BLOCK.sub(replace, text)
    missing = sorted(set(TABLES) - seen)
    if missing:
        raise SystemExit(f"README.md lacks the markers of {', '.join(missing)}: add "
                         f"'<!-- generated: NAME (python tools/readme_tables.py) -->' and "
                         f"'<!-- end generated -->' around each.")
    return new_text, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a table in README.md is out of date")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new_text, changed = render(text)
    if args.check:
        if changed:
            print(f"README.md is out of date in: {', '.join(changed)}. "
                  f"Run: python tools/readme_tables.py", file=sys.stderr)
            return 1
        print(f"README.md: {len(TABLES)} generated tables up to date.")
        return 0
    README.write_text(new_text, encoding="utf-8")
    print(f"README.md: rewrote {', '.join(changed) or 'nothing (all up to date)'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
