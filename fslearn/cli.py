"""The fslearn command: train, evaluate, report, predict and list checkpoints.

examples:
    fslearn train protonet --protocol vinyals --way 60 --shot 1 --query 5 --episodes 20000
    fslearn evaluate protonet-omniglot --way 5 --shot 1 --episodes 1000 --json
    fslearn report protonet-omniglot --write
    fslearn checkpoints
  memory-augmented networks, on sequence episodes (5-way, 10 drawings per class, batch 16):
    fslearn train mann --episodes 100000 --threads 1
    fslearn evaluate runs/mann-vinyals-5w10d-one_hot-seed0 --json
    fslearn report runs/mann-vinyals-5w10d-one_hot-seed0
  Siamese networks, on same/different pairs (or triplets), validated on 5-way episodes:
    fslearn train siamese --loss bce --pairs-per-step 128 --episodes 20000
    fslearn train siamese --loss triplet --margin 0.2 --pairs-per-step 128
  transfer baselines, pre-trained as classifiers on mini-batches, fine-tuned per test episode:
    fslearn train baselinepp --batch-size 16 --episodes 25000
  your own images (one subfolder per class):
    fslearn train protonet --data my_train/ --val-data my_val/ --way 5 --shot 1 --query 5
    fslearn evaluate runs/my-run --data my_test/ --way 5 --shot 1 --query 5
    fslearn predict protonet-omniglot --support my_classes/ --query new_images/

Run `fslearn COMMAND --help` for the options of a command.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from fslearn import __version__
from fslearn._system import describe_hardware
from fslearn.checkpoints import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
    shipped_checkpoints,
    write_json_atomically,
)
from fslearn.data.dataset import FewShotDataset
from fslearn.data.download import DownloadError
from fslearn.data.errors import DataError, one_line
from fslearn.data.folder import load_image_folder
from fslearn.data.omniglot import PROTOCOLS, DataNotFoundError, load_omniglot
from fslearn.data.sequences import LABEL_KINDS, SequenceTasks
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.evaluation import (
    MIN_REPORTED_EPISODES,
    SHOT_EQUIVALENT_NOTE,
    SequenceResult,
    embed_dataset,
    evaluate,
    evaluate_regression,
    evaluate_sequences,
)
from fslearn.methods import (
    METHODS,
    Baseline,
    FewShotMethod,
    InnerLoopMethod,
    MatchingNetwork,
    MetricMethod,
    SequenceMethod,
    SiameseNetwork,
    build_method,
)
from fslearn.methods.maml import ENGINES, INNER_OPTIMIZERS
from fslearn.methods.matching import DEFAULT_FCE_STEPS
from fslearn.methods.relation import AGGREGATES
from fslearn.methods.siamese import DEFAULT_MARGINS, LOSSES
from fslearn.prediction import (
    ImagePreparation,
    check_channels,
    format_predictions,
    image_preparation,
    predict,
)
from fslearn.results import PAPER_RESULTS, STANDARD_SETTINGS
from fslearn.training import LR_SCHEDULES, OPTIMIZERS, TrainingConfig, train

__all__ = ["main"]

OPTIMISATION_METHODS = tuple(name for name, cls in METHODS.items()
                             if issubclass(cls, InnerLoopMethod))
SEQUENCE_METHODS = tuple(name for name, cls in METHODS.items() if issubclass(cls, SequenceMethod))
MATCHING_METHODS = tuple(name for name, cls in METHODS.items()
                         if issubclass(cls, MatchingNetwork))
PAIR_METHODS = tuple(name for name, cls in METHODS.items() if issubclass(cls, SiameseNetwork))
TRANSFER_METHODS = tuple(name for name, cls in METHODS.items() if issubclass(cls, Baseline))
#: command-line options of the inner loop, passed to the method's constructor when given
INNER_OPTIONS = ("inner_steps", "inner_lr", "test_inner_steps", "engine", "inner_optimizer",
                 "inner_batch", "test_inner_batch")
#: command-line options of the sequence models' sizes, passed to the constructor when given
SEQUENCE_MODEL_OPTIONS = ("controller_size", "memory_slots", "memory_width", "read_heads")
#: command-line options of Matching Networks' full context embeddings, passed when given
MATCHING_OPTIONS = ("fce", "fce_steps", "scale")
#: command-line options of Relation Networks, passed to the constructor when given
RELATION_OPTIONS = ("aggregate",)
#: command-line options of the Siamese networks' loss, passed to the constructor when given
PAIR_MODEL_OPTIONS = ("loss", "margin")
#: pairs (or triplets) per optimizer step when the command line does not say: Koch et al.'s
#: mini-batch
DEFAULT_PAIRS_PER_STEP = 128
#: command-line options of the transfer baselines, passed to the constructor when given
TRANSFER_OPTIONS = ("scale", "finetune_epochs", "finetune_batch", "finetune_lr")
#: images per pre-training step of the transfer baselines when the command line does not say:
#: Chen et al.'s mini-batch
DEFAULT_BATCH_SIZE = 16
#: the shape of sequence episodes when the command line does not say, Santoro et al.'s, and a
#: constant learning rate (the step decay that suits prototypical networks stalls these runs)
SEQUENCE_DEFAULTS = {"way": 5, "per_class": 10, "tasks": 16, "image_size": 20, "lr_gamma": 1.0}
#: the figures a sequence model's test is summed up by: (k_shot, presentation) equivalents
SHOT_EQUIVALENTS = ((1, 2), (5, 6))
#: fewest test episodes for a by-presentation figure beside the paper's
MIN_SEQUENCE_EPISODES = 1000


def _is_sequence_method(name: object) -> bool:
    """Whether the registered method ``name`` learns from sequence episodes."""
    return isinstance(name, str) and issubclass(METHODS.get(name, FewShotMethod),
                                                SequenceMethod)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for, but PyTorch sees no CUDA device here; "
                         f"use --device cpu.")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r} is not a device PyTorch knows ({error}); use cpu, "
                         f"cuda or auto.") from error


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` after each option's help, except where the default is ``None``
    or a flag's ``False`` (their help says in words what happens by default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action) or ""


def _command(commands: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    description = help_text.replace("%%", "%")
    return commands.add_parser(name, help=help_text, formatter_class=_HelpFormatter,
                               description=description[0].upper() + description[1:] + ".")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fslearn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fslearn {__version__}",
                        help="print the version of fslearn and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    defaults = TrainingConfig()

    tr = _command(commands, "train", "train a method episodically on Omniglot or on your own "
                  "images (--data)")
    tr.add_argument("method", choices=sorted(METHODS), help="the method to train")
    data = tr.add_argument_group("data (Omniglot unless --data is given)")
    data.add_argument("--data", type=Path, default=None, metavar="DIR",
                      help="train on your own images instead of Omniglot: a folder with one "
                      "subfolder of images per class (default: Omniglot)")
    data.add_argument("--val-data", type=Path, default=None, metavar="DIR",
                      help="with --data: a folder of validation classes (other classes than the "
                      "training ones) to pick the best checkpoint (default: none; the last "
                      "state is kept)")
    data.add_argument("--sinusoid", action="store_true",
                      help=f"meta-train on sinusoid regression tasks (Finn et al. 2017; for "
                      f"{', '.join(OPTIMISATION_METHODS)}) instead of images; "
                      f"--shot and --query are points per task (default: images)")
    data.add_argument("--protocol", choices=sorted(PROTOCOLS), default=None,
                      help="Omniglot protocol (default: vinyals)")
    data.add_argument("--train-split", default=None,
                      help="Omniglot split to train on (vinyals: train or trainval; lake: train; "
                      "default: train)")
    data.add_argument("--val-split", default=None,
                      help="Omniglot split to validate on, or 'none' (default: val where the "
                      "protocol has one)")
    data.add_argument("--data-root", type=Path, default=None,
                      help="folder holding the Omniglot zips (default: $FSLEARN_DATA, else a "
                      "per-user folder; downloaded there if missing)")
    _image_args(tr, training=True)
    episodes = tr.add_argument_group("training episodes")
    episodes.add_argument("--way", type=int, default=None,
                          help=f"classes per episode (default: {defaults.n_way}; "
                          f"{', '.join(SEQUENCE_METHODS)}: {SEQUENCE_DEFAULTS['way']})")
    episodes.add_argument("--shot", type=int, default=None,
                          help=f"labelled support images per class (default: {defaults.k_shot})")
    episodes.add_argument("--query", type=int, default=None,
                          help=f"query images per class (default: {defaults.n_query})")
    episodes.add_argument("--tasks", "--batch", type=int, default=None,
                          help=f"tasks (episodes) per optimizer step (default: {defaults.tasks}; "
                          f"{', '.join(SEQUENCE_METHODS)}: {SEQUENCE_DEFAULTS['tasks']})")
    episodes.add_argument("--episodes", type=int, default=defaults.episodes,
                          help="optimizer steps in the whole run")
    inner = tr.add_argument_group(
        f"optimisation-based methods ({', '.join(OPTIMISATION_METHODS)}): the inner loop")
    inner.add_argument("--inner-steps", type=int, default=None,
                       help="inner gradient steps per task in training (default: 1; reptile: 5)")
    inner.add_argument("--inner-lr", type=float, default=None,
                       help="inner step size alpha (default: 0.4; Meta-SGD: its initial value; "
                       "reptile: Adam's learning rate, 1e-3)")
    inner.add_argument("--test-inner-steps", type=int, default=None,
                       help="inner steps in validation and evaluation (default: --inner-steps, "
                       "reptile: 50; Finn et al. test with 3)")
    inner.add_argument("--inner-optimizer", choices=INNER_OPTIMIZERS, default=None,
                       help="reptile only: the inner optimizer (default: adam, with beta1 = 0, "
                       "as in the paper)")
    inner.add_argument("--inner-batch", type=int, default=None,
                       help="reptile only: support images per inner step in training "
                       "(default: 10)")
    inner.add_argument("--test-inner-batch", type=int, default=None,
                       help="reptile only: support images per inner step at test time "
                       "(default: 5)")
    inner.add_argument("--engine", choices=ENGINES, default=None,
                       help="run the tasks of a batch in a loop or vectorised with "
                       "torch.func.vmap (default: auto: vmap on CUDA and for --sinusoid, the "
                       "loop for images on a CPU)")
    sequences = tr.add_argument_group(
        f"memory-augmented networks ({', '.join(SEQUENCE_METHODS)}): sequence episodes of "
        f"--way classes, --batch episodes per step")
    sequences.add_argument("--per-class", "--drawings", type=int, default=None,
                           help=f"drawings of each class per episode (default: "
                           f"{SEQUENCE_DEFAULTS['per_class']})")
    sequences.add_argument("--labels", default=None, metavar="{" + ",".join(LABEL_KINDS) + "}",
                           help="one_hot: a one-hot label per class; string: 5-character "
                           "strings over 5 symbols (Santoro et al.'s 15-way setting) (default: "
                           "one_hot)")
    sequences.add_argument("--controller-size", type=int, default=None,
                           help="LSTM units of the controller (default: 200)")
    sequences.add_argument("--memory-slots", type=int, default=None,
                           help="mann: memory rows (default: 128)")
    sequences.add_argument("--memory-width", type=int, default=None,
                           help="mann: numbers per memory row (default: 40)")
    sequences.add_argument("--read-heads", type=int, default=None,
                           help="mann: read (and write) heads (default: 4)")
    matching = tr.add_argument_group(f"matching networks ({', '.join(MATCHING_METHODS)})")
    matching.add_argument("--fce", action="store_true", default=None,
                          help="full context embeddings: a bidirectional LSTM over the support "
                          "set and an attention LSTM for each query (default: off, cosine "
                          "attention over the Conv4 embeddings alone)")
    matching.add_argument("--fce-steps", type=int, default=None,
                          help=f"with --fce: processing steps K of the query's attention LSTM "
                          f"(default: {DEFAULT_FCE_STEPS})")
    relation = tr.add_argument_group("relation networks (relationnet)")
    relation.add_argument("--aggregate", choices=AGGREGATES, default=None,
                          help="how a class's K support feature maps are combined: sum, the "
                          "authors' (train with the shots you will test with), or mean (one "
                          "model for any number of shots; the same as sum with one shot) "
                          "(default: sum)")
    pairs = tr.add_argument_group(
        f"Siamese networks ({', '.join(PAIR_METHODS)}): trained on same/different pairs or on "
        f"triplets instead of episodes, validated on --val-way --val-shot episodes")
    pairs.add_argument("--loss", choices=LOSSES, default=None,
                       help="bce: a sigmoid of a learned weighted L1 distance, binary "
                       "cross-entropy on pairs (Koch et al.); contrastive: Hadsell et al.'s loss "
                       "on the Euclidean distance of pairs; triplet: Schroff et al.'s loss on "
                       "squared distances of unit-length embeddings (default: bce)")
    pairs.add_argument("--margin", type=float, default=None, metavar="M",
                       help=f"margin of the contrastive or triplet loss (default: "
                       f"{', '.join(f'{k} {v:g}' for k, v in DEFAULT_MARGINS.items())}; "
                       f"bce has none)")
    pairs.add_argument("--pairs-per-step", type=int, default=None, metavar="B",
                       help=f"pairs (half same, half different), or triplets, per optimizer "
                       f"step (default: {DEFAULT_PAIRS_PER_STEP})")
    transfer = tr.add_argument_group(
        f"transfer baselines ({', '.join(TRANSFER_METHODS)}): pre-trained as classifiers over "
        f"all training classes on class-balanced mini-batches instead of episodes (constant "
        f"learning rate unless --lr-gamma says otherwise), then a new head fine-tuned on each "
        f"test episode's support set; validated on --val-way --val-shot episodes")
    transfer.add_argument("--batch-size", type=int, default=None, metavar="B",
                          help=f"images per pre-training step (default: {DEFAULT_BATCH_SIZE})")
    transfer.add_argument("--finetune-epochs", type=int, default=None, metavar="E",
                          help="passes over the support set when fine-tuning each test "
                          "episode's head (default: 100, Chen et al.'s)")
    transfer.add_argument("--finetune-batch", type=int, default=None, metavar="B",
                          help="support images per fine-tuning step (default: 4)")
    transfer.add_argument("--finetune-lr", type=float, default=None, metavar="LR",
                          help="learning rate of the fine-tuning SGD, momentum 0.9 (default: "
                          "0.01)")
    transfer.add_argument("--scale", type=float, default=None,
                          help="baselinepp: the cosine heads' scale (default: 10 over more "
                          "than 200 classes, else 2, as Chen et al.'s code); matchingnet: the "
                          "attention's logits are scale * cosine (default: 1, the paper's)")
    optim = tr.add_argument_group("optimizer")
    optim.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer,
                       help="outer optimizer (sgd: plain steps, as Reptile's outer update)")
    optim.add_argument("--lr", type=float, default=defaults.lr, help="initial learning rate")
    optim.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=defaults.lr_schedule,
                       help="step: multiply by --lr-gamma every --lr-step episodes; linear: "
                       "anneal to 0 at the last episode (Reptile)")
    optim.add_argument("--lr-step", type=int, default=defaults.lr_step,
                       help="multiply the learning rate by --lr-gamma every this many episodes")
    optim.add_argument("--lr-gamma", type=float, default=None,
                       help=f"learning-rate decay factor (default: {defaults.lr_gamma}; "
                       f"{', '.join(SEQUENCE_METHODS)}: 1, a constant rate, as the "
                       f"reproductions of Santoro et al. train; {', '.join(TRANSFER_METHODS)}: "
                       f"1, as Chen et al.)")
    optim.add_argument("--weight-decay", type=float, default=defaults.weight_decay,
                       help="weight decay")
    val = tr.add_argument_group("validation")
    val.add_argument("--val-every", type=int, default=defaults.val_every,
                     help="validate every this many episodes (0: never)")
    val.add_argument("--val-episodes", type=int, default=defaults.val_episodes,
                     help="validation episodes (the same ones every time)")
    val.add_argument("--val-way", type=int, default=None,
                     help=f"classes per validation episode (default: {defaults.val_way}; "
                     f"{', '.join(SEQUENCE_METHODS)}: --way)")
    val.add_argument("--val-shot", type=int, default=None,
                     help="support images per class in validation (default: --shot)")
    val.add_argument("--val-query", type=int, default=defaults.val_query,
                     help="query images per class in validation")
    run = tr.add_argument_group("run")
    run.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every,
                     help="save the resumable state every this many episodes")
    run.add_argument("--seed", type=int, default=defaults.seed,
                     help="seed of the initial weights and of the episodes")
    run.add_argument("--out", type=Path, default=None,
                     help="run folder (default: runs/<method>-<data>-<way>w<shot>s-seed<seed>, "
                     "with -fce after <shot>s for --fce; sequence methods: "
                     "runs/<method>-<data>-<way>w<per-class>d-<labels>-seed<seed>; siamese: "
                     "runs/siamese-<data>-<loss>-<B>pairs-seed<seed>, triplets for the triplet "
                     "loss; baseline, baselinepp: runs/<method>-<data>-<B>batch-seed<seed>)")
    run.add_argument("--no-resume", action="store_true",
                     help="start over even if the run folder holds a resumable state (default: "
                     "resume)")
    run.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda if available)")
    run.add_argument("--threads", type=int, default=None,
                     help="CPU threads for PyTorch (default: PyTorch's choice)")
    run.add_argument("--no-progress", action="store_true",
                     help="hide the progress bar (default: shown)")

    ev = _command(commands, "evaluate", "accuracy with its 95%% CI over test episodes")
    ev.add_argument("checkpoint", help="checkpoint folder, run folder, or shipped name")
    ev.add_argument("--way", type=int, default=None,
                    help="classes per test episode (no default: required, except for sinusoid "
                    "and sequence models)")
    ev.add_argument("--per-class", "--drawings", type=int, default=None,
                    help=f"{', '.join(SEQUENCE_METHODS)}: drawings of each class per test "
                    f"episode (default: the checkpoint's)")
    ev.add_argument("--shot", type=int, default=None,
                    help="support images per class, or support points for sinusoid models (no "
                    "default: required)")
    _episode_args(ev)
    ev.add_argument("--test-inner-steps", type=int, default=None,
                    help=f"for {', '.join(OPTIMISATION_METHODS)}: inner steps on each test "
                    f"episode's support set (default: the checkpoint's)")
    ev.add_argument("--data", type=Path, default=None, metavar="DIR",
                    help="evaluate on your own test classes: a folder with one subfolder of "
                    "images per class (default: the Omniglot test split)")
    _image_args(ev, training=False)
    ev.add_argument("--json", action="store_true",
                    help="print one JSON object (default: a line of text)")

    rp = _command(commands, "report",
                  "evaluate the four standard Omniglot settings beside the paper's figures "
                  "(sequence models: accuracy by presentation beside Santoro et al.'s table)")
    rp.add_argument("checkpoint", help="checkpoint folder, run folder, or shipped name")
    _episode_args(rp)
    rp.add_argument("--write", action="store_true",
                    help="store the figures as results.json in the checkpoint folder "
                    "(default: only print them)")
    rp.add_argument("--json", action="store_true",
                    help="print one JSON object (default: a table)")

    pr = _command(commands, "predict",
                  "classify new images among the classes of a few labelled ones")
    pr.add_argument("checkpoint", help="checkpoint folder, run folder, or shipped name")
    pr.add_argument("--support", type=Path, required=True, metavar="DIR",
                    help="the labelled images: a folder with one subfolder per class, any number "
                    "of images in each (required)")
    pr.add_argument("--query", nargs="+", required=True, metavar="PATH",
                    help="the images to classify: files, or folders searched recursively "
                    "(required)")
    _image_args(pr, training=False)
    pr.add_argument("--batch-size", type=int, default=256, help="query images scored together")
    pr.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda if available)")
    pr.add_argument("--json", action="store_true",
                    help="print one JSON object (default: a table)")

    ls = _command(commands, "checkpoints", "list the shipped checkpoints")
    ls.add_argument("--json", action="store_true",
                    help="print a JSON list (default: a line per checkpoint)")
    return parser


def _image_args(sub: argparse.ArgumentParser, training: bool) -> None:
    group = sub.add_argument_group("image preparation" if training else
                                   "image preparation, for your own images (default: as the "
                                   "checkpoint's training images)")
    if training:
        group.add_argument("--image-size", type=int, default=None,
                           help=f"side of the square images, in pixels (images of any size are "
                           f"resized) (default: 28; {', '.join(SEQUENCE_METHODS)}: "
                           f"{SEQUENCE_DEFAULTS['image_size']}, from images loaded at 28)")
        group.add_argument("--channels", type=int, choices=(1, 3), default=None,
                           help="1 (greyscale) or 3 (RGB) (default: 1 for Omniglot; for --data, "
                           "3 if any image is in colour, else 1)")
        group.add_argument("--invert", action="store_true",
                           help="with --data: invert the images, for dark-on-light drawings "
                           "(default: off; Omniglot is always inverted, ink is bright)")
        return
    group.add_argument("--image-size", type=int, default=None,
                       help="side of the square images, in pixels (default: the checkpoint's)")
    group.add_argument("--channels", type=int, choices=(1, 3), default=None,
                       help="convert the images to 1 (greyscale) or 3 (RGB) channels (default: "
                       "no conversion; images that do not fit the model are refused)")
    group.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                       help="invert dark-on-light drawings (default: as the checkpoint's "
                       "training images: on for Omniglot models)")


def _episode_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--episodes", type=int, default=1000,
                     help="test episodes (figures are reported over at least 600)")
    sub.add_argument("--query", type=int, default=15, help="query images per class")
    sub.add_argument("--protocol", choices=sorted(PROTOCOLS), default=None,
                     help="Omniglot protocol (default: the checkpoint's)")
    sub.add_argument("--split", default="test", help="Omniglot split to evaluate on")
    sub.add_argument("--seed", type=int, default=0, help="which test episodes")
    sub.add_argument("--data-root", type=Path, default=None,
                     help="folder holding the Omniglot zips (default: $FSLEARN_DATA, else a "
                     "per-user folder)")
    sub.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda if available)")
    sub.add_argument("--progress", action="store_true",
                     help="show a progress bar (default: hidden)")


def _folder(path: Path, image_size: int, channels: int | None, invert: bool) -> FewShotDataset:
    """A folder dataset; ``channels=None`` keeps the images' own (3 if any is in colour)."""
    return load_image_folder(path, image_size, None if channels is None else channels == 1,
                             invert)


