"""Printed characters of many scripts, rendered from fonts: a second dataset that needs no
download, for testing few-shot models under a change of domain (handwriting -> print).

* **Classes** are letters (:mod:`fslearn.data.scripts`): a class for every letter that at least
  one font really has a glyph for (its character map lists it and the glyph has ink: no empty
  boxes), less *homoglyphs* — a letter drawn exactly like an earlier class in the same font
  (Cyrillic A, U+0410, and Latin A) would make an episode unanswerable, so it is left out and
  the record says which class it duplicates.
* **Instances**: ``per_class`` images of each letter (20 by default, as Omniglot's 20 drawers),
  cycling over the font faces (families x styles: regular, bold, italic, bold italic) that have
  it, in an order drawn per letter, each with a small affine jitter (rotation, shear, scale,
  shift) drawn from ``(seed, code point, instance)``: every build gives the same bytes.
* **Images** are drawn like Omniglot's: black ink on white, 105x105 pixels, black and white
  (the glyph centred and, if it is larger than 88 pixels, shrunk to fit). The folder loader's
  preparation (greyscale, Lanczos resize, optional inversion) is then exactly the Omniglot
  loader's: ``load_image_folder(DIR, 28, invert=True)``, or :func:`load_glyphs`, gives 28x28
  images with ink = 255. A checkpoint trained on Omniglot inverts a folder by default, so
  ``fslearn evaluate CKPT --data DIR`` and ``fslearn predict`` need no ``--invert``; only a
  model trained without ``--invert`` on a folder of light-on-dark images needs it.

Fonts: matplotlib's bundled DejaVu Sans, Serif and Sans Mono (Latin, Greek, Cyrillic, Armenian,
Georgian, Hebrew, Arabic, Tifinagh, Canadian Syllabics, N'Ko, Lao, Ogham, Runic...), and every
``Family-Style.ttf/.otf`` of Debian's ``fonts-noto-core`` (``/usr/share/fonts/truetype/noto``,
about 130 more scripts) and of any ``font_dirs`` given. The record (``glyphs.json``) lists every
font file used with its SHA-256, the versions of Pillow, FreeType and Unicode, the classes per
script and a digest of all images.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL import __version__ as pillow_version
from PIL import features as pil_features

from fslearn.data.dataset import FewShotDataset
from fslearn.data.errors import DataError
from fslearn.data.folder import load_image_folder
from fslearn.data.omniglot import DataNotFoundError
from fslearn.data.scripts import Script, find_scripts, script_letters

__all__ = [
    "GLYPH_SIZE",
    "NOTO_DIR",
    "RECORD_FILE",
    "FontFace",
    "GlyphClass",
    "build_glyphs",
    "find_faces",
    "load_glyphs",
    "plan_glyphs",
    "render_glyph",
]

#: Side of the drawings, as Omniglot's (the loaders resize them, by default to 28).
GLYPH_SIZE = 105
#: Debian's fonts-noto-core installs its fonts here.
NOTO_DIR = Path("/usr/share/fonts/truetype/noto")
#: The record of a build, in its folder (the folder loader reads only class subfolders).
RECORD_FILE = "glyphs.json"
_FORMAT = 1
#: Font size in pixels: a Latin capital is about 64 pixels high; at 28x28 the glyphs are then
#: about as large as Omniglot's characters (17 to 18 pixels on their longer side, on average).
_EM = 88
#: The largest side of a glyph before it is shrunk to fit (the rest is margin for the jitter).
_FIT = 88
#: Jitter ranges: degrees of rotation, shear (x per y), scale and shift in pixels.
_ROTATION, _SHEAR, _SCALE, _SHIFT = 8.0, 0.12, (0.9, 1.05), 5.0
#: The file-name styles taken from every family, and their names in the record.
_STYLES = {"": "Regular", "Regular": "Regular", "Book": "Regular", "Bold": "Bold",
           "Italic": "Italic", "Oblique": "Italic", "BoldItalic": "BoldItalic",
           "BoldOblique": "BoldItalic"}
#: matplotlib ships other fonts too (STIX, Computer Modern, and a last-resort font whose
#: every glyph is a placeholder box): only the DejaVu families are used.
_MATPLOTLIB_FAMILIES = ("DejaVuSans", "DejaVuSansMono", "DejaVuSerif")
#: Two letters whose binarised 28x28 drawings in the same font differ in at most this many
#: pixels are homoglyphs: Cyrillic A (U+0410) and Latin A (0), Armenian Oh and Latin O (2),
#: Arabic zah and tah, whose dot the resize loses (1). At 4 to 6 pixels are pairs that are
#: hard but distinguishable (a dot or a tick that survives the resize); they stay classes.
_HOMOGLYPH_PIXELS = 3
#: A code point that no font maps: drawing it draws the font's .notdef glyph (often a box).
_UNMAPPED = chr(0x10FFFF)


@dataclass(frozen=True)
class FontFace:
    """One font file: a family in one style."""

    path: Path
    family: str
    style: str
    source: str

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @cached_property
    def code_points(self) -> frozenset[int]:
        """The code points its character map gives a real glyph (not ``.notdef``)."""
        from fontTools.ttLib import TTFont

        with TTFont(self.path, lazy=True) as font:
            cmap = font.getBestCmap() or {}
        return frozenset(code for code, glyph in cmap.items() if glyph != ".notdef")

    @cached_property
    def font(self) -> ImageFont.FreeTypeFont:
        # Basic layout: one code point, one glyph, no shaping engine that may differ between
        # machines (Arabic letters come out in their isolated forms).
        return ImageFont.truetype(str(self.path), _EM, layout_engine=ImageFont.Layout.BASIC)

    def has_glyph(self, char: str) -> bool:
        """The character map lists ``char``, its glyph has ink and is not the font's .notdef
        box drawn under another name."""
        if ord(char) not in self.code_points:
            return False
        box = self.font.getbbox(char)
        if not (box[2] > box[0] and box[3] > box[1]):
            return False
        if box != self.font.getbbox(_UNMAPPED):
            return True
        return bytes(self.font.getmask(char)) != bytes(self.font.getmask(_UNMAPPED))

    def describe(self) -> dict[str, str]:
        return {"file": self.path.name, "family": self.family, "style": self.style,
                "source": self.source, "sha256": self.sha256}


@dataclass(frozen=True)
class GlyphClass:
    """A letter that becomes a class: its folder name and the faces that draw it."""

    script: str
    char: str
    faces: tuple[int, ...] = field(repr=False)

    @property
    def folder(self) -> str:
        """``Greek_U+03B1``: script then code point (folder names sort by script)."""
        return f"{self.script.replace(' ', '_')}_U+{ord(self.char):04X}"


def _parse_name(path: Path) -> tuple[str, str] | None:
    """``(family, style)`` from ``Family-Style.ttf`` (or ``Family.ttf``: regular), or None for
    a style that is not taken (light, condensed, ...)."""
    family, _, style = path.stem.partition("-")
    return (family, _STYLES[style]) if style in _STYLES and family else None


def _faces_in(folder: Path, source: str, families: Sequence[str] | None = None
              ) -> list[FontFace]:
    faces = []
    for path in sorted(folder.iterdir()):
        parsed = _parse_name(path) if path.suffix.lower() in (".ttf", ".otf") else None
        if parsed and (families is None or parsed[0] in families):
            faces.append(FontFace(path, parsed[0], parsed[1], source))
    return faces


def _matplotlib_faces() -> list[FontFace]:
    try:
        import matplotlib
    except ImportError as error:
        raise DataError("fslearn data glyphs needs matplotlib (its DejaVu fonts) and fontTools: "
                        "pip install 'fslearn[glyphs]'.") from error
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return _faces_in(folder, f"matplotlib {matplotlib.__version__}", _MATPLOTLIB_FAMILIES)


def find_faces(font_dirs: Sequence[str | os.PathLike[str]] = (),
               families: Sequence[str] | None = None,
               noto_dir: str | os.PathLike[str] | None = None) -> list[FontFace]:
    """The font faces to draw with: matplotlib's DejaVu, ``noto_dir`` (default
    :data:`NOTO_DIR`) if it exists, then each of ``font_dirs``; only ``families`` (file-name
    families such as ``"NotoSansRunic"``) if given.

    Raises:
        DataNotFoundError: a folder of ``font_dirs`` does not exist.
        DataError: a family of ``families`` is not among the fonts found.
    """
    noto_dir = Path(NOTO_DIR if noto_dir is None else noto_dir)
    faces = _matplotlib_faces()
    if noto_dir.is_dir():
        faces += _faces_in(noto_dir, f"{noto_dir} (fonts-noto-core)")
    for folder in map(Path, font_dirs):
        if not folder.is_dir():
            raise DataNotFoundError(f"--font-dir {folder} is not a folder: give a folder of "
                                    f"Family-Style.ttf files.")
        faces += _faces_in(folder, str(folder))
    if families is not None:
        known = {face.family for face in faces}
        missing = [name for name in families if name not in known]
        if missing:
            where = ("matplotlib's DejaVu, " + (f"{noto_dir}" if noto_dir.is_dir()
                                                else "no fonts-noto-core")
                     + "".join(f", {d}" for d in font_dirs))
            raise DataError(f"font family {', '.join(map(repr, missing))} not found (looked in "
                            f"{where}; {len(known)} families, e.g. {', '.join(sorted(known)[:4])}"
                            f"): see `fslearn data glyphs --list`, or add its folder with "
                            f"--font-dir.")
        faces = [face for face in faces if face.family in families]
    return faces


def _affine(box: tuple[int, int, int, int], rng: np.random.Generator | None
            ) -> tuple[float, ...]:
    """PIL's affine coefficients (output pixel -> source pixel) that centre the ink ``box``
    in the drawing, shrink it to fit, and apply the jitter drawn from ``rng`` (none: no jitter).
    """
    left, top, right, bottom = box
    fit = min(1.0, _FIT / max(right - left, bottom - top))
    angle, shear, scale, dx, dy = 0.0, 0.0, 1.0, 0.0, 0.0
    if rng is not None:
        angle = math.radians(rng.uniform(-_ROTATION, _ROTATION))
        shear = rng.uniform(-_SHEAR, _SHEAR)
        scale = rng.uniform(*_SCALE)
        dx, dy = rng.uniform(-_SHIFT, _SHIFT, size=2)
    # forward map, source -> output: centre the box at 0, scale, shear, rotate, move to middle
    s = fit * scale
    cos, sin = math.cos(angle), math.sin(angle)
    forward = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, shear], [0.0, 1.0]]) * s
    inverse = np.linalg.inv(forward)
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    middle = np.array([GLYPH_SIZE / 2 + dx, GLYPH_SIZE / 2 + dy])
    offset = centre - inverse @ middle
    return (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])


def render_glyph(face: FontFace, char: str, rng: np.random.Generator | None = None
                 ) -> np.ndarray:
    """``char`` drawn in ``face``: ``[105, 105]`` bool, True = ink, centred, shrunk to fit,
    jittered by ``rng`` (None: not jittered)."""
    left, top, right, bottom = face.font.getbbox(char)
    pad = 4
    canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), char, font=face.font, fill=255)
    box = canvas.getbbox()
    if box is None:
        raise DataError(f"{face.path.name} draws U+{ord(char):04X} without ink.")
    drawn = canvas.transform((GLYPH_SIZE, GLYPH_SIZE), Image.Transform.AFFINE,
                             _affine(box, rng), resample=Image.Resampling.BICUBIC)
    # black and white, like Omniglot's drawings
    return np.asarray(drawn) >= 128


def _small(ink: np.ndarray, size: int = 28) -> np.ndarray:
    """A drawing prepared as the Omniglot loader does: ``[size, size]`` uint8, ink = 255."""
    image = Image.fromarray(np.where(ink, 0, 255).astype(np.uint8))
    return 255 - np.asarray(image.resize((size, size), Image.Resampling.LANCZOS))


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


class _Homoglyphs:
    """The kept classes' binarised 28x28 drawings, by face, to find a new letter's twin."""

    def __init__(self, faces: Sequence[FontFace]) -> None:
        self.faces = faces
        self.kept_with_face: dict[int, list[GlyphClass]] = {}
        self.drawings: dict[tuple[str, int], np.ndarray] = {}

    def bits(self, glyph: GlyphClass, face: int) -> np.ndarray:
        """``glyph`` drawn in ``face``, unjittered, at 28x28, thresholded and packed."""
        key = (glyph.folder, face)
        if key not in self.drawings:
            small = _small(render_glyph(self.faces[face], glyph.char))
            self.drawings[key] = np.packbits(small >= 128)
        return self.drawings[key]

    def twin(self, glyph: GlyphClass) -> str | None:
        """The first kept class drawn (almost) like ``glyph`` in ``glyph``'s first face."""
        face = glyph.faces[0]
        others = self.kept_with_face.get(face, [])
        if not others:
            return None
        stack = np.stack([self.bits(other, face) for other in others])
        distance = _POPCOUNT[np.bitwise_xor(stack, self.bits(glyph, face))].sum(axis=1)
        close = np.flatnonzero(distance <= _HOMOGLYPH_PIXELS)
        return others[close[0]].folder if close.size else None

    def keep(self, glyph: GlyphClass) -> None:
        for face in glyph.faces:
            self.kept_with_face.setdefault(face, []).append(glyph)


