"""``fslearn predict``: classify new images among the classes of a few labelled ones."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fslearn.checkpoints import load_checkpoint, resolve_checkpoint
from fslearn.cli._args import command, image_args, preparation, torch_device
from fslearn.prediction import ImagePreparation, format_predictions, predict

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """``fslearn predict`` and its options."""
    pr = command(commands, "predict",
                 "classify new images among the classes of a few labelled ones")
    pr.add_argument("checkpoint", help="checkpoint folder, run folder, or shipped name")
    pr.add_argument("--support", type=Path, required=True, metavar="DIR",
                    help="the labelled images: a folder with one subfolder per class, any number "
                    "of images in each (required)")
    pr.add_argument("--query", nargs="+", required=True, metavar="PATH",
                    help="the images to classify: files, or folders searched recursively "
                    "(required)")
    image_args(pr, training=False)
    pr.add_argument("--batch-size", type=int, default=256, help="query images scored together")
    pr.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda if available)")
    pr.add_argument("--json", action="store_true",
                    help="print one JSON object (default: a table)")



def run(args: argparse.Namespace) -> int:
    """``fslearn predict``: returns the exit status."""
    device = torch_device(args.device)
    predictions = predict(args.checkpoint, args.support, args.query, image_size=args.image_size,
                          channels=args.channels, invert=args.invert, device=device,
                          batch_size=args.batch_size)
    method, record = load_checkpoint(args.checkpoint)
    size, invert = preparation(args, method, record)
    prepared = ImagePreparation(size, int(method.hparams.get("in_channels", 1)), invert)
    if args.json:
        print(json.dumps({"checkpoint": str(resolve_checkpoint(args.checkpoint)),
                          "support": str(args.support),
                          "preparation": asdict(prepared),
                          "predictions": [p.to_dict() for p in predictions]}))
    else:
        print(f"Images prepared as {args.checkpoint}'s training images: "
              f"{prepared.describe()}.", file=sys.stderr)
        print(format_predictions(predictions))
    return 0
