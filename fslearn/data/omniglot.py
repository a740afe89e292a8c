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

Damaged or misplaced data: the first time an archive is read (when the processed cache is built),
it is checked, so that a truncated download or a wrong file fails at once with a one-line
:class:`~fslearn.data.errors.DataError` that names the file and says what to do, instead of
surfacing later as a zip, CRC or Pillow error (or as silently wrong data):

* a zip must be the official one: its MD5 is the one published in :data:`OMNIGLOT_ARCHIVES`, or a
  ``SHA256SUMS`` file beside it (the format of ``sha256sum``: ``<hex>  <file name>``) lists its
  SHA-256. The second way is how a faithful repack, such as a shared offline copy whose bytes
  differ from the official zip, is trusted; to trust a copy of your own, run
  ``sha256sum images_background.zip >> SHA256SUMS`` in its folder. A zip that carries the other
  archive's checksum is reported as swapped;
* every zip or unpacked folder must have the official layout: every member under
  ``<archive name>/``, 964 (background) or 659 (evaluation) characters of 20 drawings each;
* every drawing must decode as an image.

Unpacked folders cannot be checksummed, so they get the layout and decoding checks only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import resources
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fslearn._files import readable_by_others
from fslearn.data.dataset import FewShotDataset
from fslearn.data.download import DownloadError, RemoteFile, download_file, file_digests
from fslearn.data.errors import DataError, one_line

# where the data and the cache live; re-exported here, where they have always been imported from
from fslearn.data.locations import (
    DataNotFoundError,
    _check_data_root,
    _data_root_and_origin,
    cache_dir,
    data_root,
)

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
#: Characters in each archive and drawings of each character, to recognise a wrong or partial set.
_CHARACTERS = {"images_background": 964, "images_evaluation": 659}
_DRAWERS = 20
#: The file beside a zip that lists the SHA-256 of copies to trust (the format of ``sha256sum``).
_SHA256SUMS = "SHA256SUMS"
#: What reading a damaged zip can raise: a bad structure, a bad CRC or compressed stream, a
#: flipped flag that makes a member look encrypted (RuntimeError) or use an unknown compression
#: (NotImplementedError), a file cut short, or the disk.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError,
                NotImplementedError, RuntimeError, OSError)
#: What Pillow raises for bytes that are not a decodable image (UnidentifiedImageError is an
#: OSError; a few broken PNG chunks raise SyntaxError or ValueError).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


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
        except OSError as error:  # not writable, or a file in the way of the folder
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


def _error_text(error: BaseException) -> str:
    """An exception's text on one line, for messages the command line prints as one line."""
    if isinstance(error, UnidentifiedImageError):  # its text names a BytesIO object, not a file
        return "not a PNG or any other image format Pillow knows"
    return one_line(error)


def _sentence(text: str) -> str:
    """``text`` with a capital first letter, to start a sentence with a shared phrase."""
    return text[:1].upper() + text[1:]


