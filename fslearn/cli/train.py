"""``fslearn train METHOD``: one sub-parser per registered method, built from the options the
method declares (:mod:`fslearn.methods.options`) and the shared options of data, episodes,
optimizer, validation and run, with the method's own defaults in its help.

Every declared option of every method is accepted at parse time, hidden from the help of the
methods that do not declare it, so that giving one to another method is refused with a message
that names the methods that take it (rather than argparse's "unrecognized arguments")."""

from __future__ import annotations

import argparse
import inspect
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fslearn._system import describe_hardware
from fslearn.checkpoints import copy_matching_parameters, load_checkpoint
from fslearn.cli._args import (
    IMAGE_SIZE,
    HelpFormatter,
    command,
    declared,
    folder,
    image_args,
    listed,
    members,
    names,
    torch_device,
)
from fslearn.data.dataset import FewShotDataset
from fslearn.data.omniglot import PROTOCOLS, load_omniglot
from fslearn.data.sequences import LABEL_KINDS, SequenceTasks
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.distributed import world
from fslearn.methods import METHODS, FewShotMethod, build_method
from fslearn.methods.options import Family, Option, option_default
from fslearn.precision import PRECISIONS, check_precision
from fslearn.training import LR_SCHEDULES, OPTIMIZERS, TrainingConfig, train

__all__ = ["add_parser", "run"]

#: command-line names of the shared options whose defaults a method may declare, and the
#: TrainingConfig fields they set (--tasks: the episodes or tasks of one step)
CONFIG_FIELDS = {"way": "n_way", "shot": "k_shot", "query": "n_query", "tasks": "batch_size",
                 "val_way": "val_way", "lr_gamma": "lr_gamma", "image_size": "image_size"}


def _defaults(method: type[FewShotMethod]) -> dict[str, Any]:
    """The training settings ``method`` runs with unless told otherwise, by argument name:
    the shared options' and those of the method's options that are training settings."""
    # one episode per step unless the method says otherwise
    config = {**TrainingConfig().to_dict(), "batch_size": 1, "image_size": IMAGE_SIZE}
    merged = {**config, **method.training_defaults}
    return {**{name: merged[field] for name, field in CONFIG_FIELDS.items()},
            **{option.dest: option_default(method, option) for option in method.cli_options
               if not option.constructor}}


def add_parser(commands: Any) -> None:
    """``fslearn train`` and its sub-parser for every registered method."""
    tr = command(commands, "train", "train a method episodically on Omniglot or on your own "
                 "images (--data)")
    methods = tr.add_subparsers(dest="method", required=True, metavar="METHOD",
                                help=f"the method to train: {', '.join(sorted(METHODS))}")
    everything = declared()
    for name in sorted(METHODS):
        method = METHODS[name]
        sub = methods.add_parser(name, help=f"train {name}", formatter_class=HelpFormatter,
                                 description=f"Train {name} (run `fslearn train --help` for the "
                                 f"other methods).")
        _shared_args(sub, method)
        own = {option.dest for option in method.cli_options}
        family = method.family
        title = (f"{name}'s options" if family is None else
                 f"{family.name} ({names(members(family))})"
                 + (f": {family.summary}" if family.summary else ""))
        group = sub.add_argument_group(title)
        for option in method.cli_options:
            _add_option(group, option, method)
        for dest, (option, _) in everything.items():
            if dest not in own:  # accepted, then refused with a message naming its methods
                _add_option(sub, option, None)


def _add_option(group: Any, option: Option, method: type[FewShotMethod] | None) -> None:
    """Add a declared option; its help, with the default read from ``method``'s code, or
    hidden where ``method`` is None (another method's option)."""
    help_text = argparse.SUPPRESS
    if method is not None:
        default = option_default(method, option)
        said = option.default_text if default is None else (
            None if default is False else f"{default}")
        help_text = option.help + (f" (default: {said})" if said is not None else "")
    extra: dict[str, Any] = ({"action": "store_true"} if option.flag else
                             {"type": option.type, "choices": option.choices,
                              "metavar": option.metavar})
    # None, whatever the method's default: a value that is not None was given
    group.add_argument(*option.flags, dest=option.dest, default=None, help=help_text, **extra)


