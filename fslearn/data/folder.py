"""Your own images as a few-shot dataset: one subfolder per class."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fslearn.data.dataset import FewShotDataset

__all__ = ["IMAGE_SUFFIXES", "load_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load_image_folder(
    root: str | os.PathLike[str],
    image_size: int | tuple[int, int] = 28,
    grayscale: bool = True,
    invert: bool = False,
) -> FewShotDataset:
    """Load ``root/<class name>/<image>`` into memory, resized, as a :class:`FewShotDataset`.

    Args:
        root: a folder with one subfolder per class; classes are sorted by name.
        image_size: side of the square output, or ``(height, width)``.
        grayscale: one channel (``True``) or RGB.
        invert: turn dark-on-light drawings into light-on-dark, as the Omniglot loader does.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no class folders, a class without images, or a file that is not an image.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; expected one subfolder per class.")
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"{root} has no subfolders: put each class's images in a folder of its "
                         f"own, e.g. {root}/cat/1.png, {root}/dog/1.png.")
    images, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"Class folder {class_dir} has no images (looked for "
                             f"{', '.join(IMAGE_SUFFIXES)}).")
        for file in files:
            try:
                with Image.open(file) as image:
                    converted = image.convert("L" if grayscale else "RGB").resize(
                        (width, height), Image.Resampling.LANCZOS
                    )
            except (UnidentifiedImageError, OSError) as error:
                raise ValueError(f"{file} could not be read as an image ({error}).") from error
            array = np.asarray(converted, dtype=np.uint8)
            if invert:
                array = 255 - array
            images.append(array[None] if grayscale else array.transpose(2, 0, 1))
            labels.append(label)
    return FewShotDataset(
        images=torch.from_numpy(np.stack(images)),
        labels=torch.tensor(labels, dtype=torch.long),
        class_names=[d.name for d in class_dirs],
        name=f"folder:{root.name}",
    )