def _preparation(args: argparse.Namespace, method: FewShotMethod, record: dict[str, Any]
                 ) -> tuple[int, bool]:
    """``(image size, invert)``: the checkpoint's, unless the command line says otherwise."""
    prepared = image_preparation(method, record)
    return (args.image_size or prepared.image_size,
            prepared.invert if args.invert is None else args.invert)


def _training_data(args: argparse.Namespace) -> tuple[
        FewShotDataset | SinusoidRegression, FewShotDataset | None, dict[str, Any]]:
    """The training and validation classes, and the record of where they came from."""
    if args.sinusoid:
        if args.data is not None or args.val_data is not None or args.protocol:
            raise ValueError("--sinusoid trains on generated sine waves: leave out --data, "
                             "--val-data and --protocol.")
        distribution = SinusoidRegression()
        return distribution, None, {"dataset": "sinusoid", **{
            key: list(getattr(distribution, key)) for key in ("amplitude", "phase", "x_range")}}
    if args.data is not None:
        omniglot_only = [flag for flag, value in (
            ("--protocol", args.protocol), ("--train-split", args.train_split),
            ("--val-split", args.val_split), ("--data-root", args.data_root)) if value]
        if omniglot_only:
            raise ValueError(f"{', '.join(omniglot_only)} choose Omniglot data, but --data "
                             f"trains on your own folder: leave them out.")
        train_data = _folder(args.data, args.image_size, args.channels, args.invert)
        channels = train_data.image_shape[0]
        val_data = (_folder(args.val_data, args.image_size, channels, args.invert)
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
    train_split = args.train_split or "train"
    if args.val_split is None:
        val_split = "val" if "val" in PROTOCOLS[protocol] else None
    else:
        val_split = None if args.val_split.lower() == "none" else args.val_split
    if train_split == "trainval" and val_split == "val":
        raise ValueError("The val classes are part of trainval, so validating on them would "
                         "pick the checkpoint on training classes: add --val-split none.")
    train_data = load_omniglot(train_split, protocol, args.data_root, args.image_size)
    val_data = (load_omniglot(val_split, protocol, args.data_root, args.image_size)
                if val_split else None)
    return train_data, val_data, {
        "dataset": "omniglot", "protocol": protocol, "train_split": train_split,
        "val_split": val_split, "image_size": args.image_size}


def _method_hparams(args: argparse.Namespace,
                    train_data: FewShotDataset | SinusoidRegression | SequenceTasks,
                    config: TrainingConfig) -> dict[str, Any]:
    """The constructor arguments of the method, from the data and the command line."""
    accepted = inspect.signature(METHODS[args.method].__init__).parameters
    if isinstance(train_data, SinusoidRegression):
        if "task" not in accepted:
            raise ValueError(f"--sinusoid is for {', '.join(OPTIMISATION_METHODS)}; "
                             f"{args.method} classifies images.")
        # the paper's network: two hidden layers of 40 units
        hparams: dict[str, Any] = {"n_way": 1, "task": "regression", "hidden_channels": 40}
        for option in INNER_OPTIONS:
            if getattr(args, option) is not None:
                hparams[option] = getattr(args, option)
        return {**hparams, **_matching_options(args, accepted)}
    if isinstance(train_data, SequenceTasks):
        inputs, outputs = train_data.model_shape(args.way, args.labels)
        hparams = {"input_features": inputs, "num_outputs": outputs}
        # one-hot labels make a head of n_way outputs; strings have a fixed alphabet
        if args.labels == "one_hot" and config.val_every and config.val_way != args.way:
            raise ValueError(f"{args.method} with one-hot labels has a head of --way {args.way} "
                             f"classes, so it validates on {args.way}-way episodes only: pass "
                             f"--val-way {args.way}.")
        for option in SEQUENCE_MODEL_OPTIONS:
            value = getattr(args, option)
            if value is not None and value < 1:
                raise ValueError(f"--{option.replace('_', '-')} must be a positive integer, "
                                 f"got {value}")
        return {**hparams,
                **_constructor_options(args, accepted, INNER_OPTIONS, OPTIMISATION_METHODS,
                                       "optimisation-based methods"),
                **_constructor_options(args, accepted, SEQUENCE_MODEL_OPTIONS,
                                       SEQUENCE_METHODS, "sequence methods"),
                **_matching_options(args, accepted)}
    hparams = {"in_channels": train_data.image_shape[0],
               **_constructor_options(args, accepted, PAIR_MODEL_OPTIONS, PAIR_METHODS,
                                      "Siamese networks"),
               **_constructor_options(args, accepted, TRANSFER_OPTIONS, TRANSFER_METHODS,
                                      "transfer baselines")}
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
    return {**hparams, **_constructor_options(args, accepted, INNER_OPTIONS, OPTIMISATION_METHODS,
                                              "optimisation-based methods"),
            **_matching_options(args, accepted)}


def _matching_options(args: argparse.Namespace, accepted: Any) -> dict[str, Any]:
    """--fce, --fce-steps, --scale and --aggregate as constructor arguments, refused for
    other methods."""
    if args.fce_steps is not None and args.fce is None and "fce" in accepted:
        raise ValueError("--fce-steps sets the processing steps of full context embeddings: "
                         "add --fce.")
    return {**_constructor_options(args, accepted, MATCHING_OPTIONS, MATCHING_METHODS,
                                   "matching networks"),
            **_constructor_options(args, accepted, RELATION_OPTIONS, ("relationnet",),
                                   "relation networks")}


def _constructor_options(args: argparse.Namespace, accepted: Any, options: Sequence[str],
                         family: Sequence[str], family_name: str) -> dict[str, Any]:
    """The given command-line ``options`` as constructor arguments; an option the method does
    not take is refused, naming the methods of ``family`` that do."""
    hparams = {}
    for option in options:
        value = getattr(args, option)
        if value is None:
            continue
        if option not in accepted:
            # an option may be shared beyond its family (--scale: baselinepp, matchingnet)
            owners = [name for name in METHODS
                      if option in inspect.signature(METHODS[name].__init__).parameters]
            kind = ("method" if len(owners) == 1 else family_name
                    if set(owners) <= set(family) else "methods")
            raise ValueError(f"--{option.replace('_', '-')} is an option of the {kind} "
                             f"({', '.join(owners)}), not of {args.method}: leave it out.")
        hparams[option] = value
    return hparams


def _listed(flags: Sequence[str]) -> tuple[str, str, str]:
    """``("--a, --b", "are options", "them")`` or the singular, for messages about flags."""
    many = len(flags) > 1
    return ", ".join(flags), "are options" if many else "is an option", "them" if many else "it"


def _refuse_family_options(args: argparse.Namespace, options: Sequence[str],
                           family: Sequence[str], family_name: str, why: str = "") -> None:
    """Refuse the given ``options`` (argument names) of a family of methods that
    ``args.method`` is not in, naming the family and, in ``why``, what sets it apart."""
    given = [f"--{name.replace('_', '-')}" for name in options if getattr(args, name) is not None]
    if given:
        flags, verb, pronoun = _listed(given)
        raise ValueError(f"{flags} {verb} of {family_name} ({', '.join(family)}){why}, not of "
                         f"{args.method}: leave {pronoun} out.")


def _refuse_episode_shape(args: argparse.Namespace, trains_on: str) -> None:
    """A method that does not train on episodes refuses the options that shape them."""
    given = [flag for flag, value in (("--way", args.way), ("--shot", args.shot),
                                      ("--query", args.query), ("--tasks", args.tasks))
             if value is not None]
    if given:
        flags, _, pronoun = _listed(given)
        raise ValueError(f"{flags} shape{'s' * (len(given) == 1)} training episodes, but "
                         f"{args.method} {trains_on} (validation episodes: --val-way, "
                         f"--val-shot, --val-query): leave {pronoun} out.")


def _resolve_training_args(args: argparse.Namespace) -> int | None:
    """Fill in the defaults that depend on the method, and refuse the options of other kinds of
    episodes. Returns the side of the images a sequence model sees (None for other methods);
    the images are then loaded at 28 pixels, the size Omniglot is cached at, and downsampled."""
    defaults = TrainingConfig()
    if args.method not in PAIR_METHODS:
        _refuse_family_options(args, ("pairs_per_step", *PAIR_MODEL_OPTIONS), PAIR_METHODS,
                               "the Siamese networks", ", which train on pairs")
    else:
        _refuse_episode_shape(args, "trains on pairs or triplets, --pairs-per-step of them per "
                              "step")
        if args.pairs_per_step is None:
            args.pairs_per_step = DEFAULT_PAIRS_PER_STEP
    if args.method not in TRANSFER_METHODS:
        _refuse_family_options(args, ("batch_size",), TRANSFER_METHODS, "the transfer baselines",
                               ", which pre-train on labelled mini-batches")
    else:
        _refuse_episode_shape(args, "pre-trains on labelled mini-batches, --batch-size images "
                              "per step")
        if args.batch_size is None:
            args.batch_size = DEFAULT_BATCH_SIZE
        if args.lr_gamma is None:  # Chen et al. pre-train at a constant learning rate
            args.lr_gamma = 1.0
    if not _is_sequence_method(args.method):
        _refuse_family_options(args, ("per_class", "labels", *SEQUENCE_MODEL_OPTIONS),
                               SEQUENCE_METHODS, "the sequence methods")
        for name, value in (("way", defaults.n_way), ("shot", defaults.k_shot),
                            ("query", defaults.n_query), ("tasks", defaults.tasks),
                            ("val_way", defaults.val_way), ("image_size", 28),
                            ("lr_gamma", defaults.lr_gamma)):
            if getattr(args, name) is None:
                setattr(args, name, value)
        return None
    given = [flag for flag, value in (("--shot", args.shot), ("--query", args.query),
                                      ("--val-shot", args.val_shot),
                                      ("--sinusoid", args.sinusoid or None)) if value is not None]
    if given:
        flags, _, pronoun = _listed(given)
        raise ValueError(f"{flags} shape{'s' * (len(given) == 1)} support/query episodes or "
                         f"regression tasks, but {args.method} learns from sequence episodes of "
                         f"--way classes x --per-class drawings: leave {pronoun} out.")
    labels = (args.labels or "one_hot").replace("-", "_")
    if labels not in LABEL_KINDS:
        raise ValueError(f"--labels must be one of {', '.join(LABEL_KINDS)}, got "
                         f"{args.labels!r}.")
    args.labels = labels
    for name in ("way", "per_class", "tasks", "lr_gamma"):
        if getattr(args, name) is None:
            setattr(args, name, SEQUENCE_DEFAULTS[name])
    if args.val_way is None:
        args.val_way = args.way
    size = args.image_size or SEQUENCE_DEFAULTS["image_size"]
    if size < 1:
        raise ValueError(f"--image-size must be a positive integer, got {size}")
    args.image_size = 28
    # k_shot and n_query stay at their defaults: the config records them, sequences ignore them
    args.shot, args.query = defaults.k_shot, defaults.n_query
    return size


def _train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    sequence_size = _resolve_training_args(args)
    train_data, val_data, data_record = _training_data(args)
    if sequence_size is not None:
        assert isinstance(train_data, FewShotDataset)  # --sinusoid was refused
        train_data = SequenceTasks(train_data, image_size=sequence_size)
        # an impossible episode shape fails here, before the run is announced
        train_data.sampler(args.way, args.per_class, args.tasks, labels=args.labels)
        data_record["sequence"] = {key: value for key, value in asdict(train_data).items()
                                   if key != "dataset"}
    config = TrainingConfig(
        n_way=1 if args.sinusoid else args.way, k_shot=args.shot, n_query=args.query,
        tasks=args.tasks, episodes=args.episodes, lr=args.lr, lr_step=args.lr_step,
        lr_gamma=args.lr_gamma,
        weight_decay=args.weight_decay, optimizer=args.optimizer,
        lr_schedule=args.lr_schedule, val_every=args.val_every if val_data else 0,
        val_episodes=args.val_episodes, val_way=args.val_way, val_shot=args.val_shot,
        val_query=args.val_query, checkpoint_every=args.checkpoint_every, seed=args.seed,
        per_class=args.per_class, labels=args.labels or "one_hot",
        pairs_per_step=args.pairs_per_step, batch_size=args.batch_size,
    )
    source = (f"folder-{args.data.resolve().name}" if args.data is not None
              else "sinusoid" if args.sinusoid else data_record["protocol"])
    loss = args.loss or "bce"
    batch_kind = "triplets" if loss == "triplet" else "pairs"
    shape = (f"{args.way}w{args.per_class}d-{args.labels}" if sequence_size is not None
             else f"{loss}-{args.pairs_per_step}{batch_kind}" if args.pairs_per_step is not None
             else f"{args.batch_size}batch" if args.batch_size is not None
             else f"{args.way}w{args.shot}s") + ("-fce" if args.fce else "")
    out = args.out or Path("runs") / f"{args.method}-{source}-{shape}-seed{args.seed}"
    torch.manual_seed(config.seed)
    method = build_method(args.method, **_method_hparams(args, train_data, config))
    if config.pairs_per_step is not None and isinstance(train_data, FewShotDataset):
        # an impossible batch of pairs fails here, before the run is announced
        method.training_sampler(train_data, config.pairs_per_step, config.seed)
    if config.batch_size is not None and isinstance(train_data, FewShotDataset):
        method.training_sampler(train_data, config.batch_size, config.seed)
    classes = (f"{train_data.num_classes} classes"
               if isinstance(train_data, FewShotDataset | SequenceTasks) else "generated tasks")
    episodes = (f"{config.n_way}-way sequences of {config.per_class} drawings per class "
                f"({config.labels} labels, {config.tasks} per step)"
                if sequence_size is not None
                else f"{config.pairs_per_step} {batch_kind} per step ({loss} loss)"
                if config.pairs_per_step is not None
                else f"class-balanced mini-batches of {config.batch_size} images"
                if config.batch_size is not None
                else f"{config.n_way}-way {config.k_shot}-shot")
    record = {
        "command": shlex.join(["fslearn", *argv]),
        "data": data_record,
        "hardware": describe_hardware(device),
    }
    print(f"Training {args.method} on {train_data.name} ({classes}), {episodes}, "
          f"{config.episodes} "
          f"{'steps' if config.pairs_per_step or config.batch_size else 'episodes'}, into {out}",
          file=sys.stderr)
    try:
        result = train(method, train_data, config, out, val_data, resume=not args.no_resume,
                       device=device, progress=not args.no_progress, record=record)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command again to resume from the last saved state "
              f"in {out / 'last'} (saved every {config.checkpoint_every} episodes).",
              file=sys.stderr)
        return 130
    best = (f", best validation accuracy {100 * result.best_val_accuracy:.2f}%"
            if result.best_val_accuracy is not None else "")
    print(f"Done: {result.episodes} episodes in {result.training_seconds:.0f} s{best}. "
          f"Best checkpoint: {result.best}")
    return 0


