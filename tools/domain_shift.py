"""Section 7.4's test under domain shift: every shipped image checkpoint on printed glyphs.

    python tools/domain_shift.py                      # build the glyphs if needed, evaluate all
    python tools/domain_shift.py --glyphs DIR         # a glyph folder built beforehand
    python tools/domain_shift.py --time 20            # only time each model on 20 episodes

The target domain: `fslearn data glyphs --exclude omniglot` (seed 0), printed letters of the
scripts that no Omniglot alphabet is written in, so every test class is new to every model and
drawn in a new way (print, not handwriting). Each checkpoint is tested on the same 5-way 1-shot
and 5-shot episodes (seed 0, 15 queries per class) as `fslearn evaluate CKPT --data DIR` would
test it: 1000 episodes for the models that embed each image once, `--slow-episodes` (at least
600) for those that adapt by gradient steps on every episode. A checkpoint with a fixed 20-way
head is tested at 20-way 1-shot only (its 5-shot episodes would cost about 14 CPU minutes per
model). Its Omniglot figures are read from its shipped results.json (the Vinyals test
characters, 1000 episodes, seed 0).

Beside the shipped models, what helps under shift, on both domains: the frozen embedding of
Baseline and Baseline++ with a nearest-prototype classifier instead of their fine-tuned heads
(the same network, only the classifier changes), the pixel nearest neighbour (no learning), and
MAML with twice the test-time steps it was tested with.

Harder episodes: a 5-way glyph episode drawn from all 5,000 letters rarely holds two letters of
one script, so every model and variant is also tested on within-alphabet episodes (all the
classes of an episode from one script, or one Omniglot alphabet: `fslearn evaluate
--within-alphabet`), on both domains, so that the shift is measured between equally hard
episodes. Everything runs at one thread; the
figures, per-episode right answers, commands, hardware, times and the glyph dataset's record
(digest of its images) go to book/data/domain-shift.json, which section 7.4 reads.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fslearn.checkpoints import load_checkpoint, shipped_checkpoints  # noqa: E402
from fslearn.data.glyphs import RECORD_FILE, build_glyphs, load_glyphs  # noqa: E402
from fslearn.data.omniglot import load_omniglot  # noqa: E402
from fslearn.evaluation import embed_dataset, evaluate  # noqa: E402
from fslearn.methods import FewShotMethod  # noqa: E402
from fslearn.methods.pixel_nn import PixelNearestNeighbour  # noqa: E402
from fslearn.methods.protonet import PrototypicalNetwork  # noqa: E402
from fslearn.results_table import results_table  # noqa: E402

OUTPUT = ROOT / "book" / "data" / "domain-shift.json"
PER_ALPHABET_OUTPUT = ROOT / "book" / "data" / "domain-shift-per-alphabet.json"
GLYPHS = ROOT / "runs" / "glyphs-no-omniglot-scripts"
GLYPHS_COMMAND = f"fslearn data glyphs --exclude omniglot --seed 0 --out {GLYPHS.relative_to(ROOT)}"
SEED, N_QUERY, SHOTS = 0, 15, (1, 5)
#: the models that embed every test image once are fast; the others adapt on every episode
FAST_EPISODES = 1000
#: what is measured: (key in the output, domain, classes of an episode from one alphabet);
#: the shipped models' Omniglot figures over classes from all alphabets are their results.json's
MEASURES = (("omniglot", "omniglot", False), ("glyphs", "glyphs", False),
            ("omniglot_within", "omniglot", True), ("glyphs_within", "glyphs", True))


def image_checkpoints() -> list[dict[str, Any]]:
    """The shipped checkpoints tested on image episodes, with their Omniglot figures."""
    return [row for row in results_table() if row["kind"] == "episodes"]


def test_ways(method: FewShotMethod) -> int:
    """5, or the checkpoint's own number of ways for a fixed head."""
    return getattr(method, "fixed_way", None) or 5


def correct_counts(result: Any) -> list[int]:
    """Right answers per episode (exact integers, as episodes.json stores them)."""
    queries = result.n_way * result.n_query
    return [round(a * queries) for a in result.per_episode]


