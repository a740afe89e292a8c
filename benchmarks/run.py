"""Speed figures of the foundation: data loading, ProtoNet training, evaluation.

    python benchmarks/run.py            # everything (about 3 minutes on 2 cores)
    python benchmarks/run.py --quick    # fewer steps, for a smoke test

Prints one line per figure and, with --json FILE, writes them as JSON. These are measurements,
not tests: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from fslearn._system import describe_hardware
from fslearn.checkpoints import load_checkpoint
from fslearn.data import EpisodeSampler, load_omniglot
from fslearn.data.omniglot import load_omniglot_characters
from fslearn.evaluation import evaluate
from fslearn.methods import PrototypicalNetwork


def _timed(function):
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures: dict[str, object] = {
        "hardware": describe_hardware("cpu"),
        "torch": torch.__version__,
    }

    def report(key: str, value: float, unit: str, note: str = "") -> None:
        figures[key] = round(value, 3)
        print(f"{key:<44} {value:>10.2f} {unit:<12} {note}")

    print(f"# {figures['hardware']}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as cache:
        seconds, _ = _timed(lambda: load_omniglot_characters(image_size=28, cache=cache))
        report("omniglot_load_cold_s", seconds, "s", "decode + resize 32,460 PNGs, write cache")
        seconds, _ = _timed(lambda: load_omniglot_characters(image_size=28, cache=cache))
        report("omniglot_load_cached_s", seconds, "s", "all 32,460 images from the cache")
        seconds, _ = _timed(lambda: load_omniglot("test", "vinyals", cache=cache))
        report("omniglot_vinyals_test_split_s", seconds, "s", "cached, with the 4 rotations")

    train_data = load_omniglot("train", "vinyals")
    test_data = load_omniglot("test", "vinyals")
    torch.manual_seed(0)
    method = PrototypicalNetwork()
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    sampler = EpisodeSampler(train_data, 60, 1, 5)
    steps = 10 if args.quick else 60

    def step(index: int) -> None:
        loss, _ = method.loss(sampler.episode(index))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for index in range(3):  # warm-up
        step(index)
    seconds, _ = _timed(lambda: [step(i) for i in range(3, 3 + steps)])
    report("protonet_train_60way_1shot_episodes_per_s", steps / seconds, "episodes/s",
           "60-way 1-shot, 5 queries per class (360 images), Adam step included")

    try:
        trained, _ = load_checkpoint("protonet-omniglot")
        which = "shipped protonet-omniglot"
    except ValueError:
        trained, which = method.eval(), "untrained ProtoNet"
    episodes = 200 if args.quick else 1000
    for n_way in (5, 20):
        seconds, result = _timed(lambda n=n_way: evaluate(trained, test_data, n, 1, 15, episodes))
        report(f"evaluate_{episodes}_episodes_{n_way}way_1shot_s", seconds, "s",
               f"{which}, embeds each test image once; accuracy {100 * result.accuracy:.2f}%")
    direct = 20 if args.quick else 100
    seconds, _ = _timed(lambda: evaluate(trained, test_data, 20, 1, 15, direct,
                                         embed_once=False))
    report(f"evaluate_{episodes}_episodes_20way_1shot_per_episode_embedding_s",
           seconds * episodes / direct, "s",
           f"extrapolated from {direct} episodes, embedding every episode's images")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
