"""Training on two processes (gloo, CPU) is the same run as on one: equal weights for every kind
of batch (episodes with batch norm over the whole step, second-order MAML with both engines,
Reptile, a labelled mini-batch with synchronised batch norm, sequence episodes), and an
interrupted two-process run resumes to the same weights.

Tolerance: float32 sums taken in another order (each rank's mean over its half, then the mean
of the two; batch-norm statistics from all-reduced sums) differ from one process's in the last
bits; after four steps the weights agree to ``atol=2e-5, rtol=1e-4``. (A max-pool whose two
largest inputs are within such round-off of each other can route a gradient elsewhere and make
a larger, legitimate difference: the Conv4s here are narrow, 8 channels, so that such near ties
are rare; the same split in float64 agrees to 1e-13.) The tests use SGD, whose step is
proportional to the gradient: Adam
divides by the root of its second moment, so a gradient that is zero up to round-off would
become a full-size step of either sign and the comparison would test round-off, not the split.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fslearn.backbones import Conv4
from fslearn.checkpoints import read_checkpoint
from fslearn.data.dataset import FewShotDataset
from fslearn.data.sequences import SequenceTasks
from fslearn.distributed import World
from fslearn.methods import build_method
from fslearn.training import TrainingConfig, train

ROOT = Path(__file__).resolve().parents[1]
SIZE = 16  # image side: a Conv4 on 16x16 images ends on 1x1
COMMON = dict(optimizer="sgd", lr=0.05, lr_step=2, lr_gamma=0.5, val_every=0, checkpoint_every=2,
              seed=5)


def _images(classes: int = 10, per_class: int = 4, size: int = SIZE) -> FewShotDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (classes * per_class, 1, size, size), generator=generator,
                           dtype=torch.uint8)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return FewShotDataset(images, labels, [f"c{i}" for i in range(classes)], "noise")


#: name -> (method, its constructor arguments, training config, data kind); each step's work
#: (tasks, images, sequences) is even so that two processes split it
RUNS: dict[str, tuple[str, dict[str, Any], dict[str, Any], str]] = {
    "protonet": ("protonet", dict(backbone=8), dict(n_way=3, k_shot=1, n_query=2, batch_size=4),
                 "images"),
    "maml-loop": ("maml", dict(n_way=3, image_size=SIZE, hidden_channels=8, engine="loop"),
                  dict(n_way=3, k_shot=1, n_query=2, batch_size=4), "images"),
    "maml-vmap": ("maml", dict(n_way=3, image_size=SIZE, hidden_channels=8, engine="vmap"),
                  dict(n_way=3, k_shot=1, n_query=2, batch_size=4), "images"),
    # the inner steps in SGD too (see the module docstring): Reptile's default inner Adam turns
    # the round-off gradient of a convolution bias that feeds batch norm into full-size steps
    "reptile": ("reptile", dict(n_way=3, image_size=SIZE, hidden_channels=8, inner_steps=2,
                                inner_batch=2, inner_optimizer="sgd"),
                dict(n_way=3, k_shot=2, n_query=1, batch_size=4), "images"),
    "baseline": ("baseline", dict(num_classes=10, image_size=SIZE, backbone=8),
                 dict(batch_size=8), "images"),
    "mann": ("mann", dict(controller_size=6, memory_slots=6, memory_width=3, read_heads=2),
             dict(n_way=3, per_class=3, batch_size=4), "sequences"),
}
EPISODES, CRASH_AFTER = 4, 2


def _data(kind: str) -> FewShotDataset | SequenceTasks:
    if kind == "sequences":
        return SequenceTasks(_images(size=4), image_size=4)
    return _images()


def _method(name: str, seed: int) -> Any:
    method_name, kwargs, _, kind = RUNS[name]
    if kind == "sequences":
        inputs, outputs = _data(kind).model_shape(3, "one_hot")
        kwargs = {**kwargs, "input_features": inputs, "num_outputs": outputs}
    torch.manual_seed(seed)
    if "backbone" in kwargs:  # a narrow Conv4: fewer max-pool windows that could nearly tie
        kwargs = {**kwargs, "backbone": Conv4(1, kwargs["backbone"])}
    return build_method(method_name, **kwargs)


def _config(name: str) -> TrainingConfig:
    return TrainingConfig(episodes=EPISODES, **COMMON, **RUNS[name][2])


class _Crash(Exception):
    pass


def _crash(done: int, loss: float) -> None:
    if done == CRASH_AFTER + 1:
        raise _Crash


def _rank(rank: int, size: int, port: int, folder: str) -> None:
    """One process of the run: every method straight, and interrupted then resumed."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    try:
        for name in RUNS:
            data, config = _data(RUNS[name][3]), _config(name)
            method = _method(name, 3)
            train(method, data, config, Path(folder) / name / "straight", progress=False,
                  device="cpu")
            # every rank ends with the same weights
            torch.save(method.state_dict(), Path(folder) / name / f"rank{rank}.pt")
            with contextlib.suppress(_Crash):  # every rank stops after step CRASH_AFTER + 1
                train(_method(name, 3), data, config, Path(folder) / name / "resumed",
                      progress=False, device="cpu", callback=_crash)
            train(_method(name, 99), data, config, Path(folder) / name / "resumed",
                  progress=False, device="cpu")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("two")
    mp.spawn(_rank, args=(2, _free_port(), str(folder)), nprocs=2, join=True)
    return folder


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {name: value for name, value in read_checkpoint(folder).tensors.items()
            if name.startswith("model.")}