def _shared_args(sub: argparse.ArgumentParser, method: type[FewShotMethod]) -> None:
    """The options every method takes: data, image preparation, episodes, optimizer,
    validation and run; the help of those that ``method`` refuses is hidden."""
    defaults, config = _defaults(method), TrainingConfig()
    refused = set(method.family.refuses) if method.family is not None else set()

    def shown(dest: str, text: str) -> str:
        return argparse.SUPPRESS if dest in refused else text

    data = sub.add_argument_group("data (Omniglot unless --data is given)")
    data.add_argument("--data", type=Path, default=None, metavar="DIR",
                      help="train on your own images instead of Omniglot: a folder with one "
                      "subfolder of images per class (default: Omniglot)")
    data.add_argument("--val-data", type=Path, default=None, metavar="DIR",
                      help="with --data: a folder of validation classes (other classes than the "
                      "training ones) to pick the best checkpoint (default: none; the last "
                      "state is kept)")
    data.add_argument("--sinusoid", action="store_true", help=argparse.SUPPRESS if (
        method.regression_hparams is None or "sinusoid" in refused) else
        "meta-train on sinusoid regression tasks (Finn et al. 2017) instead of images; "
        "--shot and --query are points per task (default: images)")
    data.add_argument("--protocol", choices=sorted(PROTOCOLS), default=None,
                      help="Omniglot protocol (default: vinyals)")
    data.add_argument("--train-split", default=None,
                      help="Omniglot split to train on (vinyals: train or trainval; lake: train; "
                      "default: train)")
    data.add_argument("--val-split", default=None,
                      help="Omniglot split to validate on, or 'none' (default: val where the "
                      "protocol has one)")
    data.add_argument("--no-rotations", action="store_true",
                      help="vinyals: train on the characters upright only, without the "
                      "rotations by 90, 180 and 270 degrees as new classes (validation keeps "
                      "them; default: with)")
    data.add_argument("--labelled-classes", type=float, default=None, metavar="F",
                      help="train on a fraction F of the training classes only, drawn once "
                      "with --seed (a run with fewer labels; default: all of them)")
    data.add_argument("--data-root", type=Path, default=None,
                      help="folder holding the Omniglot zips (default: $FSLEARN_DATA, else a "
                      "per-user folder; downloaded there if missing)")
    image_args(sub, training=True, image_size=int(defaults["image_size"]))
    episodes = sub.add_argument_group("training episodes")
    episodes.add_argument("--way", type=int, default=None, help=shown(
        "way", f"classes per episode (default: {defaults['way']})"))
    episodes.add_argument("--shot", type=int, default=None, help=shown(
        "shot", f"labelled support images per class (default: {defaults['shot']})"))
    episodes.add_argument("--query", type=int, default=None, help=shown(
        "query", f"query images per class (default: {defaults['query']})"))
    episodes.add_argument("--tasks", "--batch", type=int, default=None, help=shown(
        "tasks", f"tasks (episodes) per optimizer step (default: {defaults['tasks']})"))
    episodes.add_argument("--episodes", type=int, default=config.episodes,
                          help="optimizer steps in the whole run")
    optim = sub.add_argument_group("optimizer")
    optim.add_argument("--optimizer", choices=OPTIMIZERS, default=config.optimizer,
                       help="outer optimizer (sgd: plain steps, as Reptile's outer update)")
    optim.add_argument("--lr", type=float, default=config.lr, help="initial learning rate")
    optim.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=config.lr_schedule,
                       help="step: multiply by --lr-gamma every --lr-step episodes; linear: "
                       "anneal to 0 at the last episode (Reptile)")
    optim.add_argument("--lr-step", type=int, default=config.lr_step,
                       help="multiply the learning rate by --lr-gamma every this many episodes")
    optim.add_argument("--lr-gamma", type=float, default=None,
                       help=f"learning-rate decay factor (default: {defaults['lr_gamma']})")
    optim.add_argument("--weight-decay", type=float, default=config.weight_decay,
                       help="weight decay")
    _validation_and_run_args(sub, method, defaults, shown)


