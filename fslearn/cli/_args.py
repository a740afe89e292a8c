"""What the subcommands share: the help formatter, the options of test episodes and image
preparation, devices, data folders, loading a checkpoint for evaluation, and the registered
methods' declarations (which method declares an option, which methods make up a family)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fslearn.checkpoints import load_checkpoint
from fslearn.data.dataset import FewShotDataset
from fslearn.data.folder import load_image_folder
from fslearn.data.omniglot import PROTOCOLS, load_omniglot
from fslearn.evaluation import MIN_REPORTED_EPISODES
from fslearn.methods import METHODS, FewShotMethod
from fslearn.methods.options import Family, Option, declared_options
from fslearn.prediction import check_channels, image_preparation

#: default side of the training images, where the method declares none
IMAGE_SIZE = 28


def declared() -> dict[str, tuple[Option, list[type[FewShotMethod]]]]:
    """Every registered method's options by argument name, with the methods that declare
    them (in registration order)."""
    return dict(declared_options(METHODS.values()))


def names(methods: Sequence[type[FewShotMethod]]) -> str:
    """``"maml, fomaml"``: the registered names of ``methods``."""
    return ", ".join(method.name for method in methods)


def members(family: Family) -> list[type[FewShotMethod]]:
    """The registered methods of ``family``, in registration order."""
    return [method for method in METHODS.values() if method.family is family]


def owners_of(dest: str) -> list[type[FewShotMethod]]:
    """The registered methods that declare the option ``dest`` (none for a shared one)."""
    return declared().get(dest, (None, []))[1]


def learns_from_sequences(name: object) -> bool:
    """Whether the registered method ``name`` (a checkpoint's record) is tested on sequence
    episodes."""
    method = METHODS.get(name) if isinstance(name, str) else None
    return method is not None and method.episode_kind == "sequences"


def sequence_methods() -> str:
    """The registered methods tested on sequence episodes, for help and messages."""
    return names([method for method in METHODS.values() if method.episode_kind == "sequences"])


def listed(flags: Sequence[str]) -> tuple[str, str, str]:
    """``("--a, --b", "are options", "them")`` or the singular, for messages about flags."""
    many = len(flags) > 1
    return ", ".join(flags), "are options" if many else "is an option", "them" if many else "it"


def torch_device(name: str) -> torch.device:
    """The device that --device names (auto: CUDA if PyTorch sees one)."""
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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` after each option's help, except where the default is ``None``
    or a flag's ``False`` (their help says in words what happens by default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action) or ""


def command(commands: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand's parser, its description the help line as a sentence."""
    description = help_text.replace("%%", "%")
    return commands.add_parser(name, help=help_text, formatter_class=HelpFormatter,
                               description=description[0].upper() + description[1:] + ".")


def image_args(sub: argparse.ArgumentParser, training: bool, image_size: int = IMAGE_SIZE
               ) -> None:
    """The options that prepare images; ``image_size``: the training default."""
    group = sub.add_argument_group("image preparation" if training else
                                   "image preparation, for your own images (default: as the "
                                   "checkpoint's training images)")
    if training:
        group.add_argument("--image-size", type=int, default=None,
                           help=f"side of the square images, in pixels (images of any size are "
                           f"resized) (default: {image_size})")
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


def episode_args(sub: argparse.ArgumentParser) -> None:
    """The options of test episodes and their data (evaluate, report)."""
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


def folder(path: Path, image_size: int, channels: int | None, invert: bool) -> FewShotDataset:
    """A folder dataset; ``channels=None`` keeps the images' own (3 if any is in colour)."""
    return load_image_folder(path, image_size, None if channels is None else channels == 1,
                             invert)


def preparation(args: argparse.Namespace, method: FewShotMethod, record: dict[str, Any]
                 ) -> tuple[int, bool]:
    """``(image size, invert)``: the checkpoint's, unless the command line says otherwise."""
    prepared = image_preparation(method, record)
    return (args.image_size or prepared.image_size,
            prepared.invert if args.invert is None else args.invert)


def load_for_eval(args: argparse.Namespace
                  ) -> tuple[FewShotMethod, FewShotDataset, torch.device]:
    """The checkpoint's method and the test classes: --data's folder, else Omniglot's."""
    device = torch_device(args.device)
    method, record = load_checkpoint(args.checkpoint, device)
    data = record.get("data", {})
    if getattr(args, "data", None) is not None:
        if args.protocol or args.split != "test" or args.data_root:
            raise ValueError("--protocol, --split and --data-root choose Omniglot data, but "
                             "--data evaluates on your own folder: leave them out.")
        size, invert = preparation(args, method, record)
        dataset = folder(args.data, size, args.channels, invert)
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


def check_episodes(episodes: int, minimum: int = MIN_REPORTED_EPISODES) -> None:
    """A note on stderr where fewer episodes are asked for than published figures use."""
    if episodes < minimum:
        print(f"Note: {episodes} episodes; published figures use at least "
              f"{minimum}.", file=sys.stderr)


def ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"