def _load_for_eval(args: argparse.Namespace):
    device = _device(args.device)
    method, record = load_checkpoint(args.checkpoint, device)
    data = record.get("data", {})
    if getattr(args, "data", None) is not None:
        if args.protocol or args.split != "test" or args.data_root:
            raise ValueError("--protocol, --split and --data-root choose Omniglot data, but "
                             "--data evaluates on your own folder: leave them out.")
        size, invert = _preparation(args, method, record)
        dataset = _folder(args.data, size, args.channels, invert)
        check_channels(method, dataset.image_shape[0], str(args.data), str(args.checkpoint))
        return method, dataset, device
    if data.get("dataset") == "sinusoid":
        raise ValueError(f"{args.checkpoint} is a sinusoid regression model: evaluate it with "
                         f"fslearn evaluate {args.checkpoint} --shot K.")
    if data.get("dataset", "omniglot") != "omniglot":
        raise ValueError(f"{args.checkpoint} was trained on your own images "
                         f"({data.get('train_data')}); evaluate it on a folder of test classes "
                         f"with --data DIR.")
    protocol = args.protocol or data.get("protocol", "vinyals")
    dataset = load_omniglot(args.split, protocol, args.data_root, data.get("image_size", 28))
    return method, dataset, device


def _check_episodes(episodes: int, minimum: int = MIN_REPORTED_EPISODES) -> None:
    if episodes < minimum:
        print(f"Note: {episodes} episodes; published figures use at least "
              f"{minimum}.", file=sys.stderr)