def _validation_and_run_args(sub: argparse.ArgumentParser, method: type[FewShotMethod],
                             defaults: dict[str, Any], shown: Any) -> None:
    config = TrainingConfig()
    sequences = method.episode_kind == "sequences"
    val = sub.add_argument_group("validation")
    val.add_argument("--val-every", type=int, default=config.val_every,
                     help="validate every this many episodes (0: never)")
    val.add_argument("--val-episodes", type=int, default=config.val_episodes,
                     help="validation episodes (the same ones every time)")
    val.add_argument("--val-way", type=int, default=None,
                     help=f"classes per validation episode (default: "
                     f"{'--way' if sequences else defaults['val_way']})")
    val.add_argument("--val-shot", type=int, default=None, help=shown(
        "val_shot", "support images per class in validation (default: --shot)"))
    val.add_argument("--val-query", type=int, default=config.val_query,
                     help="query images per class in validation")
    run = sub.add_argument_group("run")
    run.add_argument("--checkpoint-every", type=int, default=config.checkpoint_every,
                     help="save the resumable state every this many episodes")
    run.add_argument("--seed", type=int, default=config.seed,
                     help="seed of the initial weights and of the episodes")
    run.add_argument("--out", type=Path, default=None,
                     help="run folder (default: runs/<method>-<data>-<shape>-seed<seed>, "
                     "<shape> as the kind of training batch: <way>w<shot>s for episodes, "
                     "<way>w<per-class>d-<labels> for sequences, <loss>-<B>pairs (or "
                     "triplets) for pairs, <B>batch for labelled mini-batches; -fce after "
                     "it with --fce)")
    run.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                     help="start from the weights of this checkpoint (shipped name or folder): "
                     "every parameter whose name and shape match, e.g. a Prototypical "
                     "Network fine-tuned from protoclr-omniglot (default: a fresh "
                     "initialisation)")
    run.add_argument("--no-resume", action="store_true",
                     help="start over even if the run folder holds a resumable state (default: "
                     "resume)")
    run.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda if available)")
    run.add_argument("--threads", type=int, default=None,
                     help="CPU threads for PyTorch (default: PyTorch's choice)")
    run.add_argument("--precision", choices=PRECISIONS, default="float32",
                     help="float32 (default), or bf16: bfloat16 autocast where the CPU or GPU "
                     "has it (faster, slightly different results; recorded in the checkpoint)")
    run.add_argument("--no-progress", action="store_true",
                     help="hide the progress bar (default: shown)")


# --- what the method does not take ---------------------------------------------------------


def _given(args: argparse.Namespace, dest: str) -> bool:
    value = getattr(args, dest, None)
    return value is not None and value is not False


def _refuse_other_families(args: argparse.Namespace, method: type[FewShotMethod]) -> None:
    """Refuse, a family at a time, the options that shape the kind of training of a family
    ``method`` is not in."""
    families: list[Family] = []
    for other in METHODS.values():
        if other.family is not None and other.family not in families:
            families.append(other.family)
    for family in families:
        if family is method.family:
            continue
        given = [option.flags[0] for dest, (option, owners) in declared().items()
                 if option.exclusive and any(owner.family is family for owner in owners)
                 and _given(args, dest)]
        if given:
            flags, verb, pronoun = listed(given)
            raise ValueError(f"{flags} {verb} of the {family.name} "
                             f"({names(members(family))}){family.why}, not of {args.method}: "
                             f"leave {pronoun} out.")


def _refuse_unused_shared(args: argparse.Namespace, method: type[FewShotMethod]) -> None:
    """Refuse the shared options that the method's family says do not apply to it."""
    family = method.family
    if family is None:
        return
    given = [f"--{dest.replace('_', '-')}" for dest in family.refuses if _given(args, dest)]
    if given:
        flags, _, pronoun = listed(given)
        raise ValueError(f"{flags} shape{'s' * (len(given) == 1)} {family.refused_as}, but "
                         f"{args.method} {family.trains_on}: leave {pronoun} out.")


def _constructor_options(args: argparse.Namespace, method: type[FewShotMethod]
                         ) -> dict[str, Any]:
    """The given declared options of ``method`` that are constructor arguments; an option it
    does not declare is refused, naming the methods that do."""
    own = {option.dest: option for option in method.cli_options}
    hparams = {}
    for dest, (option, owners) in declared().items():
        if not _given(args, dest):
            continue
        if dest not in own:
            families = {owner.family for owner in owners}
            family = next(iter(families))
            kind = ("method" if len(owners) == 1 else family.name
                    if len(families) == 1 and family is not None else "methods")
            raise ValueError(f"{option.flags[0]} is an option of the {kind} ({names(owners)}), "
                             f"not of {args.method}: leave it out.")
        value = getattr(args, dest)
        if option.positive and value < 1:
            raise ValueError(f"{option.flags[0]} must be a positive integer, got {value}")
        if option.needs is not None and not _given(args, option.needs[0]):
            raise ValueError(f"{option.flags[0]} {option.needs[1]}: add "
                             f"{own[option.needs[0]].flags[0]}.")
        if option.constructor:
            hparams[dest] = value
    return hparams


