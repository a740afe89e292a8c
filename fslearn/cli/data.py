"""``fslearn data``: build datasets that need no download.

``fslearn data glyphs --out DIR`` draws printed letters of many scripts from fonts (see
:mod:`fslearn.data.glyphs`) into a folder of class subfolders, which ``fslearn evaluate CKPT
--data DIR`` and ``fslearn predict`` read as they are.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from fslearn.cli._args import HelpFormatter
from fslearn.data import glyphs as glyph_data
from fslearn.data.glyphs import RECORD_FILE, build_glyphs, find_faces
from fslearn.data.scripts import find_scripts, script_letters

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """``fslearn data`` and its subcommands."""
    data = commands.add_parser("data", help="build datasets that need no download",
                               description="Build datasets that need no download.")
    kinds = data.add_subparsers(dest="dataset", required=True, metavar="DATASET",
                                help="the dataset to build")
    glyphs = kinds.add_parser(
        "glyphs", formatter_class=HelpFormatter,
        help="printed letters of many scripts, drawn from fonts (one class per letter)",
        description="Printed letters of many scripts, drawn from fonts: one class per letter, "
        "images in several fonts and styles with a small affine jitter, black on white at "
        "105x105 like Omniglot's drawings. Deterministic: the same command gives the same "
        "bytes. Evaluate a checkpoint on them with `fslearn evaluate CKPT --data DIR` (models "
        "trained on Omniglot invert the images by default, as they should).")
    glyphs.add_argument("--out", type=Path, metavar="DIR",
                        help="a new or empty folder (no default: required unless --list)")
    glyphs.add_argument("--scripts", nargs="+", default=None, metavar="SCRIPT",
                        help="scripts to draw, e.g. Latin Greek canadian-syllabics (default: "
                        "every script some font has; see --list)")
    glyphs.add_argument("--exclude", nargs="+", default=None, metavar="SCRIPT",
                        help="scripts to leave out; 'omniglot': every script of an Omniglot "
                        "alphabet (Latin, Greek, Tifinagh, ...), so that a model trained on "
                        "Omniglot meets only new letters (default: none)")
    glyphs.add_argument("--fonts", nargs="+", default=None, metavar="FAMILY",
                        help="font families by file name, e.g. DejaVuSans NotoSerif (default: "
                        "all found)")
    glyphs.add_argument("--font-dir", nargs="+", type=Path, default=None, metavar="DIR",
                        help="more folders of Family-Style.ttf fonts (default: matplotlib's "
                        f"DejaVu and {glyph_data.NOTO_DIR} if installed)")
    glyphs.add_argument("--per-class", type=int, default=20,
                        help="images of each letter (Omniglot has 20 drawings of each "
                        "character)")
    glyphs.add_argument("--seed", type=int, default=0, help="the jitter and the order of fonts")
    glyphs.add_argument("--list", action="store_true",
                        help="list the scripts, their letters and the fonts that have them, "
                        "then exit (default: build the dataset)")
    glyphs.add_argument("--progress", action="store_true",
                        help="show a progress bar (default: hidden)")


def _list(args: argparse.Namespace) -> int:
    faces = find_faces(args.font_dir or (), args.fonts)
    print(f"{len(faces)} font files ({len({face.family for face in faces})} families); "
          f"letters that some font has, of each script's letters:")
    for script in find_scripts(args.scripts, args.exclude or ()):
        letters = script_letters(script)
        families = sorted({face.family for face in faces
                           if any(ord(char) in face.code_points for char in letters)})
        covered = sum(any(ord(char) in face.code_points for face in faces) for char in letters)
        shown = ", ".join(families[:4]) + (f" and {len(families) - 4} more"
                                           if len(families) > 4 else "")
        print(f"{script.name:<24}{covered:>4} of {len(letters):<4} {shown or '(no font)'}")
    return 0


def _glyphs(args: argparse.Namespace, argv: list[str]) -> int:
    if args.list:
        return _list(args)
    if args.out is None:
        raise ValueError("--out DIR is required: the new folder to write the dataset to.")
    record = build_glyphs(args.out, args.scripts, args.fonts, args.font_dir or (), args.per_class,
                          args.exclude or (), args.seed, command=shlex.join(["fslearn", *argv]),
                          progress=args.progress)
    noto = glyph_data.NOTO_DIR
    if not noto.is_dir() and args.scripts is None and not args.font_dir:
        print(f"Note: Debian's fonts-noto-core is not installed ({noto}): only "
              f"matplotlib's DejaVu fonts were used, {len(record['scripts'])} scripts; as root, "
              f"`apt-get install fonts-noto-core` adds about 130 more.", file=sys.stderr)
    print(f"Wrote {record['classes']} classes ({len(record['scripts'])} scripts, "
          f"{len(record['fonts'])} font files) x {record['per_class']} images to {args.out}; "
          f"record: {args.out / RECORD_FILE}")
    return 0


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """``fslearn data``: returns the exit status."""
    return _glyphs(args, argv)