def run_shots(method: FewShotMethod, dataset: Any, n_way: int, episodes: int,
              within_alphabet: bool = False) -> list[dict[str, Any]]:
    """Each number of shots (1 only at 20-way): accuracy, CI, the right answers per episode,
    and the CPU seconds (a model that embeds once embeds the test images once for both)."""
    start = time.process_time()
    embeddings = (embed_dataset(method, dataset) if getattr(method, "embeds_once", False)
                  else None)
    embedding = time.process_time() - start
    shots = SHOTS if n_way == 5 else SHOTS[:1]
    return [run_one(method, dataset, n_way, k, episodes, embeddings, embedding / len(shots),
                    within_alphabet) for k in shots]


def run_one(method: FewShotMethod, dataset: Any, n_way: int, k_shot: int, episodes: int,
            embeddings: torch.Tensor | None, embedding_seconds: float,
            within_alphabet: bool = False) -> dict[str, Any]:
    """One setting, on the test images' embeddings if given (computed in embedding_seconds)."""
    start = time.process_time()
    result = evaluate(method, dataset, n_way, k_shot, N_QUERY, episodes, seed=SEED,
                      embeddings=embeddings, within_alphabet=within_alphabet)
    seconds = time.process_time() - start + embedding_seconds
    return {"n_way": n_way, "k_shot": k_shot, "n_query": N_QUERY, "episodes": episodes,
            "seed": SEED, "dataset": dataset.name, "within_alphabet": within_alphabet,
            "accuracy": result.accuracy,
            "ci95": result.ci95, "cpu_seconds": round(seconds, 1),
            "correct": correct_counts(result)}


def stored_omniglot(row: dict[str, Any], n_way: int) -> list[dict[str, Any]]:
    """The shipped figures on the Omniglot test characters for ``n_way``-way 1 and 5 shots."""
    return [{key: r.get(key) for key in ("n_way", "k_shot", "accuracy", "ci95", "episodes",
                                           "seed", "dataset")}
            for r in row["results"] if r["n_way"] == n_way and r["k_shot"] in SHOTS]


def variants(loaded: dict[str, FewShotMethod]) -> list[tuple[str, str, FewShotMethod]]:
    """(label, what it shows, method) of each comparison beside the shipped models."""
    chosen = []
    for name in ("baseline-omniglot", "baselinepp-omniglot"):
        if name in loaded:
            chosen.append((f"{name}: nearest prototype",
                           f"{name}'s frozen embedding, classified by the nearest prototype "
                           f"(mean support embedding) instead of a head fine-tuned on the "
                           f"support set", PrototypicalNetwork(loaded[name].backbone)))
    chosen.append(("pixels: nearest neighbour", "no learning: the nearest support image in "
                   "pixel space", PixelNearestNeighbour()))
    if "maml-omniglot-5way" in loaded:
        maml, _ = load_checkpoint(shipped_checkpoints()["maml-omniglot-5way"])
        steps = 2 * maml.test_inner_steps
        maml.test_inner_steps = steps
        chosen.append((f"maml-omniglot-5way: {steps} test steps",
                       f"MAML with {steps} gradient steps on each support set instead of its "
                       f"{loaded['maml-omniglot-5way'].test_inner_steps}", maml))
    return chosen


#: the model whose accuracy is broken down by alphabet (it embeds each image once: cheap)
PER_ALPHABET_MODEL = "protonet-omniglot"


def per_alphabet(method: FewShotMethod, dataset: Any, episodes: int) -> dict[str, Any]:
    """5-way 1-shot accuracy on each alphabet (or script) of ``dataset`` alone, over
    ``episodes`` episodes of its own classes, from one embedding of every image."""
    start = time.process_time()
    embeddings = embed_dataset(method, dataset)
    accuracy = {}
    for alphabet, classes in dataset.classes_by_alphabet().items():
        keep = torch.isin(dataset.labels, torch.tensor(classes))
        result = evaluate(method, dataset.select_classes(classes), 5, 1, N_QUERY, episodes,
                          seed=SEED, embeddings=embeddings[keep])
        accuracy[alphabet] = {"classes": len(classes), "accuracy": result.accuracy,
                              "ci95": result.ci95}
    return {"n_way": 5, "k_shot": 1, "n_query": N_QUERY, "episodes": episodes, "seed": SEED,
            "dataset": dataset.name, "cpu_seconds": round(time.process_time() - start, 1),
            "alphabets": accuracy}