# --- the run -------------------------------------------------------------------------------


def _resolve(args: argparse.Namespace, method: type[FewShotMethod]) -> int | None:
    """Refuse what the method does not take, and fill in its defaults. Returns the side of the
    images a sequence model sees (None for other methods); the images are then loaded at 28
    pixels, the size Omniglot is cached at, and downsampled."""
    _refuse_other_families(args, method)
    _refuse_unused_shared(args, method)
    defaults = _defaults(method)
    sequences = method.episode_kind == "sequences"
    if sequences:
        labels = (args.labels or defaults["labels"]).replace("-", "_")
        if labels not in LABEL_KINDS:
            raise ValueError(f"--labels must be one of {', '.join(LABEL_KINDS)}, got "
                             f"{args.labels!r}.")
        args.labels = labels
        if args.val_way is None:  # one-hot labels make a head of --way outputs
            args.val_way = args.way or defaults["way"]
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if not sequences:
        return None
    size = args.image_size
    if size < 1:
        raise ValueError(f"--image-size must be a positive integer, got {size}")
    args.image_size = IMAGE_SIZE
    return size


def _method_hparams(args: argparse.Namespace, method: type[FewShotMethod],
                    train_data: FewShotDataset | SinusoidRegression | SequenceTasks,
                    config: TrainingConfig) -> dict[str, Any]:
    """The constructor arguments of the method, from the data and the command line."""
    accepted = inspect.signature(method.__init__).parameters
    if isinstance(train_data, SinusoidRegression):
        if method.regression_hparams is None:
            able = [other for other in METHODS.values() if other.regression_hparams is not None]
            raise ValueError(f"--sinusoid is for {names(able)}; {args.method} classifies "
                             f"images.")
        hparams: dict[str, Any] = dict(method.regression_hparams)
    elif isinstance(train_data, SequenceTasks):
        inputs, outputs = train_data.model_shape(args.way, args.labels)
        hparams = {"input_features": inputs, "num_outputs": outputs}
        # one-hot labels make a head of n_way outputs; strings have a fixed alphabet
        if args.labels == "one_hot" and config.val_every and config.val_way != args.way:
            raise ValueError(f"{args.method} with one-hot labels has a head of --way {args.way} "
                             f"classes, so it validates on {args.way}-way episodes only: pass "
                             f"--val-way {args.way}.")
    else:
        hparams = {"in_channels": train_data.image_shape[0]}
        if "num_classes" in accepted:  # a classifier over every training class
            hparams["num_classes"] = train_data.num_classes
        if "n_way" in accepted:  # a classifier head of n_way outputs: episodes must match it
            hparams["n_way"] = args.way
            if config.val_every and config.val_way != args.way:
                raise ValueError(f"{args.method} has a head of --way {args.way} classes, so it "
                                 f"validates on {args.way}-way episodes only: pass --val-way "
                                 f"{args.way}.")
        if "image_size" in accepted:
            hparams["image_size"] = train_data.image_shape[1]
    return {**hparams, **_constructor_options(args, method)}


