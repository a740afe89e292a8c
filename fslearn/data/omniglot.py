"""Omniglot (Lake et al. 2015) in its official layout, under both standard few-shot protocols.

The official release is two zips, ``images_background.zip`` (30 alphabets, 964 characters) and
``images_evaluation.zip`` (20 alphabets, 659 characters), each character drawn by 20 people::

    images_background/<Alphabet>/characterNN/XXXX_YY.png

This module reads the zips directly (or their unpacked folders), resizes every drawing once and
keeps the result in a processed cache, so later loads take a fraction of a second.

Protocols:

* ``"vinyals"`` (Vinyals et al. 2016, used by Snell et al. 2017 and most later papers): characters
  ordered background-then-evaluation, alphabets by name; the first 1200 are for training
  (``"trainval"``), of which 172 form ``"val"`` and the rest ``"train"``; the last 423 are
  ``"test"``. Each character rotated by 0, 90, 180 and 270 degrees gives four classes.
* ``"lake"`` (Lake et al. 2015): background alphabets are ``"train"``, evaluation alphabets
  ``"test"``; no rotations.

Pixels: the drawings are black ink on white; this loader inverts them so that ink is 255 and the
background 0, which makes zero-padding in convolutions look like more background.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from io import BytesIO
from pathlib import Path

import numpy as np
import platformdirs
import torch
from PIL import Image

from fslearn._files import readable_by_others
from fslearn.data.dataset import FewShotDataset
from fslearn.data.download import DownloadError, RemoteFile, download_file

__all__ = [
    "OMNIGLOT_ARCHIVES",
    "PROTOCOLS",
    "DataNotFoundError",
    "OmniglotCharacters",
    "cache_dir",
    "data_root",
    "find_omniglot",
    "load_omniglot",
    "load_omniglot_characters",
]

_BASE_URL = "https://github.com/brendenlake/omniglot/raw/master/python"
#: The official zips and the MD5 sums published for them (the ones torchvision checks too).
OMNIGLOT_ARCHIVES: dict[str, RemoteFile] = {
    "images_background": RemoteFile(
        f"{_BASE_URL}/images_background.zip", "md5:68d2efa1b9178cc56df9314c21c6e718"
    ),
    "images_evaluation": RemoteFile(
        f"{_BASE_URL}/images_evaluation.zip", "md5:6b91aef0f799c5bb55b94e3f2daec811"
    ),
}
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "vinyals": ("train", "val", "trainval", "test"),
    "lake": ("train", "test"),
}
_VINYALS_TRAINVAL_CHARACTERS = 1200
_ROTATIONS = (0, 90, 180, 270)
_CACHE_FORMAT = 1


class DataNotFoundError(FileNotFoundError):
    """The dataset is neither on disk nor downloadable; the message says where to put it."""


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where datasets live: ``root`` if given, else ``$FSLEARN_DATA``, else a per-user folder."""
    if root is not None:
        return Path(root).expanduser()
    if env := os.environ.get("FSLEARN_DATA"):
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("fslearn")) / "data"