def plan_glyphs(scripts: Sequence[Script], faces: Sequence[FontFace]
                ) -> tuple[list[GlyphClass], dict[str, str], list[str]]:
    """``(classes, homoglyphs, scripts without fonts)``: the letters of ``scripts`` that a face
    has a glyph for, each with the indices of those faces, in script then code-point order;
    ``homoglyphs`` maps the folder name of each letter left out to the earlier class it is drawn
    like (within a few pixels at 28x28, in the first face that has it)."""
    classes: list[GlyphClass] = []
    homoglyphs: dict[str, str] = {}
    missing: list[str] = []
    twins = _Homoglyphs(faces)
    for script in scripts:
        found = 0
        for char in script_letters(script):
            having = tuple(i for i, face in enumerate(faces) if face.has_glyph(char))
            if not having:
                continue
            found += 1
            glyph = GlyphClass(script.name, char, having)
            twin = twins.twin(glyph)
            if twin is not None:
                homoglyphs[glyph.folder] = twin
                continue
            twins.keep(glyph)
            classes.append(glyph)
        if not found:
            missing.append(script.name)
    return classes, homoglyphs, missing


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists and is not an empty folder: choose a new one "
                        f"(or delete it).")


def _no_fonts_message(missing: Sequence[str], noto_dir: Path) -> str:
    scripts = ", ".join(missing)
    if not noto_dir.is_dir():
        return (f"no font found has letters of {scripts}: Debian's fonts-noto-core is not "
                f"installed ({noto_dir} is missing); install it (as root: apt-get install "
                f"fonts-noto-core), or give --font-dir DIR with fonts that have them.")
    return (f"no font found has letters of {scripts} (among the fonts chosen): give --font-dir "
            f"DIR with fonts that have them, or leave out --fonts.")