def _training_data(args: argparse.Namespace) -> tuple[
        FewShotDataset | SinusoidRegression, FewShotDataset | None, dict[str, Any]]:
    """The training and validation classes, and the record of where they came from."""
    if args.sinusoid:
        if (args.data is not None or args.val_data is not None or args.protocol
                or args.no_rotations):
            raise ValueError("--sinusoid trains on generated sine waves: leave out --data, "
                             "--val-data, --protocol and --no-rotations.")
        distribution = SinusoidRegression()
        return distribution, None, {"dataset": "sinusoid", **{
            key: list(getattr(distribution, key)) for key in ("amplitude", "phase", "x_range")}}
    if args.data is not None:
        omniglot_only = [flag for flag, value in (
            ("--protocol", args.protocol), ("--train-split", args.train_split),
            ("--val-split", args.val_split), ("--data-root", args.data_root),
            ("--no-rotations", args.no_rotations)) if value]
        if omniglot_only:
            raise ValueError(f"{', '.join(omniglot_only)} choose Omniglot data, but --data "
                             f"trains on your own folder: leave them out.")
        train_data = folder(args.data, args.image_size, args.channels, args.invert)
        channels = train_data.image_shape[0]
        val_data = (folder(args.val_data, args.image_size, channels, args.invert)
                    if args.val_data is not None else None)
        return train_data, val_data, {
            "dataset": "folder", "train_data": str(args.data),
            "val_data": None if args.val_data is None else str(args.val_data),
            "image_size": args.image_size, "channels": channels, "invert": args.invert}
    if args.val_data is not None:
        raise ValueError("--val-data goes with --data (your own training images); for Omniglot "
                         "choose the validation classes with --val-split.")
    if args.invert or args.channels not in (None, 1):
        raise ValueError("--invert and --channels 3 are for your own images (--data); Omniglot "
                         "is greyscale and always inverted.")
    protocol = args.protocol or "vinyals"
    if args.no_rotations and protocol != "vinyals":
        raise ValueError(f"--no-rotations leaves out Vinyals's rotated classes, but the "
                         f"{protocol} protocol has none: leave it out.")
    train_split = args.train_split or "train"
    if args.val_split is None:
        val_split = "val" if "val" in PROTOCOLS[protocol] else None
    else:
        val_split = None if args.val_split.lower() == "none" else args.val_split
    if train_split == "trainval" and val_split == "val":
        raise ValueError("The val classes are part of trainval, so validating on them would "
                         "pick the checkpoint on training classes: add --val-split none.")
    train_data = load_omniglot(train_split, protocol, args.data_root, args.image_size,
                               rotations=not args.no_rotations)
    val_data = (load_omniglot(val_split, protocol, args.data_root, args.image_size)
                if val_split else None)
    upright = {"train_rotations": False} if args.no_rotations else {}  # older records: with
    return train_data, val_data, {
        "dataset": "omniglot", "protocol": protocol, "train_split": train_split,
        "val_split": val_split, "image_size": args.image_size, **upright}


def _config(args: argparse.Namespace, method: type[FewShotMethod], val_data: object
            ) -> TrainingConfig:
    """The run's TrainingConfig: the shared options, then the method's training settings
    (a TrainingConfig field, such as the pairs or images of one step, or a sampler setting)."""
    fields: dict[str, Any] = {"batch_size": args.tasks}
    sampler: dict[str, Any] = {}
    for option in method.cli_options:
        if not option.constructor:
            value = getattr(args, option.dest)
            if option.config_field is None:
                sampler[option.dest] = value
            else:
                fields[option.config_field] = value
    return TrainingConfig(
        n_way=1 if args.sinusoid else args.way, k_shot=args.shot, n_query=args.query,
        episodes=args.episodes, lr=args.lr, lr_step=args.lr_step, lr_gamma=args.lr_gamma,
        weight_decay=args.weight_decay, optimizer=args.optimizer,
        lr_schedule=args.lr_schedule, val_every=args.val_every if val_data else 0,
        val_episodes=args.val_episodes, val_way=args.val_way, val_shot=args.val_shot,
        val_query=args.val_query, checkpoint_every=args.checkpoint_every, seed=args.seed,
        sampler=sampler, **fields,
    )


def _describe(args: argparse.Namespace, method: type[FewShotMethod], config: TrainingConfig,
              data_record: dict[str, Any]) -> tuple[Path, str]:
    """The run folder (--out, else named after the method, data and kind of batch) and the
    words that describe the training batches, as the method describes its runs
    (:meth:`~fslearn.methods.FewShotMethod.describe_training`)."""
    source = (f"folder-{args.data.resolve().name}" if args.data is not None
              else "sinusoid" if args.sinusoid
              else data_record["protocol"] + ("-upright" if args.no_rotations else ""))
    options = {option.dest: option_default(method, option) if getattr(args, option.dest) is None
               else getattr(args, option.dest) for option in method.cli_options}
    # sinusoid tasks are 1-way, but such runs have always been named after --way
    named = replace(config, n_way=args.way) if args.sinusoid and args.way > 0 else config
    shape = method.describe_training(named, options)[0]
    precision = "" if args.precision == "float32" else f"-{args.precision}"
    out = args.out or Path("runs") / f"{args.method}-{source}-{shape}-seed{args.seed}{precision}"
    return out, method.describe_training(config, options)[1]