def cache_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where processed arrays are cached: ``directory``, ``$FSLEARN_CACHE`` or a per-user folder.

    Kept apart from the data root because that may be read-only (a shared copy of the data).
    """
    if directory is not None:
        return Path(directory).expanduser()
    if env := os.environ.get("FSLEARN_CACHE"):
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("fslearn")) / "processed"


def find_omniglot(root: Path) -> dict[str, Path] | None:
    """The two archives (zip or unpacked folder) under ``root`` or ``root/omniglot``, if present."""
    for folder in (root, root / "omniglot"):
        found: dict[str, Path] = {}
        for name in OMNIGLOT_ARCHIVES:
            if (folder / name).is_dir():
                found[name] = folder / name
            elif (folder / f"{name}.zip").is_file():
                found[name] = folder / f"{name}.zip"
        if len(found) == len(OMNIGLOT_ARCHIVES):
            return found
    return None


def _locate_or_download(root: Path, download: bool) -> dict[str, Path]:
    found = find_omniglot(root)
    if found is not None:
        return found
    target = root / "omniglot"
    by_hand = (
        f"Put images_background.zip and images_evaluation.zip (from {_BASE_URL}) into {target}, "
        f"or point the data root at a folder that has them: pass root=... or set FSLEARN_DATA."
    )
    if not download:
        raise DataNotFoundError(f"Omniglot was not found under {root}. {by_hand}")
    for name, remote in OMNIGLOT_ARCHIVES.items():
        destination = target / f"{name}.zip"
        if destination.is_file():
            continue
        try:
            download_file(remote, destination)
        except DownloadError as error:
            raise DataNotFoundError(
                f"Omniglot was not found under {root} and could not be downloaded: {error} "
                f"If this machine is offline: {by_hand}"
            ) from error
        except PermissionError as error:
            raise DataNotFoundError(
                f"Omniglot was not found under {root}, and {target} is not writable ({error}). "
                f"Choose a writable data root (root=... or FSLEARN_DATA) or: {by_hand}"
            ) from error
    found = find_omniglot(root)
    assert found is not None
    return found


@dataclass(frozen=True)
class OmniglotCharacters:
    """All 1623 characters at one image size, in the canonical order.

    Attributes:
        images: ``[num_drawings, 1, S, S]`` uint8, ink = 255.
        character: ``[num_drawings]`` index into ``names``.
        names: ``"Alphabet/characterNN"``, background alphabets (sorted) first, then evaluation.
        background: ``[len(names)]`` bool, True for characters of ``images_background``.
    """

    images: torch.Tensor
    character: torch.Tensor
    names: list[str]
    background: np.ndarray


def _list_drawings(archive: Path) -> list[tuple[str, str, str]]:
    """(alphabet, character, member) for every PNG in a zip or folder."""
    if archive.is_dir():
        members = [p.relative_to(archive.parent).as_posix() for p in archive.rglob("*.png")]
    else:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.namelist() if m.endswith(".png")]
    drawings = []
    for member in members:
        parts = member.split("/")
        if len(parts) != 4:
            raise ValueError(
                f"{archive}: {member!r} is not <archive>/<Alphabet>/<characterNN>/<file>.png; "
                f"is this the official Omniglot layout?"
            )
        drawings.append((parts[1], parts[2], member))
    if not drawings:
        raise ValueError(f"{archive} holds no PNG drawings; is it an Omniglot archive?")
    return sorted(drawings)


def _decode(data: bytes, image_size: int) -> np.ndarray:
    with Image.open(BytesIO(data)) as image:
        grey = image.convert("L")
        if grey.size != (image_size, image_size):
            grey = grey.resize((image_size, image_size), Image.Resampling.LANCZOS)
        return 255 - np.asarray(grey, dtype=np.uint8)


def _read_archive(archive: Path, image_size: int) -> tuple[list[str], list[np.ndarray]]:
    drawings = _list_drawings(archive)
    if archive.is_dir():
        blobs = [(archive.parent / member).read_bytes() for _, _, member in drawings]
    else:
        with zipfile.ZipFile(archive) as zipped:
            blobs = [zipped.read(member) for _, _, member in drawings]
    # Pillow releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        images = list(pool.map(lambda blob: _decode(blob, image_size), blobs, chunksize=256))
    return [f"{alphabet}/{character}" for alphabet, character, _ in drawings], images


def _source_fingerprint(archives: dict[str, Path], image_size: int) -> str:
    described = []
    for name, path in sorted(archives.items()):
        stat = path.stat()
        described.append([name, str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    blob = json.dumps([_CACHE_FORMAT, image_size, described]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load_omniglot_characters(
    root: str | os.PathLike[str] | None = None,
    image_size: int = 28,
    download: bool = True,
    cache: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> OmniglotCharacters:
    """Every Omniglot drawing, resized to ``image_size``, from the processed cache when possible.

    Args:
        root: data root (see :func:`data_root`); the archives are looked for in ``root`` and
            ``root/omniglot``, and downloaded into ``root/omniglot`` if absent.
        image_size: side of the square images (the drawings are 105x105).
        download: fetch the official zips if they are not found.
        cache: folder of the processed cache (see :func:`cache_dir`).
        use_cache: read and write the processed cache.
    """
    if not isinstance(image_size, int) or not 4 <= image_size <= 105:
        raise ValueError(f"image_size must be an integer from 4 to 105 pixels, got {image_size!r}")
    archives = _locate_or_download(data_root(root), download)
    cache_file = cache_dir(cache) / (
        f"omniglot-{image_size}px-{_source_fingerprint(archives, image_size)}.npz"
    )
    if use_cache and cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as stored:
            return _characters_from_arrays(
                stored["images"], stored["character"], stored["names"], stored["background"]
            )
    names: list[str] = []
    images: list[np.ndarray] = []
    character: list[int] = []
    background: list[bool] = []
    for archive_name in ("images_background", "images_evaluation"):
        drawing_names, drawing_images = _read_archive(archives[archive_name], image_size)
        for name, image in zip(drawing_names, drawing_images, strict=True):
            if not names or names[-1] != name:
                names.append(name)
                background.append(archive_name == "images_background")
            character.append(len(names) - 1)
            images.append(image)
    arrays = (
        np.stack(images)[:, None],
        np.asarray(character, dtype=np.int64),
        np.asarray(names),
        np.asarray(background, dtype=bool),
    )
    if use_cache:
        _save_atomically(cache_file, arrays)
    return _characters_from_arrays(*arrays)


def _characters_from_arrays(images, character, names, background) -> OmniglotCharacters:
    return OmniglotCharacters(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        character=torch.from_numpy(np.asarray(character, dtype=np.int64)),
        names=[str(name) for name in names],
        background=np.asarray(background, dtype=bool),
    )


def _save_atomically(path: Path, arrays: tuple[np.ndarray, ...]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.part", delete=False)
    except OSError:
        return  # an unwritable cache only costs time on the next load
    try:
        with handle:
            images, character, names, background = arrays
            np.savez(handle, images=images, character=character, names=names,
                     background=background)
        readable_by_others(Path(handle.name))
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def vinyals_val_characters() -> list[str]:
    """The 172 validation characters of the Vinyals split (Snell et al.'s list, MIT licence)."""
    text = resources.files("fslearn.data").joinpath("splits/vinyals_val_characters.txt")
    return text.read_text(encoding="utf-8").split()


def _check_split(protocol: str, split: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}.")
    if split not in PROTOCOLS[protocol]:
        raise ValueError(
            f"The {protocol!r} protocol has no split {split!r}; choose one of "
            f"{list(PROTOCOLS[protocol])}."
        )


def _split_characters(characters: OmniglotCharacters, protocol: str, split: str) -> list[int]:
    _check_split(protocol, split)
    everything = list(range(len(characters.names)))
    if protocol == "lake":
        wanted_background = split == "train"
        return [i for i in everything if bool(characters.background[i]) == wanted_background]
    if split == "test":
        return everything[_VINYALS_TRAINVAL_CHARACTERS:]
    trainval = everything[:_VINYALS_TRAINVAL_CHARACTERS]
    if split == "trainval":
        return trainval
    val_names = set(vinyals_val_characters())
    return [i for i in trainval if (characters.names[i] in val_names) == (split == "val")]


def load_omniglot(
    split: str = "train",
    protocol: str = "vinyals",
    root: str | os.PathLike[str] | None = None,
    image_size: int = 28,
    download: bool = True,
    cache: str | os.PathLike[str] | None = None,
) -> FewShotDataset:
    """One split of Omniglot under a standard protocol, as a :class:`FewShotDataset`.

    >>> test = load_omniglot("test", protocol="vinyals")          # doctest: +SKIP
    >>> test.num_classes, test.image_shape                         # doctest: +SKIP
    (1692, (1, 28, 28))

    Args:
        split: ``"train"``, ``"val"``, ``"trainval"`` or ``"test"`` (``"lake"``: train/test).
        protocol: ``"vinyals"`` (rotations, 1200/423 characters) or ``"lake"`` (alphabets).
        root, image_size, download, cache: see :func:`load_omniglot_characters`.
    """
    _check_split(protocol, split)  # before any slow loading
    characters = load_omniglot_characters(root, image_size, download, cache)
    chosen = _split_characters(characters, protocol, split)
    rotations = _ROTATIONS if protocol == "vinyals" else (0,)
    order = torch.argsort(characters.character, stable=True)
    counts = torch.bincount(characters.character, minlength=len(characters.names))
    starts = torch.cumsum(counts, 0) - counts
    images, labels, class_names = [], [], []
    for char in chosen:
        drawings = characters.images[order[starts[char] : starts[char] + counts[char]]]
        for degrees in rotations:
            labels.append(torch.full((len(drawings),), len(class_names), dtype=torch.long))
            images.append(torch.rot90(drawings, k=degrees // 90, dims=(-2, -1)))
            name = characters.names[char]
            class_names.append(f"{name}/rot{degrees:03d}" if protocol == "vinyals" else name)
    return FewShotDataset(
        images=torch.cat(images).contiguous(),
        labels=torch.cat(labels),
        class_names=class_names,
        name=f"omniglot/{protocol}/{split}",
    )
