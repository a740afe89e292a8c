"""One training loop for every method.

Each step draws batch ``i`` from a sampler, computes the method's loss on it and takes an
optimizer step. The sampler is the method's own
(:meth:`~fslearn.methods.FewShotMethod.training_sampler`: pairs or triplets of a dataset's
images, labelled mini-batches, sequence episodes of
:class:`~fslearn.data.sequences.SequenceTasks`), sized by ``TrainingConfig.batch_size`` and set by
``TrainingConfig.sampler``, or else an :class:`~fslearn.data.EpisodeSampler` over a dataset's
classes (support and query sets) or a task distribution's own sampler (sinusoid regression),
``batch_size`` episodes or tasks per step; the method scores its own outputs
(:meth:`~fslearn.methods.FewShotMethod.correct`), and validation uses the evaluation that fits
the episodes (N-way K-shot test episodes for every method that classifies a support set's
classes, however it was trained). Every ``checkpoint_every`` episodes the full
training state (weights, optimizer, random number generator, history) is saved to
``out_dir/last``; every ``val_every`` episodes the method is evaluated on validation episodes and
the best one so far is saved to ``out_dir/best``.

Resuming: episode ``i`` depends only on the seed and ``i``, the learning rate only on ``i``, and
the saved state holds everything else, so a run that is interrupted and resumed ends with exactly
the weights of a run that was never interrupted (tested).

Several processes (``torchrun``): every rank draws batch ``i`` whole and trains on its share, and
the gradients are averaged once per step (:mod:`fslearn.distributed`), so the run ends with the
one-process run's weights up to float32 round-off (tested with 2 processes).
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from fslearn.checkpoints import METADATA_FILE, read_checkpoint, save_checkpoint
from fslearn.data.dataset import FewShotDataset
from fslearn.data.episodes import EpisodeSampler
from fslearn.data.sequences import SequenceSampler, SequenceTasks
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.distributed import World, sync_batch_norm, world
from fslearn.evaluation import EvaluationResult, SequenceResult, evaluate, evaluate_sequences
from fslearn.methods.base import BatchSampler, FewShotMethod
from fslearn.precision import check_precision, computing_in
from fslearn.training_config import (
    LR_SCHEDULES,
    OPTIMIZERS,
    TrainingConfig,
    config_from_record,
)

__all__ = ["LR_SCHEDULES", "OPTIMIZERS", "TrainingConfig", "TrainingResult", "config_from_record",
           "learning_rate", "train"]

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
    train_data: FewShotDataset | SinusoidRegression | SequenceTasks,
    config: TrainingConfig,
    out_dir: str | Path,
    val_data: FewShotDataset | SequenceTasks | None = None,
    *,
    resume: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
    record: dict[str, Any] | None = None,
    callback: Callable[[int, float], None] | None = None,
    precision: str = "float32",
) -> TrainingResult:
    """Train ``method`` episodically; resumable, with validation and a best checkpoint.

    Args:
        method: the model to train (initialise it after ``torch.manual_seed(config.seed)`` for a
            reproducible run).
        train_data: training classes, or a task distribution with a ``sampler(k_shot, n_query,
            tasks, seed)`` method such as :class:`~fslearn.data.sinusoid.SinusoidRegression`
            (regression: no accuracy is logged, and no validation yet), or classes as sequence
            episodes, :class:`~fslearn.data.sequences.SequenceTasks` (for a method that reads
            them, with their ``per_class`` in ``config.sampler``).
        config: the run's hyper-parameters.
        out_dir: where ``last/`` (resumable state) and ``best/`` (best validation) go.
        val_data: validation classes; without them (or with ``val_every=0``) ``best`` is the
            final state. For sequence episodes they are presented as the training classes are
            (unless given as :class:`~fslearn.data.sequences.SequenceTasks` themselves), and the
            best state is the one with the best accuracy over all steps.
        resume: continue from ``out_dir/last`` if it exists (its config must match, except
            ``episodes``, which may grow).
        device: ``"cpu"``, ``"cuda"``...; default: CUDA when available.
        progress: show a progress bar.
        record: extra JSON facts stored in every checkpoint (data, command, hardware...).
        callback: called as ``callback(episodes_done, loss)`` after every step.
        precision: ``"float32"``, or ``"bf16"`` where the device computes bfloat16 natively
            (:mod:`fslearn.precision`): training steps and validations run under autocast; the
            weights and the optimizer stay float32. Recorded in every checkpoint; a resumed
            run must keep it.
    """
    out_dir = Path(out_dir)
    ranks = world()  # one process unless started by torchrun (fslearn.distributed)
    device = ranks.device(device)
    check_precision(precision, device)
    if ranks.size > 1 and method.batch_statistics == "batch":
        sync_batch_norm(method)  # batch norm over the whole step's batch, as on one process
    method.to(device)
    _check_trainable(method, train_data)
    optimizer_class = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
    optimizer = optimizer_class(method.parameters(), lr=config.lr,
                                weight_decay=config.weight_decay)
    validate = val_data is not None and config.val_every > 0
    sampler = _training_sampler(method, train_data, config)
    validation = (_validation(method, train_data, sampler, val_data, config, device)
                  if validate else None)
    run = _Run(method, optimizer, config, device, record or {}, out_dir / "last",
               out_dir / "best", ranks, precision)
    if resume and (run.last_dir / METADATA_FILE).is_file():
        run.state = _resume(method, optimizer, run.last_dir, config, device, precision)
    ranks.barrier()  # every rank has read the saved state before rank 0 replaces it
    ranks.broadcast(method)
    run.loop(sampler, validation, progress and ranks.is_main, callback)
    state = run.state
    if not validate and state["episode"] == config.episodes and ranks.is_main:
        run.save(run.best_dir, False, {"train": state["history"][-1]}
                 if state["history"] else {})
    return TrainingResult(
        out_dir=out_dir,
        best=run.best_dir,
        last=run.last_dir,
        episodes=state["episode"],
        best_val_accuracy=state["best_val_accuracy"],
        history=state["history"],
        training_seconds=state["training_seconds"],
    )


def _check_trainable(method: FewShotMethod,
                     train_data: FewShotDataset | SinusoidRegression | SequenceTasks) -> None:
    """Refuse a method without trainable parameters, and training data of the wrong kind for
    the method's declared ``episode_kind`` (or, for a task distribution, its
    ``regression_hparams``)."""
    if not any(p.requires_grad for p in method.parameters()):
        raise ValueError(
            f"{type(method).__name__} has no trainable parameters, so there is nothing to "
            f"train: evaluate it directly (fslearn.evaluate, or build it and call evaluate)."
        )
    sequences = method.episode_kind == "sequences"  # declared by the method's class
    if sequences and not isinstance(train_data, SequenceTasks):
        raise ValueError(f"{type(method).__name__} learns from sequence episodes, so it trains "
                         f"on SequenceTasks, not on {type(train_data).__name__}.")
    if isinstance(train_data, SequenceTasks) and not sequences:
        raise ValueError(f"{type(method).__name__} does not read sequence episodes; train it on "
                         f"the classes themselves, not on SequenceTasks.")
    images = isinstance(train_data, FewShotDataset | SequenceTasks)
    if not images and method.regression_hparams is None:  # declared by the method's class
        raise ValueError(f"{type(method).__name__} classifies images, so it trains on a "
                         f"FewShotDataset of classes, not on {type(train_data).__name__} tasks.")


@dataclass
class _Window:
    """The training loss and accuracy since the last logged entry."""

    loss: float = 0.0
    correct: float = 0.0
    total: float = 0.0

    def add(self, loss: float, counts: tuple[int, int] | None) -> None:
        self.loss += loss
        if counts is not None:  # nothing to count in regression
            self.correct += counts[0]
            self.total += counts[1]


@dataclass
class _Run:
    """What the steps, the log and the checkpoints of one training run share. ``state`` is what
    a resumed run needs of the past (episodes done, best validation, history, time)."""

    method: FewShotMethod
    optimizer: torch.optim.Optimizer
    config: TrainingConfig
    device: torch.device
    record: dict[str, Any]
    last_dir: Path
    best_dir: Path
    world: World = field(default_factory=World)
    precision: str = "float32"
    state: dict[str, Any] = field(default_factory=lambda: {
        "episode": 0, "best_val_accuracy": None, "best_episode": None, "history": [],
        "training_seconds": 0.0})

    def save(self, folder: Path, with_state: bool, metrics: dict[str, Any]) -> None:
        """A checkpoint of the method; ``with_state``: resumable (optimizer, RNG, progress)."""
        extra, optimizer_record = {}, None
        if with_state:
            extra, optimizer_record = _optimizer_tensors(self.optimizer)
            extra["rng.torch"] = torch.get_rng_state()
        save_checkpoint(folder, self.method, {
            "config": self.config.to_dict(),
            "seed": self.config.seed,
            **self.record,
            "episode": self.state["episode"],
            "metrics": metrics,
            "device": str(self.device),
            "precision": self.precision,
            "training_seconds": round(self.state["training_seconds"], 1),
            **({"training_state": {**self.state, "optimizer": optimizer_record}}
               if with_state else {}),
        }, extra)

    def step(self, sampler: Any, index: int) -> tuple[float, tuple[int, int] | None]:
        """Optimizer step ``index`` on batch ``index``: its loss and right answers."""
        config, method = self.config, self.method
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, index)
        # every rank draws the whole batch i and keeps its share (one process: all of it)
        episode = self.world.shard(sampler.episode(index)).to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with computing_in(self.precision, self.device):
            loss, logits = method.training_step(episode)
        counts = method.correct(logits, episode)
        if self.world.size > 1:
            loss, counts = self._average(loss, counts)
        self.optimizer.step()
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"The training loss became {loss_value} at episode {index}; lower the "
                f"learning rate (now {learning_rate(config, index):g})."
            )
        return loss_value, counts

    def _average(self, loss: torch.Tensor, counts: tuple[int, int] | None
                 ) -> tuple[torch.Tensor, tuple[int, int] | None]:
        """The gradients, loss and right answers of all ranks' shares, averaged in the one
        all-reduce of the step (:meth:`~fslearn.distributed.World.average_gradients`)."""
        right, total = counts if counts is not None else (0, 0)
        extra = torch.tensor([float(loss.detach()), right, total], dtype=torch.float64)
        mean = self.world.average_gradients(list(self.method.parameters()), extra)
        assert mean is not None
        size = self.world.size
        return mean[0], (None if counts is None
                         else (round(float(mean[1]) * size), round(float(mean[2]) * size)))

    def loop(self, sampler: Any, validation: Callable[[FewShotMethod], Any] | None,
             progress: bool, callback: Callable[[int, float], None] | None) -> None:
        """Every step from the last saved one to ``config.episodes``, logged, validated and
        saved as the config says."""
        config, state = self.config, self.state
        window = _Window()
        start_episode = state["episode"]
        bar = tqdm(total=config.episodes, initial=start_episode, disable=not progress,
                   desc=f"train {self.method.name}", dynamic_ncols=True)
        clock = time.perf_counter()
        self.method.train()
        with bar:
            for index in range(start_episode, config.episodes):
                loss_value, counts = self.step(sampler, index)
                window.add(loss_value, counts)
                done = index + 1
                state["episode"] = done
                bar.update(1)
                if callback is not None:
                    callback(done, loss_value)
                is_val = validation is not None and (done % config.val_every == 0
                                                     or done == config.episodes)
                if not (is_val or done % config.checkpoint_every == 0
                        or done == config.episodes):
                    continue
                state["training_seconds"] += time.perf_counter() - clock
                self.log(index, window, validation if is_val else None, bar)
                window = _Window()
                clock = time.perf_counter()

    def log(self, index: int, window: _Window,
            validation: Callable[[FewShotMethod], Any] | None, bar: Any) -> None:
        """Log the window since the last entry after step ``index``, validate if
        ``validation`` is given (saving a new best), and save the resumable state."""
        config, state, done = self.config, self.state, index + 1
        entry: dict[str, Any] = {
            "episode": done,
            "lr": learning_rate(config, index),
            "train_loss": window.loss / max(1, done - _last_logged(state)),
            "train_accuracy": window.correct / window.total if window.total else None,
        }
        if not self.world.is_main:  # rank 0 alone validates and writes; the others wait
            state["history"].append(entry)
            self.world.barrier()
            return
        if validation is not None:
            with computing_in(self.precision, self.device):
                result = validation(self.method)
            self.method.train()
            entry.update(val_accuracy=result.accuracy, val_ci95=result.ci95)
            if isinstance(result, SequenceResult):  # papers report sequences by presentation
                entry["val_by_presentation"] = result.by_presentation
            best = state["best_val_accuracy"]
            if best is None or result.accuracy > best:
                state["best_val_accuracy"] = result.accuracy
                state["best_episode"] = done
                self.save(self.best_dir, False, {"val": result.to_dict()})
            bar.set_postfix(loss=f"{entry['train_loss']:.3f}",
                            val=f"{100 * result.accuracy:.2f}%")
        else:
            bar.set_postfix(loss=f"{entry['train_loss']:.3f}")
        state["history"].append(entry)
        self.save(self.last_dir, True, {"train": entry})
        self.world.barrier()


def _training_sampler(method: FewShotMethod,
                      train_data: FewShotDataset | SinusoidRegression | SequenceTasks,
                      config: TrainingConfig) -> BatchSampler:
    """The sampler of training batches: the method's own, else episodes of a dataset's classes
    or a task distribution's tasks. Batch ``i`` is a pure function of ``(seed, i)``."""
    unread = [name for name in config.sampler if name not in method.sampler_settings]
    if unread:
        reads = ", ".join(method.sampler_settings) or "none"
        raise ValueError(f"TrainingConfig.sampler sets {', '.join(unread)}, which the sampler of "
                         f"{method.name}'s training batches does not read (its settings: "
                         f"{reads}): leave {'it' if len(unread) == 1 else 'them'} out.")
    own = method.training_sampler(train_data, config)
    if own is not None:
        return own
    tasks = config.batch_size or 1
    if isinstance(train_data, FewShotDataset):
        return EpisodeSampler(train_data, config.n_way, config.k_shot, config.n_query,
                              tasks=tasks, seed=config.seed)
    return train_data.sampler(config.k_shot, config.n_query, tasks, config.seed)