def _labelled_classes(args: argparse.Namespace, data: Any, data_record: dict[str, Any]) -> Any:
    """``data`` with only ``--labelled-classes`` of its classes, drawn once from the seed's own
    stream (recorded in ``data_record``); ``data`` itself without the option."""
    fraction = args.labelled_classes
    if fraction is None:
        return data
    if not isinstance(data, FewShotDataset):
        raise ValueError("--labelled-classes keeps a fraction of the training classes of an "
                         "image dataset: leave it out for sinusoid and sequence training.")
    if not 0 < fraction <= 1:
        raise ValueError(f"--labelled-classes must be a fraction in (0, 1], got {fraction}")
    count = max(1, round(fraction * data.num_classes))
    chosen = np.random.default_rng([args.seed, 2]).choice(data.num_classes, count, replace=False)
    data_record["labelled_classes"] = {"fraction": fraction, "classes": count}
    return data.select_classes(sorted(chosen.tolist()))


def _init_from(args: argparse.Namespace, method: FewShotMethod) -> dict[str, Any]:
    """Copy ``--init-from``'s matching weights into ``method``; the record's entry for it."""
    if args.init_from is None:
        return {}
    source, source_record = load_checkpoint(args.init_from)
    copied = copy_matching_parameters(method, source)
    return {"init_from": {"checkpoint": str(args.init_from), "method": source.name,
                          "weights_sha256": source_record["weights_sha256"],
                          "tensors": len(copied)}}


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``fslearn train``: returns the exit status (130 when interrupted)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch_device(args.device)
    check_precision(args.precision, device)  # before the data are read
    method_class = METHODS[args.method]
    sequence_size = _resolve(args, method_class)
    train_data, val_data, data_record = _training_data(args)
    if sequence_size is not None:
        assert isinstance(train_data, FewShotDataset)  # --sinusoid was refused
        train_data = SequenceTasks(train_data, image_size=sequence_size)
        data_record["sequence"] = {key: value for key, value in asdict(train_data).items()
                                   if key != "dataset"}
    train_data = _labelled_classes(args, train_data, data_record)
    config = _config(args, method_class, val_data)
    out, episodes = _describe(args, method_class, config, data_record)
    torch.manual_seed(config.seed)
    method = build_method(args.method, **_method_hparams(args, method_class, train_data, config))
    init_from = _init_from(args, method)
    # an impossible training batch fails here, before the run is announced
    own = method.training_sampler(train_data, config)
    steps = own is not None and isinstance(train_data, FewShotDataset)  # not episodes
    classes = (f"{train_data.num_classes} classes"
               if isinstance(train_data, FewShotDataset | SequenceTasks) else "generated tasks")
    record = {"command": shlex.join(["fslearn", *argv]), "data": data_record,
              "hardware": describe_hardware(device), **init_from}
    ranks = world()  # several processes under torchrun: rank 0 alone speaks
    if ranks.size > 1:
        record["processes"] = ranks.size
    say = print if ranks.is_main else _silent
    in_bf16 = "" if args.precision == "float32" else f" in {args.precision}"
    say(f"Training {args.method} on {train_data.name} ({classes}), {episodes}, "
          f"{config.episodes} "
          f"{'steps' if steps else 'episodes'}{in_bf16}, into {out}",
          file=sys.stderr)
    try:
        result = train(method, train_data, config, out, val_data, resume=not args.no_resume,
                       device=device, progress=not args.no_progress, record=record,
                       precision=args.precision)
    except KeyboardInterrupt:
        say(f"\nInterrupted. Run the same command again to resume from the last saved state "
              f"in {out / 'last'} (saved every {config.checkpoint_every} episodes).",
              file=sys.stderr)
        return 130
    best = (f", best validation accuracy {100 * result.best_val_accuracy:.2f}%"
            if result.best_val_accuracy is not None else "")
    say(f"Done: {result.episodes} episodes in {result.training_seconds:.0f} s{best}. "
        f"Best checkpoint: {result.best}")
    ranks.close()
    return 0


def _silent(*args: Any, **kwargs: Any) -> None:
    """What ranks other than 0 print."""
