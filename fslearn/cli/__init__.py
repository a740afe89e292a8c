"""The fslearn command: train, evaluate, report, predict, list checkpoints, tabulate them, score
Lake's one-shot challenge and build datasets.

examples:
    fslearn train protonet --protocol vinyals --way 60 --shot 1 --query 5 --episodes 20000
    fslearn evaluate protonet-omniglot --way 5 --shot 1 --episodes 1000 --json
    fslearn report protonet-omniglot --write
    fslearn checkpoints
    fslearn results
    fslearn challenge protonet-omniglot
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
  printed letters of many scripts, drawn from fonts (a test of domain shift):
    fslearn data glyphs --out glyphs/
    fslearn evaluate protonet-omniglot --data glyphs/ --way 5 --shot 1

Run `fslearn COMMAND --help` for the options of a command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fslearn import __version__
from fslearn._system import keep_freed_memory
from fslearn.checkpoints import CheckpointError
from fslearn.cli import challenge, checkpoints, data, evaluate, predict, report, results, train
from fslearn.data.download import DownloadError
from fslearn.data.errors import DataError, one_line
from fslearn.data.omniglot import DataNotFoundError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    """The whole command line: one sub-parser per subcommand, each from its module."""
    parser = argparse.ArgumentParser(
        prog="fslearn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fslearn {__version__}",
                        help="print the version of fslearn and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, evaluate, report, predict, checkpoints, results, challenge, data):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fslearn`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    # freed activations stay in the process instead of being faulted in again at every step
    # (up to a third of a training step's time on Linux; see fslearn._system)
    keep_freed_memory()
    try:
        if args.command == "train":
            return train.run(args, argv)
        if args.command == "evaluate":
            return evaluate.run(args)
        if args.command == "report":
            return report.run(args, argv)
        if args.command == "predict":
            return predict.run(args)
        if args.command == "data":
            return data.run(args, argv)
        if args.command == "results":
            return results.run(args)
        if args.command == "challenge":
            return challenge.run(args)
        return checkpoints.run(args)
    except (CheckpointError, DataError, DataNotFoundError, DownloadError, ValueError, OSError,
            FloatingPointError) as error:
        # One line, no traceback: the messages say what was wrong and what to do.
        print(f"fslearn {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
