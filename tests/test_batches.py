"""Class-balanced labelled mini-batches (what Baseline and Baseline++ pre-train on): balance,
labels, reproducibility by (seed, index), and errors that name the numbers."""

from __future__ import annotations

import pytest
import torch
from conftest import make_dataset

import fslearn.data
from fslearn.data import FewShotDataset, LabelledBatch, LabelledBatchSampler
from fslearn.data.dataset import to_float


def test_exported_from_fslearn_data():
    assert fslearn.data.LabelledBatchSampler is LabelledBatchSampler
    assert fslearn.data.LabelledBatch is LabelledBatch


@pytest.mark.parametrize("batch", [1, 3, 4, 10])
def test_every_class_is_drawn_equally_often_whatever_its_size(batch):
    # classes of 3, 5, 1 and 7 images: balanced over classes, not images
    data = make_dataset([3, 5, 1, 7])
    sampler = LabelledBatchSampler(data, batch, seed=2)
    drawn = torch.cat([sampler.indices(i)[1] for i in range(25)])
    counts = torch.bincount(drawn, minlength=4)
    assert int(counts.max() - counts.min()) <= 1, counts
    # each round of 4 consecutive draws is a permutation of the classes
    for start in range(0, len(drawn) - 3, 4):
        assert sorted(drawn[start : start + 4].tolist()) == [0, 1, 2, 3]
    # and after any prefix of batches the counts differ by at most one
    for n in range(1, 25):
        prefix = torch.bincount(drawn[: n * batch], minlength=4)
        assert int(prefix.max() - prefix.min()) <= 1


def test_labels_are_the_dataset_classes_of_the_images():
    data = make_dataset([3, 5, 1, 7])
    batch = LabelledBatchSampler(data, 6, seed=0).episode(3)
    assert batch.batch == 6 and batch.x.shape == (6, 1, 4, 4) and batch.x.dtype == torch.float32
    assert torch.equal(batch.y, data.labels[batch.indices])
    assert torch.equal(batch.x, to_float(data.images[batch.indices]))
    assert batch.y.dtype == torch.int64 and batch.indices.dtype == torch.int64
    moved = batch.to("cpu")
    assert isinstance(moved, LabelledBatch) and torch.equal(moved.y, batch.y)


def test_images_of_a_class_are_drawn_uniformly():
    data = make_dataset([4, 4])
    sampler = LabelledBatchSampler(data, 8, seed=1)
    drawn = torch.cat([sampler.indices(i)[0] for i in range(400)])
    counts = torch.bincount(drawn, minlength=8).float()
    assert counts.sum() == 3200 and (counts / 400 - 1).abs().max() < 0.15, counts


def test_a_batch_is_a_pure_function_of_seed_and_index():
    data = make_dataset([3, 5, 1, 7, 2])
    a = LabelledBatchSampler(data, 3, seed=4)
    b = LabelledBatchSampler(data, 3, seed=4)
    later_first = [b.indices(i) for i in (9, 2, 0)]
    for i, (images, classes) in zip((9, 2, 0), later_first, strict=True):
        assert torch.equal(a.indices(i)[0], images) and torch.equal(a.indices(i)[1], classes)
    other = LabelledBatchSampler(data, 3, seed=5)
    assert any(not torch.equal(a.indices(i)[0], other.indices(i)[0]) for i in range(5))
    iterated = iter(a)
    assert all(torch.equal(next(iterated).indices, a.episode(i).indices) for i in range(4))


@pytest.mark.parametrize("kwargs, message", [
    ({"batch": 0}, "batch must be a positive integer (images per batch), got 0"),
    ({"batch": 2.5}, "got 2.5"),
    ({"seed": -1}, "seed must be a non-negative integer, got -1"),
])
def test_bad_arguments_name_the_numbers(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LabelledBatchSampler(make_dataset([2, 2]), **kwargs)


def test_bad_datasets_and_indices_are_refused():
    with pytest.raises(ValueError, match="needs at least 2 classes, but synthetic has 1 class: "
                       "add classes"):
        LabelledBatchSampler(make_dataset([3]), 2)
    empty = FewShotDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 2]),
                           ["a", "b", "c"], "gappy")
    with pytest.raises(ValueError, match=r"Class 'b' of gappy has no image \(1 of 3 classes "
                       r"have none\)"):
        LabelledBatchSampler(empty, 2)
    with pytest.raises(ValueError, match="index must be a non-negative integer, got -1"):
        LabelledBatchSampler(make_dataset([2, 2]), 2).indices(-1)