class _Archive:
    """One Omniglot archive, a zip or its unpacked folder, open for reading.

    Everything that reading can raise (a truncated or corrupt zip, a bad CRC, an unreadable file)
    comes out as a one-line :class:`DataError` that names the archive and the member and says
    what to do, so no caller has to know zipfile's or the file system's exceptions.
    """

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.is_zip = not path.is_dir()
        self._zip: zipfile.ZipFile | None = None

    @property
    def remedy(self) -> str:
        """What to do about a damaged archive."""
        if self.is_zip:
            return ("delete it and run again to download a fresh copy, or replace it with an "
                    "intact copy")
        return (f"unpack an intact {self.name}.zip in its place, or delete the folder to use "
                f"(or download) the zip")

    def __enter__(self) -> _Archive:
        if self.is_zip:
            with self.reading():
                self._zip = zipfile.ZipFile(self.path)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def where(self, member: str) -> str:
        """How a message names a member: ``archive.zip: member``, or the unpacked file's path."""
        return f"{self.path}: {member}" if self.is_zip else str(self.path.parent / member)

    def members(self) -> list[str]:
        """Every member as ``<archive name>/...`` (of a folder: its files, found recursively)."""
        if self._zip is not None:
            return self._zip.namelist()
        with self.reading():  # sorted, so that a message names the same file every time
            return sorted(p.relative_to(self.path.parent).as_posix()
                          for p in self.path.rglob("*") if p.is_file())

    def read(self, member: str) -> bytes:
        with self.reading(member):
            if self._zip is not None:
                return self._zip.read(member)
            return (self.path.parent / member).read_bytes()

    @contextmanager
    def reading(self, member: str | None = None) -> Iterator[None]:
        """Turn the errors of reading this archive (or one member) into a DataError."""
        where = self.where(member) if member else str(self.path)
        try:
            yield
        except PermissionError as error:
            raise DataError(
                f"{where} cannot be read ({_error_text(error)}): give your user read permission on "
                f"it, or point the data root at a readable copy."
            ) from error
        except _READ_ERRORS as error:
            what = "is not a readable zip archive" if self.is_zip and not member else \
                "could not be read"
            raise DataError(
                f"{where} {what} ({_error_text(error)}): it is truncated or damaged; "
                f"{self.remedy}."
            ) from error


def _verify_checksum(archive: _Archive) -> None:
    """Accept a zip whose digest is the official one or is listed in a SHA256SUMS beside it;
    otherwise say whether it is damaged, swapped with the other archive, or another file."""
    path, name = archive.path, archive.name
    expected = {other: remote.checksum.lower().partition(":")[::2]
                for other, remote in OMNIGLOT_ARCHIVES.items()}
    with archive.reading():
        digests = file_digests(path, {"sha256", *(alg for alg, _ in expected.values())})
    listed = _sha256_listing(path)

    def matches(other: str) -> bool:
        algorithm, official = expected[other]
        entry = listed.get(f"{other}.zip")
        return digests[algorithm] == official or (entry is not None
                                                  and entry[0] == digests["sha256"])

    if matches(name):
        return
    for other in expected:
        if other != name and matches(other):
            raise DataError(
                f"{path} has the checksum of {other}.zip, not of {name}.zip: the two files look "
                f"swapped. Give each its right name ({name}.zip holds {name}/...), or delete both "
                f"and run again to download fresh copies."
            )
    if f"{name}.zip" in listed:
        listed_digest, sums_file = listed[f"{name}.zip"]
        raise DataError(
            f"{path} is damaged: its SHA-256 is {digests['sha256']}, but {sums_file} lists "
            f"{listed_digest}; {archive.remedy}."
        )
    algorithm, official = expected[name]
    raise DataError(
        f"{path} is not the official {name}.zip (it may be truncated, damaged or a different "
        f"file): its {algorithm.upper()} is {digests[algorithm]}, not {official}, and no "
        f"{_SHA256SUMS} beside it lists it. {_sentence(archive.remedy)}; or, "
        f"for a copy you trust (a faithful repack), list its SHA-256 in a {_SHA256SUMS} file "
        f"beside it: cd {path.parent} && sha256sum {path.name} >> {_SHA256SUMS}"
    )


def _sha256_listing(path: Path) -> dict[str, tuple[str, Path]]:
    """``file name -> (SHA-256, SHA256SUMS file)`` from the SHA256SUMS beside ``path`` and, for a
    symbolic link, beside the file it points to (a link to a trusted copy stays trusted)."""
    listing: dict[str, tuple[str, Path]] = {}
    for folder in dict.fromkeys((path.resolve().parent, path.parent)):  # the link's own wins
        sums_file = folder / _SHA256SUMS
        try:
            lines = sums_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            digest, _, filename = line.strip().partition(" ")
            filename = filename.strip().removeprefix("*").removeprefix("./")
            if len(digest) == 64 and filename:
                listing[filename] = (digest.lower(), sums_file)
    return listing


