"""One episodic training loop for every method.

Each step draws episode ``i`` from an :class:`~fslearn.data.EpisodeSampler`, computes the method's
loss on its queries and takes an optimizer step. Every ``checkpoint_every`` episodes the full
training state (weights, optimizer, random number generator, history) is saved to
``out_dir/last``; every ``val_every`` episodes the method is evaluated on validation episodes and
the best one so far is saved to ``out_dir/best``.

Resuming: episode ``i`` depends only on the seed and ``i``, the learning rate only on ``i``, and
the saved state holds everything else, so a run that is interrupted and resumed ends with exactly
the weights of a run that was never interrupted (tested).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from fslearn.checkpoints import METADATA_FILE, read_checkpoint, save_checkpoint
from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import EpisodeSampler
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.evaluation import evaluate
from fslearn.methods.base import FewShotMethod

__all__ = ["LR_SCHEDULES", "OPTIMIZERS", "TrainingConfig", "TrainingResult", "learning_rate",
           "train"]

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("step", "linear")


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of an episodic training run (defaults: Snell et al.'s Omniglot setup).

    Attributes:
        n_way, k_shot, n_query, tasks: shape of the training episodes.
        episodes: total number of training episodes (optimizer steps).
        lr: initial learning rate; with ``lr_schedule="step"`` multiplied by ``lr_gamma`` every
            ``lr_step`` episodes, with ``"linear"`` annealed linearly to 0 at the last episode
            (Reptile's outer step size).
        weight_decay: weight decay.
        optimizer: ``"adam"`` or ``"sgd"`` (plain gradient steps: Reptile's outer update).
        val_every: validate every this many episodes (0: never; the last state is the best).
        val_episodes, val_way, val_shot, val_query: the validation episodes (``val_shot=None``
            means ``k_shot``); the same episodes every time, so validations are comparable.
        checkpoint_every: save the resumable state every this many episodes.
        seed: initial weights (set by the caller), training and validation episodes.
    """

    n_way: int = 60
    k_shot: int = 1
    n_query: int = 5
    tasks: int = 1
    episodes: int = 20_000
    lr: float = 1e-3
    lr_step: int = 2_000
    lr_gamma: float = 0.5
    weight_decay: float = 0.0
    optimizer: str = "adam"
    lr_schedule: str = "step"
    val_every: int = 1_000
    val_episodes: int = 600
    val_way: int = 5
    val_shot: int | None = None
    val_query: int = 15
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("n_way", "k_shot", "n_query", "tasks", "episodes", "lr_step",
                    "val_episodes", "val_way", "val_query", "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainingConfig.{name} must be a positive integer, got "
                                 f"{value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainingConfig.optimizer must be one of {', '.join(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"TrainingConfig.lr_schedule must be one of "
                             f"{', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.val_every < 0:
            raise ValueError(f"TrainingConfig.val_every must be >= 0, got {self.val_every}")
        if not self.lr > 0 or not 0 < self.lr_gamma <= 1:
            raise ValueError(f"lr must be > 0 and lr_gamma in (0, 1], got lr={self.lr}, "
                             f"lr_gamma={self.lr_gamma}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown training config keys {sorted(unknown)}")
        return cls(**values)


def learning_rate(config: TrainingConfig, episode: int) -> float:
    """Step decay, ``lr * lr_gamma ** (episode // lr_step)``, or linear annealing,
    ``lr * (1 - episode / episodes)``."""
    if config.lr_schedule == "linear":
        return config.lr * (1 - episode / config.episodes)
    return config.lr * config.lr_gamma ** (episode // config.lr_step)


@dataclass
class TrainingResult:
    """Where the checkpoints are and what happened."""

    out_dir: Path
    best: Path
    last: Path
    episodes: int
    best_val_accuracy: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    training_seconds: float = 0.0


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimizer state into safetensors-storable tensors and JSON-storable rest."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, record: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in record["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": record["param_groups"]})


def train(
    method: FewShotMethod,
    train_data: FewShotDataset | SinusoidRegression,
    config: TrainingConfig,
    out_dir: str | Path,
    val_data: FewShotDataset | None = None,
    *,
    resume: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
    record: dict[str, Any] | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> TrainingResult:
    """Train ``method`` episodically; resumable, with validation and a best checkpoint.

    Args:
        method: the model to train (initialise it after ``torch.manual_seed(config.seed)`` for a
            reproducible run).
        train_data: training classes, or a task distribution with a ``sampler(k_shot, n_query,
            tasks, seed)`` method such as :class:`~fslearn.data.sinusoid.SinusoidRegression`
            (regression: no accuracy is logged, and no validation yet).
        config: the run's hyper-parameters.
        out_dir: where ``last/`` (resumable state) and ``best/`` (best validation) go.
        val_data: validation classes; without them (or with ``val_every=0``) ``best`` is the
            final state.
        resume: continue from ``out_dir/last`` if it exists (its config must match, except
            ``episodes``, which may grow).
        device: ``"cpu"``, ``"cuda"``...; default: CUDA when available.
        progress: show a progress bar.
        record: extra JSON facts stored in every checkpoint (data, command, hardware...).
        callback: called as ``callback(episodes_done, loss)`` after every step.
    """
    out_dir = Path(out_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    method.to(device)
    if not any(p.requires_grad for p in method.parameters()):
        raise ValueError(
            f"{type(method).__name__} has no trainable parameters, so there is nothing to "
            f"train: evaluate it directly (fslearn.evaluate, or build it and call evaluate)."
        )
    optimizer_class = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
    optimizer = optimizer_class(method.parameters(), lr=config.lr,
                                weight_decay=config.weight_decay)
    validate = val_data is not None and config.val_every > 0
    if isinstance(train_data, FewShotDataset):
        sampler = EpisodeSampler(train_data, config.n_way, config.k_shot, config.n_query,
                                 tasks=config.tasks, seed=config.seed)
    else:
        sampler = train_data.sampler(config.k_shot, config.n_query, config.tasks, config.seed)
    if validate and not isinstance(val_data, FewShotDataset):
        raise ValueError("Validation needs a FewShotDataset of classes; regression runs train "
                         "for a fixed number of episodes (val_every=0).")
    if validate:  # fail now, not after the first thousand episodes
        EpisodeSampler(val_data, config.val_way, config.val_shot or config.k_shot,
                       config.val_query)
    progress_state: dict[str, Any] = {"episode": 0, "best_val_accuracy": None,
                                      "best_episode": None, "history": [],
                                      "training_seconds": 0.0}
    last_dir, best_dir = out_dir / "last", out_dir / "best"
    if resume and (last_dir / METADATA_FILE).is_file():
        progress_state = _resume(method, optimizer, last_dir, config, device)

    def save(folder: Path, with_state: bool, metrics: dict[str, Any]) -> None:
        extra, optimizer_record = {}, None
        if with_state:
            extra, optimizer_record = _optimizer_tensors(optimizer)
            extra["rng.torch"] = torch.get_rng_state()
        save_checkpoint(folder, method, {
            "config": config.to_dict(),
            "seed": config.seed,
            **(record or {}),
            "episode": progress_state["episode"],
            "metrics": metrics,
            "device": str(device),
            "training_seconds": round(progress_state["training_seconds"], 1),
            **({"training_state": {**progress_state, "optimizer": optimizer_record}}
               if with_state else {}),
        }, extra)

    window_loss = window_correct = window_total = 0.0
    start_episode = progress_state["episode"]
    bar = tqdm(total=config.episodes, initial=start_episode, disable=not progress,
               desc=f"train {method.name}", dynamic_ncols=True)
    clock = time.perf_counter()
    method.train()
    with bar:
        for index in range(start_episode, config.episodes):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, index)
            episode = sampler.episode(index).to(device)
            optimizer.zero_grad(set_to_none=True)
            loss, logits = method.training_step(episode)
            optimizer.step()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"The training loss became {loss_value} at episode {index}; lower the "
                    f"learning rate (now {learning_rate(config, index):g})."
                )
            window_loss += loss_value
            if not episode.query_y.is_floating_point():  # classification
                window_correct += float((logits.argmax(-1) == episode.query_y).sum())
                window_total += episode.query_y.numel()
            done = index + 1
            progress_state["episode"] = done
            bar.update(1)
            if callback is not None:
                callback(done, loss_value)
            is_val = validate and (done % config.val_every == 0 or done == config.episodes)
            if not (is_val or done % config.checkpoint_every == 0 or done == config.episodes):
                continue
            now = time.perf_counter()
            progress_state["training_seconds"] += now - clock
            entry: dict[str, Any] = {
                "episode": done,
                "lr": learning_rate(config, index),
                "train_loss": window_loss / max(1, done - _last_logged(progress_state)),
                "train_accuracy": window_correct / window_total if window_total else None,
            }
            window_loss = window_correct = window_total = 0.0
            if is_val:
                result = evaluate(method, val_data, config.val_way,
                                  config.val_shot or config.k_shot, config.val_query,
                                  config.val_episodes, seed=config.seed, device=device)
                method.train()
                entry.update(val_accuracy=result.accuracy, val_ci95=result.ci95)
                best = progress_state["best_val_accuracy"]
                if best is None or result.accuracy > best:
                    progress_state["best_val_accuracy"] = result.accuracy
                    progress_state["best_episode"] = done
                    save(best_dir, False, {"val": result.to_dict()})
                bar.set_postfix(loss=f"{entry['train_loss']:.3f}",
                                val=f"{100 * result.accuracy:.2f}%")
            else:
                bar.set_postfix(loss=f"{entry['train_loss']:.3f}")
            progress_state["history"].append(entry)
            save(last_dir, True, {"train": entry})
            clock = time.perf_counter()
    if not validate and progress_state["episode"] == config.episodes:
        save(best_dir, False, {"train": progress_state["history"][-1]}
             if progress_state["history"] else {})
    return TrainingResult(
        out_dir=out_dir,
        best=best_dir,
        last=last_dir,
        episodes=progress_state["episode"],
        best_val_accuracy=progress_state["best_val_accuracy"],
        history=progress_state["history"],
        training_seconds=progress_state["training_seconds"],
    )


def _last_logged(progress_state: dict[str, Any]) -> int:
    history = progress_state["history"]
    return history[-1]["episode"] if history else 0


def _resume(method: FewShotMethod, optimizer: torch.optim.Optimizer, last_dir: Path,
            config: TrainingConfig, device: torch.device) -> dict[str, Any]:
    checkpoint = read_checkpoint(last_dir)
    # a run saved before a config field existed had that field's default
    defaults = {f.name: f.default for f in fields(TrainingConfig)}
    saved = {**defaults, **checkpoint.metadata.get("config", {})}
    mine = config.to_dict()
    saved.pop("episodes", None)
    mine.pop("episodes")
    if saved != mine:
        changed = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
        raise ValueError(
            f"{last_dir.parent} holds a run with another config (saved, requested): "
            f"{json.dumps(changed)}. Train into a new folder, or pass resume=False "
            f"(--no-resume) to start over there."
        )
    if checkpoint.metadata.get("method") != method.name:
        raise ValueError(f"{last_dir} was trained with {checkpoint.metadata.get('method')!r}, "
                         f"not {method.name!r}.")
    weights = {k.removeprefix("model."): v for k, v in checkpoint.tensors.items()
               if k.startswith("model.")}
    method.load_state_dict(weights, strict=True)
    method.to(device)
    state = checkpoint.metadata["training_state"]
    _restore_optimizer(optimizer, checkpoint.tensors, state.pop("optimizer"))
    torch.set_rng_state(checkpoint.tensors["rng.torch"])
    return state
