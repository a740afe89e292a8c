"""``fslearn evaluate``: accuracy with its 95% CI over test episodes (by presentation for
sequence models; mean squared error for sinusoid regression models)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from fslearn.checkpoints import load_checkpoint, read_checkpoint, resolve_checkpoint
from fslearn.cli._args import (
    check_episodes,
    command,
    episode_args,
    image_args,
    learns_from_sequences,
    listed,
    load_for_eval,
    names,
    ordinal,
    owners_of,
    sequence_methods,
    torch_device,
)
from fslearn.data.sequences import SequenceTasks
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.evaluation import (
    SHOT_EQUIVALENT_NOTE,
    SequenceResult,
    evaluate,
    evaluate_regression,
    evaluate_sequences,
)
from fslearn.evaluation.sequences import SHOT_EQUIVALENTS as SHOT_EQUIVALENTS
from fslearn.evaluation.sequences import shot_equivalents
from fslearn.methods import FewShotMethod
from fslearn.precision import PRECISIONS, computing_in
from fslearn.training_config import config_from_record

__all__ = ["add_parser", "run"]

#: fewest test episodes for a by-presentation figure beside the paper's
MIN_SEQUENCE_EPISODES = 1000


def add_parser(commands: Any) -> None:
    """``fslearn evaluate`` and its options."""
    ev = command(commands, "evaluate", "accuracy with its 95%% CI over test episodes")
    ev.add_argument("checkpoint", help="checkpoint folder, run folder, or shipped name")
    ev.add_argument("--way", type=int, default=None,
                    help="classes per test episode (no default: required, except for sinusoid "
                    "and sequence models)")
    ev.add_argument("--per-class", "--drawings", type=int, default=None,
                    help=f"{sequence_methods()}: drawings of each class per test "
                    f"episode (default: the checkpoint's)")
    ev.add_argument("--shot", type=int, default=None,
                    help="support images per class, or support points for sinusoid models (no "
                    "default: required)")
    episode_args(ev)
    ev.add_argument("--test-inner-steps", type=int, default=None,
                    help=f"for {names(owners_of('test_inner_steps'))}: inner steps on each test "
                    f"episode's support set (default: the checkpoint's)")
    ev.add_argument("--data", type=Path, default=None, metavar="DIR",
                    help="evaluate on your own test classes: a folder with one subfolder of "
                    "images per class (default: the Omniglot test split)")
    ev.add_argument("--within-alphabet", action="store_true",
                    help="draw each episode's classes from one alphabet (or script), as Lake et "
                    "al.'s within-alphabet tests do: harder than classes from the whole split "
                    "(default: classes from every alphabet)")
    ev.add_argument("--unlabelled", type=int, default=0, metavar="M",
                    help="for the methods that learn from unlabelled images: M unlabelled images "
                    "of each episode class (and of each distractor class) in every test episode "
                    "(default: 0, none)")
    ev.add_argument("--distractors", type=int, default=0, metavar="H",
                    help="with --unlabelled: H distractor classes per test episode, that bring "
                    "only unlabelled images (default: 0)")
    image_args(ev, training=False)
    ev.add_argument("--precision", choices=PRECISIONS, default="float32",
                    help="float32 (default), or bf16: bfloat16 autocast where the CPU or GPU has "
                    "it (faster; figures differ from float32's by its rounding)")
    ev.add_argument("--json", action="store_true",
                    help="print one JSON object (default: a line of text)")


def evaluate_sequence_checkpoint(args: argparse.Namespace, record: dict[str, Any]
                                  ) -> tuple[FewShotMethod, SequenceResult, torch.device]:
    """A sequence model's accuracy by presentation on the checkpoint's kind of episodes (its
    n_way, drawings per class, labels and image presentation), unless --way or --per-class
    say otherwise."""
    check_episodes(args.episodes, MIN_SEQUENCE_EPISODES)
    name = record.get("method")
    misplaced = [flag for flag, value in (("--shot", getattr(args, "shot", None)),
                                          ("--test-inner-steps",
                                           getattr(args, "test_inner_steps", None)),
                                          ("--within-alphabet",
                                           getattr(args, "within_alphabet", None) or None),
                                          ("--unlabelled",
                                           getattr(args, "unlabelled", None) or None),
                                          ("--distractors",
                                           getattr(args, "distractors", None) or None))
                 if value is not None]
    if misplaced:
        flags, verb, pronoun = listed(misplaced)
        raise ValueError(f"{flags} {verb} of support/query episodes, but {name} is a sequence "
                         f"model, tested on --way classes x --per-class drawings (default: the "
                         f"checkpoint's): leave {pronoun} out.")
    method, dataset, device = load_for_eval(args)
    # a record of any age; one without a config was made by hand: Santoro et al.'s episodes
    config = config_from_record({"n_way": 5, **record.get("config", {})})
    tasks = SequenceTasks(dataset, **record.get("data", {}).get("sequence", {}))
    result = evaluate_sequences(
        method, tasks, getattr(args, "way", None) or config.n_way,
        args.per_class or config.sampler.get("per_class", 10),
        config.sampler.get("labels", "one_hot"), args.episodes, seed=args.seed, device=device,
        progress=args.progress)
    return method, result, device


def print_shot_equivalents(rows: list[dict[str, Any]], width: int) -> None:
    for row in rows:
        setting = (f"{row['n_way']}-way {row['k_shot']}-shot "
                   f"({ordinal(row['presentation'])} presentation)")
        print(f"{setting:<{width}}{100 * row['accuracy']:>8.2f} +/- {100 * row['ci95']:.2f}")
    if rows:
        print(f"Note: {SHOT_EQUIVALENT_NOTE}")


def _evaluate_regression(args: argparse.Namespace) -> int:
    """A sinusoid checkpoint: mean squared error after 1, 5 and 10 steps (or --test-inner-steps),
    on --query points of each of --episodes test tasks."""
    method, _ = load_checkpoint(args.checkpoint, torch_device(args.device))
    steps = (1, 5, 10) if args.test_inner_steps is None else (args.test_inner_steps,)
    if min(steps) < 0:
        raise ValueError(f"--test-inner-steps must be 0 or more, got {args.test_inner_steps}")
    results = evaluate_regression(method, SinusoidRegression(), args.shot, steps,
                                  n_query=args.query, episodes=args.episodes, seed=args.seed)
    if args.json:
        print(json.dumps({"checkpoint": str(resolve_checkpoint(args.checkpoint)),
                          **_precision(args), "results": [r.to_dict() for r in results]}))
    else:
        for result in results:
            print(result)
    return 0


def run(args: argparse.Namespace) -> int:
    """``fslearn evaluate``: returns the exit status."""
    device = torch_device(args.device)
    with computing_in(args.precision, device):
        status = _run(args)
    if args.precision != "float32" and not args.json:
        print(f"Computed in {args.precision} (--precision {args.precision}).")
    return status


def _run(args: argparse.Namespace) -> int:
    record = read_checkpoint(args.checkpoint).metadata
    if learns_from_sequences(record.get("method")):
        _, result, _ = evaluate_sequence_checkpoint(args, record)
        equivalents = shot_equivalents(result)
        if args.json:
            print(json.dumps({"checkpoint": str(resolve_checkpoint(args.checkpoint)),
                              **_precision(args), **result.to_dict(),
                              "shot_equivalents": equivalents, "note": SHOT_EQUIVALENT_NOTE}))
        else:
            print(result)
            print_shot_equivalents(equivalents, 36)
        return 0
    if args.per_class is not None:
        raise ValueError(f"--per-class is for the sequence models ({sequence_methods()}); "
                         f"{record.get('method')} is tested on --way x --shot episodes.")
    check_episodes(args.episodes)
    if args.shot is None:
        raise ValueError("--shot is required (support images per class, or support points).")
    if record.get("data", {}).get("dataset") == "sinusoid":
        if args.within_alphabet or args.unlabelled or args.distractors:
            raise ValueError("--within-alphabet, --unlabelled and --distractors are for image "
                             "checkpoints; a sinusoid model's tasks have none: leave them out.")
        return _evaluate_regression(args)
    if args.way is None:
        raise ValueError("--way is required: the number of classes per test episode.")
    method, dataset, device = load_for_eval(args)
    if args.test_inner_steps is not None:
        # the methods that declare the option adapt at test time, by this many steps
        adapters = owners_of("test_inner_steps")
        if type(method) not in adapters:
            family = adapters[0].family if adapters else None
            raise ValueError(f"--test-inner-steps is for the "
                             f"{'methods' if family is None else family.name} "
                             f"({names(adapters)}); {method.name} does not adapt by gradient "
                             f"steps.")
        if args.test_inner_steps < 0:
            raise ValueError(f"--test-inner-steps must be 0 or more, got {args.test_inner_steps}")
        method.test_inner_steps = args.test_inner_steps
    if (args.unlabelled or args.distractors) and type(method) not in owners_of("unlabelled"):
        raise ValueError(f"--unlabelled and --distractors give episodes unlabelled images, which "
                         f"{method.name} does not use: leave them out (they are for "
                         f"{names(owners_of('unlabelled'))}).")
    result = evaluate(method, dataset, args.way, args.shot, args.query, args.episodes,
                      seed=args.seed, device=device, progress=args.progress,
                      within_alphabet=args.within_alphabet, unlabelled=args.unlabelled,
                      distractors=args.distractors)
    if args.json:
        print(json.dumps({"checkpoint": str(resolve_checkpoint(args.checkpoint)),
                          **_precision(args), **result.to_dict()}))
    else:
        print(result)
    return 0


def _precision(args: argparse.Namespace) -> dict[str, str]:
    """The JSON output's word on precision: none in float32 (as before the option existed)."""
    return {} if args.precision == "float32" else {"precision": args.precision}