def _validation(method: FewShotMethod,
                train_data: FewShotDataset | SinusoidRegression | SequenceTasks,
                sampler: BatchSampler, val_data: FewShotDataset | SequenceTasks | None,
                config: TrainingConfig, device: torch.device
                ) -> Callable[[FewShotMethod], EvaluationResult | SequenceResult]:
    """The validation of this run, as a function of the method: the same episodes every time.
    Impossible validation episodes fail here, not after the first thousand training episodes.
    Sequence episodes are validated as the training ones are shaped (``sampler``'s)."""
    if isinstance(train_data, SequenceTasks) and isinstance(sampler, SequenceSampler):
        tasks = (val_data if isinstance(val_data, SequenceTasks)
                 else train_data.with_dataset(val_data) if isinstance(val_data, FewShotDataset)
                 else None)
        if tasks is None:
            raise ValueError("Validation of sequence episodes needs a FewShotDataset of classes "
                             "(or SequenceTasks).")
        per_class, labels = sampler.per_class, sampler.labels
        tasks.sampler(config.val_way, per_class, 1, labels=labels)
        shape = tasks.model_shape(config.val_way, labels)
        built = (method.hparams.get("input_features"), method.hparams.get("num_outputs"))
        if built != shape:
            raise ValueError(f"{method.name} was built for {built[0]} input features and "
                             f"{built[1]} outputs, but the {config.val_way}-way validation "
                             f"episodes need {shape[0]} and {shape[1]}: validate on episodes "
                             f"of the training shape (val_way={config.n_way}).")
        return lambda model: evaluate_sequences(
            model, tasks, config.val_way, per_class, labels, config.val_episodes,
            seed=config.seed, device=device)
    if not isinstance(val_data, FewShotDataset):
        raise ValueError("Validation needs a FewShotDataset of classes; regression runs train "
                         "for a fixed number of episodes (val_every=0).")
    classes, k_shot = val_data, config.val_shot or config.k_shot
    # Names the validation's own options (TrainingConfig fields and CLI flags): the training
    # episodes' k_shot and n_query are not the ones to change when validation fails.
    EpisodeSampler(classes, config.val_way, k_shot, config.val_query, option_names=(
        "val_way (--val-way)", "val_shot (--val-shot)", "val_query (--val-query)"))
    return lambda model: evaluate(model, classes, config.val_way, k_shot, config.val_query,
                                   config.val_episodes, seed=config.seed, device=device)


