"""Your own images as a few-shot dataset: one subfolder per class.

::

    my_images/
        cat/    1.jpg 2.jpg ...
        dog/    photo.png ...

Any image size and format Pillow reads; every image is resized to one square size (or
``(height, width)``), as one channel (greyscale) or three (RGB). Transparent pixels become white,
the paper behind a drawing. Drawings in dark ink on a light background can be inverted into the
light-on-dark convention of the Omniglot loader, so that a model trained on Omniglot sees what it
was trained on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fslearn.data.dataset import FewShotDataset
from fslearn.data.errors import DataError
from fslearn.data.omniglot import DataNotFoundError

__all__ = [
    "IMAGE_SUFFIXES",
    "find_images",
    "image_channels",
    "load_image_files",
    "load_image_folder",
    "save_image_folder",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

#: channel differences up to this many levels (of 255) still count as grey: JPEG compression
#: leaves a little colour noise in greyscale scans saved as RGB.
_GREY_TOLERANCE = 8


def _is_image_file(path: Path) -> bool:
    return (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
            and not path.name.startswith("."))


def find_images(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Image files named by ``paths``: files as given, folders searched recursively (sorted).

    Raises:
        DataNotFoundError: a path does not exist.
        DataError: a file given directly is not an image file, or nothing was found.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    found: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if _is_image_file(p)
                                and not any(part.startswith(".") for part in
                                            p.relative_to(path).parts)))
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{path} is not an image file (expected one of "
                                f"{', '.join(IMAGE_SUFFIXES)}).")
            found.append(path)
        else:
            raise DataNotFoundError(f"{path} does not exist: give image files or folders of "
                                    f"images.")
    if not found:
        shown = ", ".join(str(Path(i)) for i in items) or "(nothing given)"
        raise DataError(f"No images found in {shown} (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return found


def _open_rgb_or_grey(file: Path) -> Image.Image:
    """The image as ``"L"`` or ``"RGB"``, transparent pixels composited onto white."""
    try:
        with Image.open(file) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P"
                                                      and "transparency" in image.info):
                rgba = image.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(white, rgba).convert("RGB")
            if image.mode in ("1", "L", "I", "I;16", "F"):
                return image.convert("L")
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{file} could not be read as an image ({error}): replace or delete "
                        f"the file.") from error


def _is_colour(image: Image.Image) -> bool:
    if image.mode == "L":
        return False
    array = np.asarray(image, dtype=np.int16)
    spread = np.abs(array - array[..., :1]).max() if array.size else 0
    return int(spread) > _GREY_TOLERANCE


def image_channels(files: Sequence[Path]) -> int:
    """3 if any of ``files`` is a colour image, else 1 (greyscale, even if stored as RGB)."""
    return 3 if any(_is_colour(_open_rgb_or_grey(f)) for f in files) else 1


def _read(file: Path, height: int, width: int, grayscale: bool, invert: bool) -> np.ndarray:
    image = _open_rgb_or_grey(file)
    converted = image.convert("L" if grayscale else "RGB").resize(
        (width, height), Image.Resampling.LANCZOS)
    array = np.asarray(converted, dtype=np.uint8)
    if invert:
        array = 255 - array
    return array[None] if grayscale else array.transpose(2, 0, 1)


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    if not all(isinstance(v, int) and v >= 1 for v in (height, width)):
        raise ValueError(f"image_size must be a positive integer or (height, width), got "
                         f"{image_size!r}")
    return height, width


def load_image_files(
    files: Sequence[str | os.PathLike[str]],
    image_size: int | tuple[int, int] = 28,
    grayscale: bool | None = True,
    invert: bool = False,
) -> torch.Tensor:
    """Images as one uint8 tensor ``[len(files), C, H, W]``, prepared like
    :func:`load_image_folder` (``grayscale=None``: 3 channels if any image is in colour)."""
    paths = [Path(f) for f in files]
    height, width = _size(image_size)
    if grayscale is None:
        grayscale = image_channels(paths) == 1
    channels = 1 if grayscale else 3
    if not paths:
        return torch.zeros(0, channels, height, width, dtype=torch.uint8)
    return torch.from_numpy(np.stack([_read(p, height, width, grayscale, invert) for p in paths]))


def load_image_folder(
    root: str | os.PathLike[str],
    image_size: int | tuple[int, int] = 28,
    grayscale: bool | None = True,
    invert: bool = False,
) -> FewShotDataset:
    """Load ``root/<class name>/<image>`` into memory, resized, as a :class:`FewShotDataset`.

    Args:
        root: a folder with one subfolder per class; classes are sorted by name. Classes may
            have different numbers of images. Files without an image suffix are ignored.
        image_size: side of the square output, or ``(height, width)``.
        grayscale: one channel (``True``), RGB (``False``), or ``None`` to decide from the
            images: RGB if any of them is in colour.
        invert: turn dark-on-light drawings into light-on-dark, as the Omniglot loader does.

    Raises:
        DataNotFoundError: ``root`` does not exist or is not a folder.
        DataError: no class folders, a class without images, or a file that is not an image
            (the message names it).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "it is a file" if root.exists() else "it does not exist"
        raise DataNotFoundError(f"{root} is not a folder ({what}); expected a folder with one "
                                f"subfolder per class (e.g. {root}/cat/1.png, {root}/dog/1.png).")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root} has no subfolders: put each class's images in a folder of its "
                        f"own, e.g. {root}/cat/1.png, {root}/dog/1.png.")
    files_by_class = []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.iterdir() if _is_image_file(p))
        if not files:
            raise DataError(f"Class folder {class_dir} has no images (looked for "
                            f"{', '.join(IMAGE_SUFFIXES)}): add some or remove the folder.")
        files_by_class.append(files)
    every_file = [f for files in files_by_class for f in files]
    images = load_image_files(every_file, image_size, grayscale, invert)
    labels = torch.cat([torch.full((len(files),), label, dtype=torch.long)
                        for label, files in enumerate(files_by_class)])
    return FewShotDataset(
        images=images,
        labels=labels,
        class_names=[d.name for d in class_dirs],
        name=f"folder:{root.name}",
    )


def save_image_folder(
    dataset: FewShotDataset,
    root: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
    invert: bool = False,
) -> Path:
    """Write ``dataset`` as PNGs, ``root/<class name>/<index>.png``: the layout
    :func:`load_image_folder` reads.

    Args:
        dataset: the images (for instance a few Omniglot classes, as a stand-in for your own).
        root: a new or empty folder.
        class_names: folder names, one per class (default: the dataset's, with ``/`` as ``-``).
        invert: write ``255 - pixel`` (Omniglot's loader stores ink as 255: invert to get the
            original dark-on-light drawings back).
    """
    root = Path(root).expanduser()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DataError(f"{root} already exists and is not an empty folder: choose a new one.")
    names = list(class_names) if class_names is not None else [
        name.replace("/", "-") for name in dataset.class_names]
    if len(names) != dataset.num_classes or len(set(names)) != len(names):
        raise ValueError(f"class_names must be {dataset.num_classes} distinct names, got "
                         f"{len(set(names))} distinct of {len(names)}")
    for label, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for number, index in enumerate((dataset.labels == label).nonzero().flatten().tolist()):
            array = dataset.images[index].numpy()
            array = 255 - array if invert else array
            image = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
            Image.fromarray(np.ascontiguousarray(image)).save(folder / f"{number:03d}.png")
    return root