def _ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _evaluate_sequence_checkpoint(args: argparse.Namespace, record: dict[str, Any]
                                  ) -> tuple[FewShotMethod, SequenceResult, torch.device]:
    """A sequence model's accuracy by presentation on the checkpoint's kind of episodes (its
    n_way, drawings per class, labels and image presentation), unless --way or --per-class
    say otherwise."""
    _check_episodes(args.episodes, MIN_SEQUENCE_EPISODES)
    name = record.get("method")
    misplaced = [flag for flag, value in (("--shot", getattr(args, "shot", None)),
                                          ("--test-inner-steps",
                                           getattr(args, "test_inner_steps", None)))
                 if value is not None]
    if misplaced:
        flags, verb, pronoun = _listed(misplaced)
        raise ValueError(f"{flags} {verb} of support/query episodes, but {name} is a sequence "
                         f"model, tested on --way classes x --per-class drawings (default: the "
                         f"checkpoint's): leave {pronoun} out.")
    method, dataset, device = _load_for_eval(args)
    config = record.get("config", {})
    tasks = SequenceTasks(dataset, **record.get("data", {}).get("sequence", {}))
    result = evaluate_sequences(
        method, tasks, getattr(args, "way", None) or int(config.get("n_way", 5)),
        args.per_class or int(config.get("per_class") or 10), config.get("labels", "one_hot"),
        args.episodes, seed=args.seed, device=device, progress=args.progress)
    return method, result, device