def _last_logged(progress_state: dict[str, Any]) -> int:
    history = progress_state["history"]
    return history[-1]["episode"] if history else 0


def _comparable(config: TrainingConfig) -> dict[str, Any]:
    """What a resumed run must share with the saved one, by name (the sampler's settings
    among the fields, which they may not shadow): all but ``episodes``, which may grow. A
    ``batch_size`` of None is one episode or task per step, the only runs that train with it."""
    values = config.to_dict()
    del values["episodes"]
    values["batch_size"] = values["batch_size"] or 1
    return {**values.pop("sampler"), **values}


def _resume(method: FewShotMethod, optimizer: torch.optim.Optimizer, last_dir: Path,
            config: TrainingConfig, device: torch.device, precision: str) -> dict[str, Any]:
    checkpoint = read_checkpoint(last_dir)
    saved_precision = checkpoint.metadata.get("precision", "float32")  # older runs: float32
    if saved_precision != precision:
        raise ValueError(f"{last_dir.parent} holds a run trained in {saved_precision}, not "
                         f"{precision}: resume it with --precision {saved_precision}, or train "
                         f"into a new folder.")
    # a record of any age: the fields it lacks had their defaults, old fields are mapped
    saved = _comparable(config_from_record(checkpoint.metadata.get("config", {})))
    mine = _comparable(config)
    if saved != mine:
        changed = {k: (saved.get(k), mine.get(k)) for k in {**saved, **mine}
                   if saved.get(k) != mine.get(k)}
        raise ValueError(
            f"{last_dir.parent} holds a run with another config (saved, requested): "
            f"{json.dumps(changed)}. Train into a new folder, or pass resume=False "
            f"(--no-resume) to start over there."
        )
    if checkpoint.metadata.get("method") != method.name:
        raise ValueError(f"{last_dir} was trained with {checkpoint.metadata.get('method')!r}, "
                         f"not {method.name!r}.")
    # the method's hyper-parameters too (a Siamese network's loss decides whether it draws
    # pairs or triplets); records written before they were stored pass
    built = json.loads(json.dumps(method.hparams))
    # a run saved before a hyper-parameter existed was built with its default
    signature = inspect.signature(type(method).__init__).parameters
    defaults = {name: p.default for name, p in signature.items()
                if p.default is not inspect.Parameter.empty}
    saved_hparams = checkpoint.metadata.get("hparams", built)
    missing = (built.keys() - saved_hparams.keys()) & defaults.keys()
    saved_hparams = {**{k: json.loads(json.dumps(defaults[k], default=str)) for k in missing},
                     **saved_hparams}
    if saved_hparams != built:
        changed = {k: (saved_hparams.get(k), built.get(k))
                   for k in sorted(set(saved_hparams) | set(built))
                   if saved_hparams.get(k) != built.get(k)}
        raise ValueError(
            f"{last_dir.parent} holds a {method.name} built with other hyper-parameters "
            f"(saved, requested): {json.dumps(changed)}. Train into a new folder, or pass "
            f"resume=False (--no-resume) to start over there."
        )
    weights = {k.removeprefix("model."): v for k, v in checkpoint.tensors.items()
               if k.startswith("model.")}
    method.load_state_dict(weights, strict=True)
    method.to(device)
    state = checkpoint.metadata["training_state"]
    _restore_optimizer(optimizer, checkpoint.tensors, state.pop("optimizer"))
    torch.set_rng_state(checkpoint.tensors["rng.torch"])
    return state