def _list_drawings(archive: _Archive) -> list[tuple[str, str, str]]:
    """(alphabet, character, member) of every drawing, sorted, once the layout is checked to be
    the official one with the right number of characters and drawings: an archive of the other
    set, of something else, or an incomplete one is refused here rather than loaded as data."""
    name, path, remedy = archive.name, archive.path, archive.remedy
    drawings = []
    for member in archive.members():
        parts = member.split("/")
        if parts[0] != name:
            hint = (f"it looks like {parts[0]}.zip saved under the wrong name"
                    if parts[0] in _CHARACTERS else "it does not look like an Omniglot archive")
            raise DataError(
                f"{path} holds {member!r}, but every member of {name} must be under {name}/: "
                f"{hint}; {remedy}."
            )
        if not member.endswith(".png"):
            continue
        if len(parts) != 4:
            nested = archive.path / parts[1]
            hint = (f"it seems unpacked one level too deep: move the contents of {nested} up "
                    f"into {archive.path}." if not archive.is_zip and parts[1] in _CHARACTERS
                    else f"is it Omniglot? {_sentence(remedy)}.")
            raise DataError(
                f"{archive.where(member)} is not at {name}/<Alphabet>/<characterNN>/<file>.png, "
                f"the official layout; {hint}"
            )
        drawings.append((parts[1], parts[2], member))
    counts = Counter((alphabet, character) for alphabet, character, _ in drawings)
    if len(counts) != _CHARACTERS[name]:
        swapped = [other for other, number in _CHARACTERS.items()
                   if other != name and number == len(counts)]
        hint = (f" ({len(counts)} is the number in {swapped[0]}: the two look swapped)"
                if swapped else "")
        raise DataError(
            f"{path} holds {len(counts)} characters, but {name} has {_CHARACTERS[name]}{hint}; "
            f"{remedy}."
        )
    for (alphabet, character), count in sorted(counts.items()):
        if count != _DRAWERS:
            raise DataError(
                f"{path}: {alphabet}/{character} has {count} drawings, but every Omniglot "
                f"character has {_DRAWERS} (one per drawer), so the archive is incomplete; "
                f"{remedy}."
            )
    return sorted(drawings)


def omniglot_pixels(image: Image.Image, image_size: int) -> np.ndarray:
    """``[image_size, image_size]`` uint8 of a black-on-white drawing as the models see Omniglot:
    greyscale, resized (Lanczos), inverted so that ink is 255 and the background 0. Lake's
    one-shot runs (:mod:`fslearn.data.lake`) are prepared by the same function."""
    grey = image.convert("L")
    if grey.size != (image_size, image_size):
        grey = grey.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return 255 - np.asarray(grey, dtype=np.uint8)


def _decode(archive: _Archive, member: str, data: bytes, image_size: int) -> np.ndarray:
    try:
        with Image.open(BytesIO(data)) as image:
            return omniglot_pixels(image, image_size)
    except _DECODE_ERRORS as error:
        raise DataError(
            f"{archive.where(member)} could not be decoded as an image ({_error_text(error)}); "
            f"{archive.remedy}."
        ) from error


def _decode_drawings(
    archive: _Archive, drawings: list[tuple[str, str, str]], image_size: int
) -> list[np.ndarray]:
    blobs = [(member, archive.read(member)) for _, _, member in drawings]
    # Pillow releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda blob: _decode(archive, *blob, image_size), blobs))


