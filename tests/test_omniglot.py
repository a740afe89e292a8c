"""The Omniglot loader on the shared copy of the official data."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fslearn.data import DataNotFoundError, load_omniglot
from fslearn.data.omniglot import find_omniglot, load_omniglot_characters


def _split_file(omniglot_root: Path, name: str) -> list[str]:
    for folder in (omniglot_root, omniglot_root / "omniglot"):
        path = folder / "splits" / "vinyals" / f"{name}.txt"
        if path.is_file():
            return path.read_text().split()
    pytest.fail(f"splits/vinyals/{name}.txt is missing from the shared data")


@pytest.fixture(scope="session")
def characters(omniglot_root):
    return load_omniglot_characters(omniglot_root)


def test_counts_of_the_official_archives(characters):
    assert len(characters.names) == 1623
    assert int(characters.background.sum()) == 964
    assert int((~characters.background).sum()) == 659
    assert torch.equal(torch.bincount(characters.character), torch.full((1623,), 20))
    assert characters.images.shape == (32460, 1, 28, 28)
    assert characters.images.dtype == torch.uint8


def test_ink_is_bright_and_background_dark(characters):
    # Strokes cover a small part of each drawing, so after inversion most pixels are near 0.
    mean = characters.images.float().mean() / 255
    assert 0.02 < float(mean) < 0.3
    assert int(characters.images.max()) > 200


def test_pixels_match_a_direct_decode(omniglot_root, characters):
    archive = find_omniglot(omniglot_root)["images_evaluation"]
    with zipfile.ZipFile(archive) as zipped:
        member = sorted(m for m in zipped.namelist() if m.endswith(".png"))[0]
        with zipped.open(member) as handle:
            image = Image.open(handle).convert("L").resize((28, 28), Image.Resampling.LANCZOS)
    expected = 255 - np.asarray(image)
    first_evaluation = int(np.argmin(characters.background))
    row = int(torch.nonzero(characters.character == first_evaluation)[0])
    assert np.array_equal(characters.images[row, 0].numpy(), expected)
    assert characters.names[first_evaluation] == "/".join(member.split("/")[1:3])


@pytest.mark.parametrize("split,classes", [("train", 4112), ("val", 688), ("trainval", 4800),
                                           ("test", 1692)])
def test_vinyals_split_matches_the_standard_class_lists(omniglot_root, split, classes):
    dataset = load_omniglot(split, "vinyals", root=omniglot_root)
    expected = _split_file(omniglot_root, split)
    assert dataset.num_classes == classes == len(expected)
    # The same classes (the reference lists follow a file-system order, ours is sorted).
    assert len(set(dataset.class_names)) == len(dataset.class_names)
    assert set(dataset.class_names) == set(expected)
    assert len(dataset) == 20 * classes
    assert torch.equal(dataset.class_counts(), torch.full((classes,), 20))


def test_vinyals_rotations_are_rotated_copies(omniglot_root):
    dataset = load_omniglot("test", "vinyals", root=omniglot_root)
    first = dataset.images[dataset.labels == 0]
    for quarter in range(1, 4):
        rotated = dataset.images[dataset.labels == quarter]
        assert dataset.class_names[quarter].endswith(f"rot{90 * quarter:03d}")
        assert torch.equal(rotated, torch.rot90(first, quarter, dims=(-2, -1)))
    # counter-clockwise, like PIL's Image.rotate used by the reference implementation
    pil = np.asarray(Image.fromarray(first[0, 0].numpy()).rotate(90))
    assert np.array_equal(dataset.images[dataset.labels == 1][0, 0].numpy(), pil)


def test_upright_vinyals_keeps_one_class_per_character(omniglot_root):
    """``rotations=False``: the same characters, each once, upright (chapter 7's ablation)."""
    rotated = load_omniglot("train", "vinyals", root=omniglot_root)
    upright = load_omniglot("train", "vinyals", root=omniglot_root, rotations=False)
    assert (rotated.num_classes, upright.num_classes) == (4112, 1028)
    assert upright.name == "omniglot/vinyals/train-upright"
    assert upright.class_names == [name for name in rotated.class_names
                                   if name.endswith("/rot000")]
    keep = torch.tensor([name.endswith("/rot000") for name in rotated.class_names])
    assert torch.equal(upright.images, rotated.images[keep[rotated.labels]])
    lake = load_omniglot("train", "lake", root=omniglot_root, rotations=False)
    assert lake.name == "omniglot/lake/train" and lake.num_classes == 964


def test_lake_protocol_is_background_versus_evaluation(omniglot_root, characters):
    train = load_omniglot("train", "lake", root=omniglot_root)
    test = load_omniglot("test", "lake", root=omniglot_root)
    assert (train.num_classes, test.num_classes) == (964, 659)
    assert (len(train), len(test)) == (19280, 13180)
    train_alphabets = {name.split("/")[0] for name in train.class_names}
    test_alphabets = {name.split("/")[0] for name in test.class_names}
    assert len(train_alphabets) == 30 and len(test_alphabets) == 20
    assert not train_alphabets & test_alphabets


def test_other_image_sizes(omniglot_root, tmp_path):
    dataset = load_omniglot("val", "vinyals", root=omniglot_root, image_size=14, cache=tmp_path)
    assert dataset.image_shape == (1, 14, 14)


def test_processed_cache_is_written_once_and_read_back_identically(omniglot_root, tmp_path):
    first = load_omniglot_characters(omniglot_root, image_size=10, cache=tmp_path)
    cached = list(tmp_path.glob("omniglot-10px-*.npz"))
    assert len(cached) == 1 and not list(tmp_path.glob("*.part"))
    modified = cached[0].stat().st_mtime_ns
    second = load_omniglot_characters(omniglot_root, image_size=10, cache=tmp_path)
    assert cached[0].stat().st_mtime_ns == modified
    assert torch.equal(first.images, second.images)
    assert first.names == second.names


def test_unpacked_folders_load_like_the_zips(omniglot_root, tmp_path, characters):
    archives = find_omniglot(omniglot_root)
    root = tmp_path / "unpacked"
    root.mkdir()
    shutil.copy(archives["images_background"], root / "images_background.zip")
    sums = archives["images_background"].parent / "SHA256SUMS"
    if sums.is_file():  # the shared copy is a faithful repack, trusted through its SHA256SUMS
        shutil.copy(sums, root)
    with zipfile.ZipFile(archives["images_evaluation"]) as zipped:
        zipped.extractall(root)
    assert find_omniglot(root)["images_evaluation"].is_dir()
    mixed = load_omniglot_characters(root, cache=tmp_path / "cache")
    assert mixed.names == characters.names
    assert torch.equal(mixed.images, characters.images)


def test_data_root_may_hold_an_omniglot_subfolder(omniglot_root, tmp_path):
    archives = find_omniglot(omniglot_root)
    (tmp_path / "omniglot").mkdir()
    for name, path in archives.items():
        (tmp_path / "omniglot" / f"{name}.zip").symlink_to(path)
    assert find_omniglot(tmp_path) is not None


def test_missing_data_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"images_background.zip .* FSLEARN_DATA"):
        load_omniglot("train", root=tmp_path, download=False)


def test_environment_variable_is_the_default_root(omniglot_root, monkeypatch, tmp_path):
    monkeypatch.setenv("FSLEARN_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        load_omniglot("train", download=False)


@pytest.mark.parametrize("protocol,split,message", [
    ("vinyals", "validation", r"no split 'validation'.*'train', 'val', 'trainval', 'test'"),
    ("lake", "val", r"'lake' protocol has no split 'val'"),
    ("snell", "train", r"Unknown protocol 'snell'"),
])
def test_bad_protocol_or_split_names_the_choices(protocol, split, message):
    with pytest.raises(ValueError, match=message):
        load_omniglot(split, protocol)


@pytest.mark.parametrize("size", [0, 3, 106, 28.0])
def test_bad_image_size(size, omniglot_root):
    with pytest.raises(ValueError, match="image_size"):
        load_omniglot("test", root=omniglot_root, image_size=size)