def _write_class(folder: Path, glyph: GlyphClass, faces: Sequence[FontFace], per_class: int,
                 seed: int) -> list[int]:
    """Draw ``per_class`` images of ``glyph`` into ``folder``; returns each one's face index.

    Instance ``i`` is drawn in face ``order[i % F]`` of the ``F`` faces that have the letter
    (``order`` a permutation drawn for the letter), jittered by a generator seeded with
    ``(seed, code point, i)``: each image depends on nothing else."""
    code = ord(glyph.char)
    order = np.random.default_rng([seed, code]).permutation(len(glyph.faces))
    used = []
    folder.mkdir()
    for instance in range(per_class):
        face = glyph.faces[int(order[instance % len(order)])]
        ink = render_glyph(faces[face], glyph.char, np.random.default_rng([seed, code, instance]))
        # black ink on white paper, one bit per pixel, as Omniglot's PNGs
        Image.fromarray(~ink).save(folder / f"{instance:02d}.png")
        used.append(face)
    return used


def _images_digest(root: Path) -> str:
    """SHA-256 over every image's relative path and bytes, in sorted order: equal digests,
    equal datasets."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.png")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _record(classes: Sequence[GlyphClass], faces: Sequence[FontFace], instances: dict,
            homoglyphs: dict[str, str], missing: list[str], settings: dict[str, Any]
            ) -> dict[str, Any]:
    per_script: dict[str, int] = {}
    for glyph in classes:
        per_script[glyph.script] = per_script.get(glyph.script, 0) + 1
    used = sorted({face for faces_of_class in instances.values() for face in faces_of_class})
    renumber = {face: number for number, face in enumerate(used)}
    return {
        "dataset": "fslearn printed glyphs",
        "format": _FORMAT,
        **settings,
        "images": "black ink on white, 105x105, one bit per pixel, as Omniglot's drawings: "
                  "load_glyphs(DIR) or load_image_folder(DIR, 28, invert=True) prepares them "
                  "as the Omniglot loader does (ink = 255). Checkpoints trained on Omniglot "
                  "invert folders by default: `fslearn evaluate CKPT --data DIR` and `fslearn "
                  "predict` need no --invert. A checkpoint prepares a folder as its training "
                  "images were, so only one trained without --invert on light-on-dark images "
                  "of your own needs --invert.",
        "versions": {"pillow": pillow_version,
                     "freetype": pil_features.version("freetype2"),
                     "unicode": unicodedata.unidata_version},
        "fonts": [faces[face].describe() for face in used],
        "scripts": per_script,
        "scripts_without_fonts": missing,
        "classes": len(classes),
        "images_per_class": settings["per_class"],
        "homoglyphs_left_out": homoglyphs,
        "instance_fonts": {name: [renumber[f] for f in faces_of_class]
                           for name, faces_of_class in instances.items()},
    }


def build_glyphs(
    out: str | os.PathLike[str],
    scripts: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    font_dirs: Sequence[str | os.PathLike[str]] = (),
    per_class: int = 20,
    exclude: Sequence[str] = (),
    seed: int = 0,
    command: str | None = None,
    noto_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Draw the dataset into ``out/<Script_U+XXXX>/NN.png`` and write its record,
    ``out/glyphs.json``, which it also returns.

    Args:
        out: a new or empty folder.
        scripts: names of :data:`~fslearn.data.scripts.SCRIPTS` (default: every script some
            font has).
        exclude: scripts to leave out; ``"omniglot"``: every script of an Omniglot alphabet
            (:data:`~fslearn.data.scripts.OMNIGLOT_SCRIPTS`), so that no class is a letter a
            model trained on Omniglot has seen drawn by hand.
        families, font_dirs, noto_dir: the fonts (see :func:`find_faces`).
        per_class: images of each letter.
        seed: the jitter (and the order of the fonts for each letter).
        command: the command line that built it, for the record.

    Raises:
        DataError: ``out`` is not empty, a named script has no font, a family is missing.
        ValueError: an unknown script or ``per_class`` below 1.
    """
    out = Path(out).expanduser()
    if per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {per_class}")
    _check_out(out)
    faces = find_faces(font_dirs, families, noto_dir)
    chosen = find_scripts(scripts, exclude)
    if not chosen:
        raise ValueError("--exclude leaves no script of --scripts: keep at least one.")
    classes, homoglyphs, missing = plan_glyphs(chosen, faces)
    if missing and (scripts is not None or not classes):
        raise DataError(_no_fonts_message(missing, Path(NOTO_DIR if noto_dir is None
                                                        else noto_dir)))
    partial = out.with_name(out.name + ".part")
    if partial.exists():
        raise DataError(f"{partial} is left from an interrupted build: delete it and run again.")
    partial.mkdir(parents=True)
    instances = {}
    try:
        iterator = classes
        if progress:
            from tqdm import tqdm

            iterator = tqdm(classes, desc="glyphs", unit="class")
        for glyph in iterator:
            instances[glyph.folder] = _write_class(partial / glyph.folder, glyph, faces,
                                                   per_class, seed)
        settings = {"command": command, "seed": seed, "per_class": per_class,
                    "excluded_scripts": [s.name for s in find_scripts(scripts)
                                         if s not in chosen],
                    "glyph_size": GLYPH_SIZE, "images_sha256": _images_digest(partial)}
        record = _record(classes, faces, instances, homoglyphs, missing, settings)
        (partial / RECORD_FILE).write_text(json.dumps(record, indent=1, ensure_ascii=False)
                                           + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except BaseException:
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
        raise
    return record


def load_glyphs(root: str | os.PathLike[str], image_size: int = 28) -> FewShotDataset:
    """A folder written by :func:`build_glyphs`, prepared as the Omniglot loader prepares its
    drawings: ``image_size`` square, Lanczos-resized, inverted (ink = 255)."""
    root = Path(root).expanduser()
    if not (root / RECORD_FILE).is_file():
        raise DataNotFoundError(f"{root} has no {RECORD_FILE}: build the dataset with "
                                f"`fslearn data glyphs --out {root}`.")
    dataset = load_image_folder(root, image_size, grayscale=True, invert=True)
    return FewShotDataset(dataset.images, dataset.labels, dataset.class_names,
                          name=f"glyphs:{root.name}")