def _source_fingerprint(archives: dict[str, Path], image_size: int) -> str:
    described = []
    for name, path in sorted(archives.items()):
        stat = path.stat()
        described.append([name, str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    blob = json.dumps([_CACHE_FORMAT, image_size, described]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _read_archives(
    archives: dict[str, Path], image_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(images, character, names, background)``, as :class:`OmniglotCharacters` holds them."""
    names: list[str] = []
    images: list[np.ndarray] = []
    character: list[int] = []
    background: list[bool] = []
    with ExitStack() as stack:
        # Check both archives (checksum, layout) before the slow decoding, so that a damaged
        # evaluation zip fails at once rather than after the background one is decoded.
        checked = []
        for archive_name in ("images_background", "images_evaluation"):
            archive = stack.enter_context(_Archive(archive_name, archives[archive_name]))
            if archive.is_zip:
                _verify_checksum(archive)
            checked.append((archive, _list_drawings(archive)))
        for archive, drawings in checked:
            decoded = _decode_drawings(archive, drawings, image_size)
            for (alphabet, character_name, _), image in zip(drawings, decoded, strict=True):
                name = f"{alphabet}/{character_name}"
                if not names or names[-1] != name:
                    names.append(name)
                    background.append(archive.name == "images_background")
                character.append(len(names) - 1)
                images.append(image)
    return (
        np.stack(images)[:, None],
        np.asarray(character, dtype=np.int64),
        np.asarray(names),
        np.asarray(background, dtype=bool),
    )


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

    Raises:
        DataNotFoundError: the archives are neither found nor downloadable, or the data root is
            a file or cannot be read.
        DataError: an archive is damaged, not the official one, of the wrong set, or holds a
            drawing that cannot be decoded (see the module docstring); nothing is cached then.
    """
    if not isinstance(image_size, int) or not 4 <= image_size <= 105:
        raise ValueError(f"image_size must be an integer from 4 to 105 pixels, got {image_size!r}")
    root_path, origin = _data_root_and_origin(root)
    _check_data_root(root_path, origin)
    archives = _locate_or_download(root_path, download)
    cache_file = cache_dir(cache) / (
        f"omniglot-{image_size}px-{_source_fingerprint(archives, image_size)}.npz"
    )
    if use_cache and cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as stored:
            return _characters_from_arrays(
                stored["images"], stored["character"], stored["names"], stored["background"]
            )
    arrays = _read_archives(archives, image_size)
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
    *,
    rotations: bool = True,
) -> FewShotDataset:
    """One split of Omniglot under a standard protocol, as a :class:`FewShotDataset`.

    >>> test = load_omniglot("test", protocol="vinyals")          # doctest: +SKIP
    >>> test.num_classes, test.image_shape                         # doctest: +SKIP
    (1692, (1, 28, 28))

    Args:
        split: ``"train"``, ``"val"``, ``"trainval"`` or ``"test"`` (``"lake"``: train/test).
        protocol: ``"vinyals"`` (rotations, 1200/423 characters) or ``"lake"`` (alphabets).
        root, image_size, download, cache: see :func:`load_omniglot_characters`.
        rotations: ``"vinyals"`` only: False keeps each character upright, one class per
            character instead of four (the ablation of chapter 7; the dataset's name then ends
            in ``-upright``). ``"lake"`` has no rotations either way.
    """
    _check_split(protocol, split)  # before any slow loading
    characters = load_omniglot_characters(root, image_size, download, cache)
    chosen = _split_characters(characters, protocol, split)
    rotated = rotations and protocol == "vinyals"
    angles = _ROTATIONS if rotated else (0,)
    order = torch.argsort(characters.character, stable=True)
    counts = torch.bincount(characters.character, minlength=len(characters.names))
    starts = torch.cumsum(counts, 0) - counts
    images, labels, class_names = [], [], []
    for char in chosen:
        drawings = characters.images[order[starts[char] : starts[char] + counts[char]]]
        for degrees in angles:
            labels.append(torch.full((len(drawings),), len(class_names), dtype=torch.long))
            images.append(torch.rot90(drawings, k=degrees // 90, dims=(-2, -1)))
            name = characters.names[char]
            class_names.append(f"{name}/rot{degrees:03d}" if protocol == "vinyals" else name)
    return FewShotDataset(
        images=torch.cat(images).contiguous(),
        labels=torch.cat(labels),
        class_names=class_names,
        name=f"omniglot/{protocol}/{split}" + ("" if rotated or protocol != "vinyals"
                                                else "-upright"),
    )