@pytest.mark.parametrize("name", list(RUNS))
def test_two_processes_end_with_the_weights_of_one(name, two_processes, tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    one = train(_method(name, 3), _data(RUNS[name][3]), _config(name), tmp_path, progress=False,
                device="cpu")
    mine, theirs = _weights(one.last), _weights(two_processes / name / "straight" / "last")
    assert mine.keys() == theirs.keys()
    for key in mine:
        torch.testing.assert_close(theirs[key], mine[key], atol=2e-5, rtol=1e-4,
                                   msg=lambda m, key=key: f"{name} {key}: {m}")
    ranks = [torch.load(two_processes / name / f"rank{r}.pt") for r in range(2)]
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), f"{name}: ranks differ on {key}"


@pytest.mark.parametrize("name", list(RUNS))
def test_an_interrupted_two_process_run_resumes_to_the_same_weights(name, two_processes):
    straight = _weights(two_processes / name / "straight" / "last")
    resumed = _weights(two_processes / name / "resumed" / "last")
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), f"{name}: {key} differs"


def test_a_step_that_does_not_split_evenly_is_refused():
    episode = _images().select_classes(range(3))  # any dataclass of tensors would do
    world = World(rank=0, size=3)
    from fslearn.data.episodes import EpisodeSampler

    batch = EpisodeSampler(episode, 3, 1, 1, tasks=4, seed=0).episode(0)
    with pytest.raises(ValueError, match=r"4 tasks.*3 processes.*multiple of 3"):
        world.shard(batch)
    assert world.shard(EpisodeSampler(episode, 3, 1, 1, tasks=6, seed=0).episode(0)).tasks == 2


#: the book's command (book/chapters/more_than_one_machine.ipynb), tiny: 2 steps of 2 tasks
TORCHRUN_TRAIN = ["train", "protonet", "--way", "5", "--shot", "1", "--query", "2", "--tasks",
                  "2", "--episodes", "2", "--optimizer", "sgd", "--lr", "0.05",
                  "--val-split", "none", "--checkpoint-every", "2", "--seed", "0",
                  "--threads", "1", "--no-progress"]
TORCHRUN_TIMEOUT_S = 120


def _fslearn(launcher: list[str], out: Path) -> subprocess.CompletedProcess[str]:
    """``LAUNCHER -m fslearn train protonet ... --out OUT`` on real Omniglot, this checkout's
    package first on the path."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    env.pop("WORLD_SIZE", None)
    try:
        return subprocess.run([sys.executable, *launcher, "-m", "fslearn", *TORCHRUN_TRAIN,
                               "--out", str(out)], env=env, capture_output=True, text=True,
                              timeout=TORCHRUN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{' '.join(launcher) or 'python'} -m fslearn train took more than "
                    f"{TORCHRUN_TIMEOUT_S} s:\n{error.stderr}")


@pytest.mark.skipif(not dist.is_available(), reason="this PyTorch build has no "
                    "torch.distributed (torchrun needs it)")
def test_the_torchrun_command_trains_as_one_process_does(omniglot_root, tmp_path):
    """``torchrun --standalone --nproc-per-node=2 -m fslearn train ...`` as the book writes it
    (``python -m torch.distributed.run`` is the ``torchrun`` executable; --standalone picks a
    free port): exit status 0, one checkpoint written by rank 0 that records 2 processes, and
    the weights of one process doing the same 2 steps of 2 tasks (tolerance as above)."""
    two = _fslearn(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"],
                   tmp_path / "two")
    assert two.returncode == 0, f"torchrun exited with {two.returncode}:\n{two.stderr[-4000:]}"
    one = _fslearn([], tmp_path / "one")
    assert one.returncode == 0, f"one process exited with {one.returncode}:\n{one.stderr}"
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())
    checkpoint = read_checkpoint(tmp_path / "two" / "last")
    assert checkpoint.metadata["processes"] == 2
    assert checkpoint.metadata["episode"] == 2
    assert "processes" not in read_checkpoint(tmp_path / "one" / "last").metadata
    mine, theirs = _weights(tmp_path / "one" / "last"), _weights(tmp_path / "two" / "last")
    assert mine.keys() == theirs.keys()
    for key in mine:
        # a convolution's bias that feeds batch norm has a zero gradient (the norm subtracts
        # the mean): what moves it is float32 round-off of sums over 64 channels of 28x28 maps,
        # which any other order of summation changes (lr 0.05 times ~1e-3), so it is only
        # checked not to move by more than round-off could
        feeds_norm = key.endswith(".0.bias") and key[:-len("0.bias")] + "1.running_mean" in mine
        atol = 3e-4 if feeds_norm else 2e-5
        torch.testing.assert_close(theirs[key], mine[key], atol=atol, rtol=1e-4,
                                   msg=lambda m, key=key: f"{key}: {m}")
    assert two.stdout.count("Done: 2 episodes") == 1  # rank 0 alone speaks


def test_process_count_joins_nothing_and_reads_the_group(monkeypatch):
    from fslearn.distributed import process_count

    monkeypatch.setenv("WORLD_SIZE", "4")  # torchrun's variable alone joins no group
    assert process_count() == 1 and not torch.distributed.is_initialized()
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 3)
    assert process_count() == 3
