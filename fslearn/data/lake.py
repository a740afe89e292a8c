"""Lake et al.'s one-shot classification challenge: the 20 official runs of ``all_runs.zip``.

Lake, Salakhutdinov and Tenenbaum (2015) tested people and their Bayesian Program Learning on 20
*runs*. Each run takes 20 characters of one alphabet of Omniglot's evaluation set and holds::

    runNN/training/classMM.png   one drawing of each of the 20 characters, to learn from
    runNN/test/itemMM.png        another drawer's drawing of each of them, to classify
    runNN/class_labels.txt       "runNN/test/itemMM.png runNN/training/classKK.png" per item

A run is one 20-way 1-shot episode with one query per class, harder than a Vinyals episode
because its classes come from one alphabet. The score is the error over the 400 test items, the
mean of the 20 runs' errors (:func:`fslearn.evaluation.challenge.score_challenge`).

Where the file is found: ``path`` if given; else under the data root (``root=``,
``$FSLEARN_DATA`` or the per-user folder, as for Omniglot), as ``all_runs.zip`` in the root, in
``root/omniglot-lake/``, or in an ``omniglot-lake/`` folder beside the root, for a root that is
itself the Omniglot folder (``data/omniglot`` and ``data/omniglot-lake``). It is checked before
use: its SHA-256 must be the official file's (:data:`LAKE_RUNS_SHA256`) or be listed in a
``SHA256SUMS`` beside it, as for the Omniglot zips. The images (105x105, black ink on white) are
prepared exactly as Omniglot's for the models: greyscale, resized, inverted
(:func:`fslearn.data.omniglot.omniglot_pixels`).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fslearn.data.dataset import to_float
from fslearn.data.download import file_digests
from fslearn.data.episodes import Episode
from fslearn.data.errors import DataError, one_line
from fslearn.data.locations import DataNotFoundError, _data_root_and_origin
from fslearn.data.omniglot import (
    _DECODE_ERRORS,
    _READ_ERRORS,
    OmniglotCharacters,
    _sha256_listing,
    _split_characters,
    omniglot_pixels,
)

__all__ = [
    "LAKE_RUNS",
    "LAKE_RUNS_FILE",
    "LAKE_RUNS_SHA256",
    "LAKE_RUNS_URL",
    "LakeRun",
    "find_lake_runs",
    "load_lake_runs",
    "run_characters",
    "runs_seen_in_training",
]

#: the file name of the runs, as in the dataset's home repository
LAKE_RUNS_FILE = "all_runs.zip"
#: where the official file lives (this module never downloads it: the message says where to get it)
LAKE_RUNS_URL = (
    "https://github.com/brendenlake/omniglot/raw/master/python/one-shot-classification/all_runs.zip"
)
#: SHA-256 of the official all_runs.zip (as listed by the SHA256SUMS of the course's offline copy)
LAKE_RUNS_SHA256 = "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325"
#: runs, and characters (ways) per run
LAKE_RUNS, _WAYS = 20, 20
_FOLDER = "omniglot-lake"
_LABEL_LINE = re.compile(r"(run\d\d)/test/(item\d\d)\.png\s+(run\d\d)/training/(class\d\d)\.png")


@dataclass(frozen=True)
class LakeRun:
    """One run of the challenge: 20 characters, one drawing each to learn from, one to classify.

    Attributes:
        name: ``"run01"`` ... ``"run20"``.
        support: ``[20, 1, H, W]`` uint8 drawings ``class01`` ... ``class20`` (ink 255).
        query: ``[20, 1, H, W]`` uint8 drawings ``item01`` ... ``item20``, in file order.
        answers: ``[20]`` int64 the class (0 for ``class01``) of each query item.
    """

    name: str
    support: Tensor
    query: Tensor
    answers: Tensor

    def episode(self) -> Episode:
        """The run as one 20-way 1-shot episode with one query per class: the queries ordered
        by their class (``query_x[0, j]`` is the item of class ``j``), as every episode is, so
        ``query_y`` is ``0..19``. ``support_x: [1, 20, 1, H, W]`` floats in ``[0, 1]``."""
        order = torch.argsort(self.answers)
        labels = torch.arange(len(self.answers)).unsqueeze(0)
        return Episode(
            support_x=to_float(self.support).unsqueeze(0),
            support_y=labels,
            query_x=to_float(self.query[order]).unsqueeze(0),
            query_y=labels.clone(),
            classes=labels.clone(),
            n_way=len(self.answers),
        )


def _candidates(root: Path) -> list[Path]:
    return [
        root / LAKE_RUNS_FILE,
        root / _FOLDER / LAKE_RUNS_FILE,
        root.parent / _FOLDER / LAKE_RUNS_FILE,
    ]


def find_lake_runs(root: str | os.PathLike[str] | None = None) -> Path:
    """The path of ``all_runs.zip`` under the data root (see the module's docstring).

    Raises:
        DataNotFoundError: it is in none of the places looked at; the message lists them and
            says where to get the file.
    """
    base, origin = _data_root_and_origin(root)
    places = _candidates(base)
    for place in places:
        if place.is_file():
            return place
    raise DataNotFoundError(
        f"Lake's one-shot runs ({LAKE_RUNS_FILE}) are not under the data root {base} (from "
        f"{origin}): looked for {', '.join(str(p) for p in places)}. Download {LAKE_RUNS_URL} into "
        f"{base / _FOLDER}, or pass its path (--runs, Python: path=)."
    )


def _check_checksum(path: Path) -> None:
    """Accept the official file, or a copy whose SHA-256 a SHA256SUMS beside it lists."""
    try:
        digest = file_digests(path, {"sha256"})["sha256"]
    except OSError as error:
        raise DataError(
            f"{path} cannot be read ({one_line(error)}): check its permissions, or "
            f"point --runs at a readable copy."
        ) from error
    listed = _sha256_listing(path).get(path.name)
    if digest == LAKE_RUNS_SHA256 or (listed is not None and listed[0] == digest):
        return
    fix = f"replace it with an intact copy of {LAKE_RUNS_URL}"
    if listed is not None:
        raise DataError(
            f"{path} is damaged: its SHA-256 is {digest}, but {listed[1]} lists {listed[0]}; {fix}."
        )
    raise DataError(
        f"{path} is not the official {LAKE_RUNS_FILE} (it may be truncated, damaged "
        f"or another file): its SHA-256 is {digest}, not {LAKE_RUNS_SHA256}; {fix}."
    )


def _read_answers(archive: zipfile.ZipFile, path: Path, run: str) -> list[tuple[str, str]]:
    """``(item, class)`` pairs of a run's class_labels.txt, in file order, checked to pair
    each of the 20 items with a different one of the 20 classes."""
    member = f"{run}/class_labels.txt"
    text = archive.read(member).decode("utf-8", errors="replace")
    pairs = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        found = _LABEL_LINE.fullmatch(line)
        if found is None or found.group(1) != run or found.group(3) != run:
            raise DataError(
                f"{path}: {member} has a line that is not 'runNN/test/itemMM.png "
                f"runNN/training/classKK.png' of {run}: {line!r}; replace the file "
                f"with an intact copy of {LAKE_RUNS_URL}."
            )
        pairs.append((found.group(2), found.group(4)))
    items, classes = {item for item, _ in pairs}, {cls for _, cls in pairs}
    if len(pairs) != _WAYS or len(items) != _WAYS or len(classes) != _WAYS:
        raise DataError(
            f"{path}: {member} pairs {len(items)} test items with {len(classes)} "
            f"classes in {len(pairs)} lines, but a run pairs each of {_WAYS} items "
            f"with a different one of {_WAYS} classes; replace the file with an "
            f"intact copy of {LAKE_RUNS_URL}."
        )
    return pairs


def _image(archive: zipfile.ZipFile, path: Path, member: str, image_size: int) -> np.ndarray:
    try:
        with Image.open(BytesIO(archive.read(member))) as image:
            return omniglot_pixels(image, image_size)
    except KeyError as error:
        raise DataError(
            f"{path} has no {member}: the archive is incomplete; replace it with an "
            f"intact copy of {LAKE_RUNS_URL}."
        ) from error
    except _DECODE_ERRORS as error:
        raise DataError(
            f"{path}: {member} could not be decoded as an image ({one_line(error)}); "
            f"replace the file with an intact copy of {LAKE_RUNS_URL}."
        ) from error


def _read_run(archive: zipfile.ZipFile, path: Path, run: str, image_size: int) -> LakeRun:
    pairs = _read_answers(archive, path, run)
    classes = sorted({cls for _, cls in pairs})
    items = sorted(item for item, _ in pairs)
    answer_of = dict(pairs)

    def stack(members: list[str]) -> Tensor:
        images = [_image(archive, path, member, image_size) for member in members]
        return torch.from_numpy(np.stack(images)).unsqueeze(1)

    return LakeRun(
        name=run,
        support=stack([f"{run}/training/{cls}.png" for cls in classes]),
        query=stack([f"{run}/test/{item}.png" for item in items]),
        answers=torch.tensor([classes.index(answer_of[item]) for item in items]),
    )


def load_lake_runs(
    root: str | os.PathLike[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    image_size: int = 28,
) -> list[LakeRun]:
    """The 20 runs of the challenge, their images prepared as Omniglot's at ``image_size``.

    Args:
        root: the data root (default: ``$FSLEARN_DATA``, else the per-user folder).
        path: the zip itself, instead of looking under the data root.
        image_size: side of the images, the one the model was trained on.

    Raises:
        DataNotFoundError: no zip where it was looked for.
        DataError: the zip is not the official one (checksum), cannot be read, or lacks a run,
            an image or a line of the answers; one line naming the file and the fix.
    """
    zip_path = Path(path).expanduser() if path is not None else find_lake_runs(root)
    if not zip_path.is_file():
        raise DataNotFoundError(
            f"{zip_path} does not exist: pass the path of {LAKE_RUNS_FILE} (from {LAKE_RUNS_URL})."
        )
    _check_checksum(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            return [
                _read_run(archive, zip_path, f"run{index:02d}", image_size)
                for index in range(1, LAKE_RUNS + 1)
            ]
    except KeyError as error:
        raise DataError(
            f"{zip_path} lacks {one_line(error)}: the archive is incomplete; replace "
            f"it with an intact copy of {LAKE_RUNS_URL}."
        ) from error
    except _READ_ERRORS as error:
        raise DataError(
            f"{zip_path} could not be read ({one_line(error)}): it is truncated or "
            f"damaged; replace it with an intact copy of {LAKE_RUNS_URL}."
        ) from error


def run_characters(runs: Sequence[LakeRun], characters: OmniglotCharacters) -> list[list[str]]:
    """``[runs][20]`` the Omniglot character (``"Alphabet/characterNN"``) of each run's classes.

    The runs' drawings are drawings of Omniglot's evaluation set, prepared the same way, so each
    support image equals one drawing of ``characters`` (from
    :func:`~fslearn.data.omniglot.load_omniglot_characters` at the runs' image size) pixel for
    pixel.

    Raises:
        ValueError: an image matches no drawing: the runs and ``characters`` differ in image
            size, or one of them is not Omniglot's.
    """
    if characters.images.shape[-1] != runs[0].support.shape[-1]:
        raise ValueError(
            f"the runs are {runs[0].support.shape[-1]} pixels wide but the "
            f"characters {characters.images.shape[-1]}: load both at one size."
        )
    owner = {
        image.numpy().tobytes(): int(c)
        for image, c in zip(characters.images, characters.character, strict=True)
    }
    names = []
    for run in runs:
        found = [owner.get(image.numpy().tobytes()) for image in run.support]
        if None in found:
            raise ValueError(
                f"{run.name}: class{found.index(None) + 1:02d}.png is no Omniglot "
                f"drawing at this size; are these the official runs?"
            )
        names.append([characters.names[c] for c in found if c is not None])
    return names


def runs_seen_in_training(
    runs: Sequence[LakeRun], characters: OmniglotCharacters, protocol: str, train_split: str
) -> list[int]:
    """``[runs]`` how many of each run's 20 characters are among the training characters of
    Omniglot's ``protocol`` and ``train_split`` (other drawings of them, by other drawers): 0
    for every run under the Lake protocol; for the Vinyals splits, which hold characters of 8
    evaluation alphabets, some runs' every character."""
    chosen = {characters.names[i] for i in _split_characters(characters, protocol, train_split)}
    return [sum(name in chosen for name in names) for names in run_characters(runs, characters)]