def episodes_for(method: FewShotMethod, slow: int) -> int:
    return FAST_EPISODES if getattr(method, "embeds_once", False) else slow


def glyph_dataset(folder: Path | None) -> tuple[Path, dict[str, Any]]:
    """The glyph folder (built with GLYPHS_COMMAND if absent) and its record."""
    if folder is None:
        folder = GLYPHS
        if not (folder / RECORD_FILE).is_file():
            print(f"building {folder} ...", flush=True)
            build_glyphs(folder, exclude=["omniglot"], seed=0, command=GLYPHS_COMMAND)
    record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    return folder, record


def record_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The parts of the glyph record a reader needs (the full record lists every font)."""
    return {"command": GLYPHS_COMMAND, "seed": record["seed"], "classes": record["classes"],
            "images_per_class": record["images_per_class"], "scripts": record["scripts"],
            "excluded_scripts": record["excluded_scripts"],
            "images_sha256": record["images_sha256"], "versions": record["versions"],
            "font_files": len(record["fonts"]),
            "homoglyphs_left_out": len(record["homoglyphs_left_out"])}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glyphs", type=Path, default=None, help="a glyph folder built before")
    parser.add_argument("--slow-episodes", type=int, default=600,
                        help="episodes for the models that adapt on every episode (>= 600)")
    parser.add_argument("--time", type=int, default=0, metavar="E",
                        help="only time every model on E episodes; write nothing")
    parser.add_argument("--resume", action="store_true",
                        help="keep the figures already in the output file (of the same glyph "
                             "images and settings) and measure only the missing ones")
    parser.add_argument("--per-alphabet", action="store_true",
                        help=f"only break {PER_ALPHABET_MODEL}'s accuracy down by alphabet and "
                             f"script, into {PER_ALPHABET_OUTPUT.relative_to(ROOT)}")
    parser.add_argument("--redo", action="append", default=[], metavar="NAME",
                        help="with --resume: measure this checkpoint (and the variants made "
                             "from it) again, e.g. after it was retrained; repeatable")
    return parser.parse_args()


def previous_figures(args: argparse.Namespace, record: dict[str, Any]) -> dict[str, Any] | None:
    """With --resume: the figures measured before (models and variants, less those of the
    checkpoints --redo names), the earlier command and its wall seconds; None without --resume
    or an output file."""
    if not args.resume or not OUTPUT.is_file():
        if args.redo:
            sys.exit("error: --redo measures a model again in an existing output: add --resume")
        return None
    before = json.loads(OUTPUT.read_text())
    if (before["glyphs"]["images_sha256"] != record["images_sha256"]
            or (before["seed"], before["n_query"]) != (SEED, N_QUERY)):
        sys.exit(f"error: {OUTPUT} is of other glyphs or settings: run without --resume")
    unknown = sorted(set(args.redo) - {row["name"] for row in image_checkpoints()})
    if unknown:
        sys.exit(f"error: --redo {', '.join(unknown)}: not a shipped image checkpoint (see "
                 f"`fslearn checkpoints`)")
    # a variant's label starts with the name of the checkpoint it is made from
    return {"models": [m for m in before["models"] if m["name"] not in args.redo],
            "variants": [v for v in before["variants"]
                         if v["label"].split(":", 1)[0] not in args.redo],
            "command": before["command"], "wall_seconds": before["wall_seconds"]}


def ordered_jobs(rows: list[dict[str, Any]], loaded: dict[str, FewShotMethod]
                 ) -> list[tuple[str, Any]]:
    """The fast models first, the variants that change a classifier, then the slow ones, the
    5-way MAML and its variant before the others, the fixed 20-way heads last (the costliest)."""
    chosen = variants(loaded)
    slow = sorted((row for row in rows if not loaded[row["name"]].embeds_once),
                  key=lambda row: (test_ways(loaded[row["name"]]) != 5,
                                   row["name"] != "maml-omniglot-5way", row["name"]))
    return ([("model", row) for row in rows if loaded[row["name"]].embeds_once]
            + [("variant", v) for v in chosen if v[2].embeds_once]
            + [("model", row) for row in slow[:1]]
            + [("variant", v) for v in chosen if not v[2].embeds_once]
            + [("model", row) for row in slow[1:]])


def write_per_alphabet(args: argparse.Namespace) -> None:
    """--per-alphabet: the breakdown of one model's one-alphabet accuracy, in its own file."""
    torch.set_num_threads(1)
    started = time.time()
    folder, record = glyph_dataset(args.glyphs)
    method, _ = load_checkpoint(shipped_checkpoints()[PER_ALPHABET_MODEL])
    output = {"command": shlex.join(["python", "tools/domain_shift.py", *sys.argv[1:]]),
              "model": PER_ALPHABET_MODEL, "cpu": _cpu_name(), "torch": torch.__version__,
              "glyphs_sha256": record["images_sha256"],
              "omniglot": per_alphabet(method, load_omniglot("test", "vinyals"), 600),
              "glyphs": per_alphabet(method, load_glyphs(folder, 28), 600)}
    output["wall_seconds"] = round(time.time() - started)
    PER_ALPHABET_OUTPUT.write_text(json.dumps(output, indent=1) + "\n")
    print(f"Wrote {PER_ALPHABET_OUTPUT.relative_to(ROOT)} in {output['wall_seconds']} s")


