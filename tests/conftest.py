"""Shared fixtures. Tests read the shared copy of Omniglot and never touch the network."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from fslearn.data import FewShotDataset, load_omniglot

REPO = Path(__file__).resolve().parents[1]
SHARED_OMNIGLOT = REPO.parent / "shared" / "data" / "omniglot"

if not os.environ.get("FSLEARN_DATA") and SHARED_OMNIGLOT.is_dir():
    os.environ["FSLEARN_DATA"] = str(SHARED_OMNIGLOT)
os.environ.setdefault("FSLEARN_CACHE", str(REPO / ".cache" / "fslearn"))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never reach beyond this machine: any connection off loopback fails at once."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1")):
            raise OSError(f"tests may not use the network (tried {host})")
        return real_connect(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1")):
            raise socket.gaierror(f"tests may not use the network (looked up {host})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture(scope="session")
def omniglot_root() -> Path:
    root = Path(os.environ["FSLEARN_DATA"])
    if not (root / "images_background.zip").is_file() and not (root / "omniglot").is_dir():
        pytest.fail(f"Omniglot is not at {root}: set FSLEARN_DATA to the shared copy "
                    f"(../shared/data/omniglot).")
    return root


@pytest.fixture(scope="session")
def omniglot_test(omniglot_root: Path) -> FewShotDataset:
    return load_omniglot("test", "vinyals", root=omniglot_root)


@pytest.fixture(scope="session")
def omniglot_val(omniglot_root: Path) -> FewShotDataset:
    return load_omniglot("val", "vinyals", root=omniglot_root)


@pytest.fixture(scope="session")
def omniglot_small(omniglot_val: FewShotDataset) -> FewShotDataset:
    """80 validation classes: real images, small enough for many quick training runs."""
    return omniglot_val.select_classes(range(0, 688, 8)[:80])


def make_dataset(counts: list[int], image_size: int = 4, channels: int = 1) -> FewShotDataset:
    """A synthetic dataset whose every image encodes its own index (pixel [0, 0, 0] = index
    mod 256, pixel [0, 0, 1] = index // 256), so tests can tell which image they got."""
    total = sum(counts)
    images = torch.zeros(total, channels, image_size, image_size, dtype=torch.uint8)
    index = torch.arange(total)
    images[:, 0, 0, 0] = (index % 256).to(torch.uint8)
    images[:, 0, 0, 1] = (index // 256).to(torch.uint8)
    labels = torch.cat([torch.full((c,), i, dtype=torch.long) for i, c in enumerate(counts)])
    return FewShotDataset(images, labels, [f"class{i}" for i in range(len(counts))], "synthetic")


def train_interrupted_and_straight(make_method: Callable[[int], Any], data: Any, config: Any,
                                   folder: Path, val: Any, crash_after: int) -> tuple[Any, Any]:
    """Train the same run twice, once straight through and once crashed after ``crash_after``
    steps and resumed by a freshly initialised method (as a new process would), and check that
    both end with the same ``last`` and ``best`` weights and the same history.

    ``make_method(seed)`` builds the method; the resumed run gets another seed so that only the
    state read from disk can make it equal. Returns the two :class:`TrainingResult` (straight,
    resumed) for the caller's own checks.
    """
    from fslearn.checkpoints import load_checkpoint, read_checkpoint
    from fslearn.training import train

    straight = train(make_method(3), data, config, folder / "straight", val, progress=False,
                     device="cpu")

    class Crash(Exception):
        pass

    def crash(done: int, loss: float) -> None:
        if done == crash_after + 1:
            raise Crash

    with pytest.raises(Crash):
        train(make_method(3), data, config, folder / "resumed", val, progress=False,
              device="cpu", callback=crash)
    assert read_checkpoint(folder / "resumed" / "last").metadata["episode"] == crash_after
    resumed = train(make_method(99), data, config, folder / "resumed", val, progress=False,
                    device="cpu")
    for part in ("last", "best"):
        a = load_checkpoint(folder / "straight" / part)[0].state_dict()
        b = load_checkpoint(folder / "resumed" / part)[0].state_dict()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{part}: {key} differs"
    assert resumed.history == straight.history
    assert resumed.best_val_accuracy == straight.best_val_accuracy
    assert resumed.episodes == straight.episodes == config.episodes
    return straight, resumed


def shipped_training_record(name: str, method_name: str) -> tuple[Path, dict]:
    """The shipped checkpoint ``name``'s folder and record, after what every shipped training
    run must show: a ``method_name`` trained by ``fslearn train method_name``, kept at a
    validation step (chosen on validation), with its provenance and at least five validations
    in its history."""
    import json

    from fslearn.checkpoints import load_checkpoint, shipped_checkpoints

    folder = shipped_checkpoints()[name]
    method, record = load_checkpoint(folder)
    assert method.name == method_name
    assert record["command"].startswith(f"fslearn train {method_name} ")
    config = record["config"]
    assert config["val_every"] > 0 and record["episode"] % config["val_every"] == 0
    assert {"seed", "hardware", "training_seconds", "device"} <= set(record)
    history = json.loads((folder / "history.json").read_text())
    assert sum("val_accuracy" in h for h in history) >= 5
    return folder, record


def shipped_figures_reproduced(name: str, settings: set[tuple[int, int]], episodes: int,
                               tolerance: float) -> dict[tuple[int, int], dict]:
    """The stored test figures of the shipped ``name`` by (n_way, k_shot), after checking that
    they are its ``settings`` over 1000 episodes each and that the first ``episodes`` 5-way
    1-shot test episodes, evaluated again, agree with the stored mean within ``tolerance``."""
    import json

    from fslearn.checkpoints import load_checkpoint, shipped_checkpoints
    from fslearn.evaluation import evaluate

    folder = shipped_checkpoints()[name]
    method, _ = load_checkpoint(folder)
    stored = json.loads((folder / "results.json").read_text())
    rows = {(r["n_way"], r["k_shot"]): r for r in stored["results"]}
    assert set(rows) == settings
    assert all(r["episodes"] == 1000 for r in rows.values())
    again = evaluate(method, load_omniglot("test", protocol="vinyals"), 5, 1, n_query=15,
                     episodes=episodes, seed=0)
    assert abs(again.accuracy - rows[(5, 1)]["accuracy"]) < tolerance
    return rows


def load_tool(name: str) -> ModuleType:
    """The script tools/NAME.py imported as a module (registered under NAME, so that its
    dataclasses resolve), for tests of the repository's own tools."""
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