def _shot_equivalents(result: SequenceResult) -> list[dict[str, Any]]:
    """The presentations that stand in for the standard k-shot settings, where the episodes
    are long enough."""
    rows = []
    for k_shot, presentation in SHOT_EQUIVALENTS:
        if presentation <= result.per_class:
            accuracy, ci95 = result.presentation(presentation)
            rows.append({"n_way": result.n_way, "k_shot": k_shot, "presentation": presentation,
                         "accuracy": accuracy, "ci95": ci95})
    return rows


def _print_shot_equivalents(rows: list[dict[str, Any]], width: int) -> None:
    for row in rows:
        setting = (f"{row['n_way']}-way {row['k_shot']}-shot "
                   f"({_ordinal(row['presentation'])} presentation)")
        print(f"{setting:<{width}}{100 * row['accuracy']:>8.2f} +/- {100 * row['ci95']:.2f}")
    if rows:
        print(f"Note: {SHOT_EQUIVALENT_NOTE}")


def _evaluate_regression(args: argparse.Namespace) -> int:
    """A sinusoid checkpoint: mean squared error after 1, 5 and 10 steps (or --test-inner-steps),
    on --query points of each of --episodes test tasks."""
    method, _ = load_checkpoint(args.checkpoint, _device(args.device))
    steps = (1, 5, 10) if args.test_inner_steps is None else (args.test_inner_steps,)
    if min(steps) < 0:
        raise ValueError(f"--test-inner-steps must be 0 or more, got {args.test_inner_steps}")
    results = evaluate_regression(method, SinusoidRegression(), args.shot, steps,
                                  n_query=args.query, episodes=args.episodes, seed=args.seed)
    if args.json:
        print(json.dumps({"checkpoint": str(resolve_checkpoint(args.checkpoint)),
                          "results": [r.to_dict() for r in results]}))
    else:
        for result in results:
            print(result)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    record = read_checkpoint(args.checkpoint).metadata
    if _is_sequence_method(record.get("method")):
        _, result, _ = _evaluate_sequence_checkpoint(args, record)
        equivalents = _shot_equivalents(result)
        if args.json:
            print(json.dumps({"checkpoint": str(resolve_checkpoint(args.checkpoint)),
                              **result.to_dict(), "shot_equivalents": equivalents,
                              "note": SHOT_EQUIVALENT_NOTE}))
        else:
            print(result)
            _print_shot_equivalents(equivalents, 36)
        return 0
    if args.per_class is not None:
        raise ValueError(f"--per-class is for the sequence models ({', '.join(SEQUENCE_METHODS)}); "
                         f"{record.get('method')} is tested on --way x --shot episodes.")
    _check_episodes(args.episodes)
    if args.shot is None:
        raise ValueError("--shot is required (support images per class, or support points).")
    if record.get("data", {}).get("dataset") == "sinusoid":
        return _evaluate_regression(args)
    if args.way is None:
        raise ValueError("--way is required: the number of classes per test episode.")
    method, dataset, device = _load_for_eval(args)
    if args.test_inner_steps is not None:
        if not isinstance(method, InnerLoopMethod):
            raise ValueError(f"--test-inner-steps is for the optimisation-based methods "
                             f"({', '.join(OPTIMISATION_METHODS)}); {method.name} does not "
                             f"adapt by gradient steps.")
        if args.test_inner_steps < 0:
            raise ValueError(f"--test-inner-steps must be 0 or more, got {args.test_inner_steps}")
        method.test_inner_steps = args.test_inner_steps
    result = evaluate(method, dataset, args.way, args.shot, args.query, args.episodes,
                      seed=args.seed, device=device, progress=args.progress)
    if args.json:
        print(json.dumps({"checkpoint": str(resolve_checkpoint(args.checkpoint)),
                          **result.to_dict()}))
    else:
        print(result)
    return 0