def main() -> None:
    args = arguments()
    if args.per_alphabet:
        write_per_alphabet(args)
        return
    if not args.time and args.slow_episodes < 600:
        sys.exit("error: --slow-episodes must be at least 600 for reported figures")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.time()
    folder, record = glyph_dataset(args.glyphs)
    omniglot = load_omniglot("test", "vinyals")
    glyphs = load_glyphs(folder, 28)
    rows = image_checkpoints()
    loaded = {row["name"]: load_checkpoint(shipped_checkpoints()[row["name"]])[0] for row in rows}
    output = {"command": shlex.join(["python", "tools/domain_shift.py", *sys.argv[1:]]),
              "seed": SEED, "n_query": N_QUERY,
              "hardware": f"{platform.processor() or platform.machine()}, 1 thread",
              "cpu": _cpu_name(), "torch": torch.__version__, "complete": False,
              "wall_seconds": 0,
              "omniglot_figures": "each checkpoint's results.json (fslearn report, 1000 "
                                  "episodes, seed 0, Vinyals test characters)",
              "glyphs": record_summary(record), "models": [], "variants": []}

    previous = previous_figures(args, record)
    if previous is not None:
        started -= previous.pop("wall_seconds")
        previous["command"] = f"{previous['command']}, then {output['command']}"
        output.update(previous)

    def save() -> None:
        # after every model, so that an interrupted run leaves what it measured
        if args.time:
            return
        output["wall_seconds"] = round(time.time() - started)
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        partial = OUTPUT.with_suffix(".part")
        partial.write_text(json.dumps(output, separators=(",", ":")) + "\n")
        partial.replace(OUTPUT)

    jobs = ordered_jobs(rows, loaded)
    data = {"omniglot": omniglot, "glyphs": glyphs}
    entries = {m["name"]: m for m in output["models"]} | {v["label"]: v for v in
                                                           output["variants"]}
    for kind, job in jobs:
        if kind == "model":
            name, method = job["name"], loaded[job["name"]]
            entry = entries.get(name) or {
                "name": name, "method": job["method"], "protocol": job["protocol"],
                "train_split": job["train_split"],
                "omniglot": stored_omniglot(job, test_ways(method))}
        else:
            name, what, method = job
            entry = entries.get(name) or {"label": name, "what": what}
        if name not in entries:
            entries[name] = entry
            output["models" if kind == "model" else "variants"].append(entry)
        count = args.time or episodes_for(method, args.slow_episodes)
        for key, domain, within in MEASURES:
            if key in entry:
                continue
            entry[key] = run_shots(method, data[domain], test_ways(method), count, within)
            print(name, key, [f"{t['n_way']}w{t['k_shot']}s {100 * t['accuracy']:.2f} "
                              f"({t['cpu_seconds']} s)" for t in entry[key]], flush=True)
            save()
    output["complete"] = True
    save()
    if not args.time:
        print(f"Wrote {OUTPUT.relative_to(ROOT)} in {output['wall_seconds']} s")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
