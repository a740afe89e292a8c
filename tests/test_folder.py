"""Loading a folder of the user's own images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fslearn.data import EpisodeSampler, load_image_folder


def _write(path, value, size=(10, 6), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size[1], size[0]) + ((3,) if mode == "RGB" else ()), value, np.uint8)
    Image.fromarray(array, mode).save(path)


def test_one_subfolder_per_class(tmp_path):
    for name, value in (("cat", 10), ("dog", 200)):
        for i in range(3):
            _write(tmp_path / name / f"{i}.png", value)
    (tmp_path / "dog" / "notes.txt").write_text("not an image: ignored by suffix")
    dataset = load_image_folder(tmp_path, image_size=8)
    assert dataset.class_names == ["cat", "dog"]
    assert dataset.images.shape == (6, 1, 8, 8)
    assert torch.equal(dataset.class_counts(), torch.tensor([3, 3]))
    assert int(dataset.images[dataset.labels == 1].float().mean()) == 200
    episode = EpisodeSampler(dataset, 2, 1, 2).episode(0)
    assert episode.support_x.shape == (1, 2, 1, 8, 8)


def test_colour_and_inversion(tmp_path):
    _write(tmp_path / "a" / "x.jpg", 30, mode="RGB")
    _write(tmp_path / "b" / "y.png", 30, mode="RGB")
    dataset = load_image_folder(tmp_path, image_size=(4, 6), grayscale=False, invert=True)
    assert dataset.images.shape == (2, 3, 4, 6)
    assert abs(int(dataset.images[1].float().mean()) - 225) <= 1


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_image_folder(tmp_path / "nope")


def test_no_class_folders(tmp_path):
    _write(tmp_path / "loose.png", 0)
    with pytest.raises(ValueError, match="no subfolders"):
        load_image_folder(tmp_path)


def test_empty_class(tmp_path):
    _write(tmp_path / "a" / "x.png", 0)
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match=r"b has no images"):
        load_image_folder(tmp_path)


def test_broken_image_names_the_file(tmp_path):
    _write(tmp_path / "a" / "x.png", 0)
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken.png could not be read"):
        load_image_folder(tmp_path)