def _regression_report(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str, str]:
    """Finn et al.'s Table 2 settings for a sinusoid checkpoint: MSE after 1, 5 and 10 steps on
    the checkpoint's K support points, 100 query points per task."""
    device = _device(args.device)
    method, record = load_checkpoint(args.checkpoint, device)
    k_shot = int(record["config"]["k_shot"])
    paper = PAPER_RESULTS["sinusoid"].get(method.name, {}).get(k_shot, {})
    results = evaluate_regression(method, SinusoidRegression(), k_shot, (1, 5, 10),
                                  n_query=100, episodes=args.episodes, seed=args.seed)
    rows = [{**r.to_dict(), "paper_mse": paper.get(r.steps)} for r in results]
    return rows, PAPER_RESULTS["citations"]["sinusoid"], describe_hardware(device)


def _sequence_report(args: argparse.Namespace, argv: Sequence[str], folder: Path,
                     record: dict[str, Any]) -> int:
    """A sequence model's accuracy by presentation beside Santoro et al.'s Table 1 (5-way
    one-hot episodes only), and as the 5-way 1-shot and 5-shot equivalents."""
    args.per_class = None  # the checkpoint's episodes
    method, result, device = _evaluate_sequence_checkpoint(args, record)
    table = PAPER_RESULTS["sequences"]
    comparable = result.labels == "one_hot"
    paper = {name: figures.get(result.n_way, {}) if comparable else {}
             for name, figures in table.items()}
    rows = [{"presentation": k, "accuracy": accuracy, "ci95": ci95,
             "paper_accuracy": paper.get(method.name, {}).get(k)}
            for k, (accuracy, ci95) in enumerate(zip(result.by_presentation,
                                                     result.by_presentation_ci95,
                                                     strict=True), 1)]
    equivalents = _shot_equivalents(result)
    report = {
        "checkpoint": folder.name,
        "command": shlex.join(["fslearn", *argv]),
        "paper": PAPER_RESULTS["citations"]["sequences"],
        "hardware": describe_hardware(device),
        "n_way": result.n_way, "per_class": result.per_class, "labels": result.labels,
        "episodes": result.episodes, "seed": result.seed, "dataset": result.dataset,
        "results": rows,
        "paper_table": {name: {str(k): v for k, v in figures.items()}
                        for name, figures in paper.items()},
        "shot_equivalents": equivalents,
        "note": SHOT_EQUIVALENT_NOTE,
    }
    if args.json:
        print(json.dumps(report))
    else:
        names = list(table)
        width = max(len(f"paper {name}") for name in names) + 2
        print(f"{result.n_way}-way sequences, {result.per_class} drawings per class, "
              f"{result.labels} labels, {result.episodes} episodes of {result.dataset}")
        print(f"{'presentation':<14}{'fslearn ' + method.name:>22}"
              + "".join(f"{'paper ' + name:>{width}}" for name in names))
        for row in rows:
            k = row["presentation"]
            ours = f"{100 * row['accuracy']:.2f} +/- {100 * row['ci95']:.2f}"
            theirs = "".join(f"{'' if k not in paper[n] else f'{100 * paper[n][k]:.1f}':>{width}}"
                             for n in names)
            print(f"{_ordinal(k):<14}{ours:>22}{theirs}")
        _print_shot_equivalents(equivalents, 36)
        print(f"Paper: {report['paper']}" + ("" if comparable else
                                             " (one-hot labels only: not comparable)"))
    if args.write:
        write_json_atomically(folder / "results.json", report)
        print(f"Wrote {folder / 'results.json'}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace, argv: Sequence[str]) -> int:
    folder = resolve_checkpoint(args.checkpoint)
    record = read_checkpoint(folder).metadata
    if _is_sequence_method(record.get("method")):
        return _sequence_report(args, argv, folder, record)
    _check_episodes(args.episodes)
    if record.get("data", {}).get("dataset") == "sinusoid":
        rows, citation, hardware = _regression_report(args)
        report = {"checkpoint": folder.name, "command": shlex.join(["fslearn", *argv]),
                  "paper": citation, "hardware": hardware, "results": rows}
        if args.json:
            print(json.dumps(report))
        else:
            print(f"{'setting':<16}{'fslearn MSE':>22}{'paper':>10}")
            for row in rows:
                theirs = "" if row["paper_mse"] is None else f"{row['paper_mse']:.2f}"
                ours = f"{row['mse']:.3f} +/- {row['ci95']:.3f}"
                steps = f"{row['steps']} step{'s' * (row['steps'] != 1)}"
                print(f"K={row['k_shot']}, {steps:<9}{ours:>22}{theirs:>10}")
        if args.write:
            write_json_atomically(folder / "results.json", report)
            print(f"Wrote {folder / 'results.json'}", file=sys.stderr)
        return 0
    method, dataset, device = _load_for_eval(args)
    paper = PAPER_RESULTS.get(method.name, {})
    rows: list[dict[str, Any]] = []
    embeddings = (embed_dataset(method, dataset, device)
                  if isinstance(method, MetricMethod) else None)
    # a model with a head of n_way classes (MAML and its variants) scores n_way-way tasks only
    head = getattr(method, "n_way", None)
    for n_way, k_shot in STANDARD_SETTINGS:
        if head is not None and n_way != head:
            continue
        result = evaluate(method, dataset, n_way, k_shot, args.query, args.episodes,
                          seed=args.seed, device=device, embeddings=embeddings,
                          progress=args.progress)
        rows.append({**result.to_dict(), "paper_accuracy": paper.get((n_way, k_shot))})
    report = {
        "checkpoint": folder.name,
        "command": shlex.join(["fslearn", *argv]),
        "paper": PAPER_RESULTS.get("citations", {}).get(method.name),
        "hardware": describe_hardware(device),
        "results": rows,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{'setting':<16}{'fslearn':>22}{'paper':>10}")
        for row in rows:
            ours = f"{100 * row['accuracy']:.2f} +/- {100 * row['ci95']:.2f}"
            theirs = "" if row["paper_accuracy"] is None else f"{100 * row['paper_accuracy']:.1f}"
            print(f"{row['n_way']}-way {row['k_shot']}-shot{'':<4}{ours:>22}{theirs:>10}")
    if args.write:
        write_json_atomically(folder / "results.json", report)
        print(f"Wrote {folder / 'results.json'}", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    device = _device(args.device)
    predictions = predict(args.checkpoint, args.support, args.query, image_size=args.image_size,
                          channels=args.channels, invert=args.invert, device=device,
                          batch_size=args.batch_size)
    method, record = load_checkpoint(args.checkpoint)
    size, invert = _preparation(args, method, record)
    preparation = ImagePreparation(size, int(method.hparams.get("in_channels", 1)), invert)
    if args.json:
        print(json.dumps({"checkpoint": str(resolve_checkpoint(args.checkpoint)),
                          "support": str(args.support),
                          "preparation": asdict(preparation),
                          "predictions": [p.to_dict() for p in predictions]}))
    else:
        print(f"Images prepared as {args.checkpoint}'s training images: "
              f"{preparation.describe()}.", file=sys.stderr)
        print(format_predictions(predictions))
    return 0


def _list(args: argparse.Namespace) -> int:
    shipped = shipped_checkpoints()
    listing = []
    for name, folder in shipped.items():
        record = json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))
        results_file = folder / "results.json"
        results = (json.loads(results_file.read_text(encoding="utf-8"))["results"]
                   if results_file.is_file() else [])
        keys = (("k_shot", "steps", "mse", "ci95")
                if record.get("data", {}).get("dataset") == "sinusoid"
                else ("presentation", "accuracy", "ci95") if _is_sequence_method(record["method"])
                else ("n_way", "k_shot", "accuracy", "ci95"))
        listing.append({"name": name, "method": record["method"], "path": str(folder),
                        "data": record.get("data"), "command": record.get("command"),
                        "results": [{k: r[k] for k in keys} for r in results]})
    if args.json:
        print(json.dumps(listing))
        return 0
    if not listing:
        print("No shipped checkpoints.")
    for item in listing:
        data = item["data"] or {}
        if data.get("dataset") == "sinusoid":
            figures = ", ".join(f"K={r['k_shot']} {r['steps']} step{'s' * (r['steps'] != 1)} "
                                f"MSE {r['mse']:.3f}" for r in item["results"])
            print(f"{item['name']}: {item['method']} on sinusoid regression {figures}")
            continue
        if _is_sequence_method(item["method"]):
            figures = ", ".join(f"{_ordinal(r['presentation'])} {100 * r['accuracy']:.2f}%"
                                for r in item["results"] if r["presentation"] in (1, 2, 5, 10))
            print(f"{item['name']}: {item['method']} on {data.get('dataset')} "
                  f"({data.get('protocol', data.get('train_data'))}) sequences, by "
                  f"presentation: {figures}")
            continue
        figures = ", ".join(f"{r['n_way']}w{r['k_shot']}s {100 * r['accuracy']:.2f}%"
                            for r in item["results"])
        print(f"{item['name']}: {item['method']} on {data.get('dataset')} "
              f"({data.get('protocol', data.get('train_data'))}) {figures}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fslearn`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args, argv)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "report":
            return _report(args, argv)
        if args.command == "predict":
            return _predict(args)
        return _list(args)
    except (CheckpointError, DataError, DataNotFoundError, DownloadError, ValueError, OSError,
            FloatingPointError) as error:
        # One line, no traceback: the messages say what was wrong and what to do.
        print(f"fslearn {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
