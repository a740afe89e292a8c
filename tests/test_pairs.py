"""The pair and triplet samplers against their invariants, on synthetic data where every image
is known: balance, same pairs truly of one class and different pairs of two, reproducibility by
(seed, index), and errors that name the numbers."""

from __future__ import annotations

import pytest
import torch
from conftest import make_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from fslearn.data import PairBatch, PairSampler, TripletBatch, TripletSampler


def _decoded(images: torch.Tensor) -> torch.Tensor:
    """The dataset index each of ``make_dataset``'s images encodes in its first two pixels."""
    return (images[:, 0, 0, 0] * 255).round().long() + 256 * (
        images[:, 0, 0, 1] * 255).round().long()


@st.composite
def requests(draw):
    counts = draw(st.lists(st.integers(2, 9), min_size=2, max_size=10))
    batch = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32))
    index = draw(st.integers(0, 10**6))
    return counts, batch, seed, index


@settings(max_examples=120, deadline=None)
@given(requests())
def test_pair_invariants(request_args):
    counts, half, seed, index = request_args
    dataset = make_dataset(counts)
    batch = PairSampler(dataset, 2 * half, seed=seed).episode(index)

    assert isinstance(batch, PairBatch) and batch.batch == 2 * half
    assert batch.first.shape == batch.second.shape == (2 * half, 1, 4, 4)
    assert batch.indices.shape == batch.classes.shape == (2 * half, 2)
    # balanced: the first half same pairs, the second half different ones
    assert torch.equal(batch.same, torch.cat([torch.ones(half), torch.zeros(half)]))
    assert torch.equal(batch.classes, dataset.labels[batch.indices])
    same = batch.same.bool()
    assert torch.equal(batch.classes[:, 0] == batch.classes[:, 1], same)
    # a same pair is two different images, never one image twice
    assert (batch.indices[same, 0] != batch.indices[same, 1]).all()
    # the pixels are those of the indexed images
    assert torch.equal(_decoded(batch.first), batch.indices[:, 0])
    assert torch.equal(_decoded(batch.second), batch.indices[:, 1])


@settings(max_examples=120, deadline=None)
@given(requests())
def test_triplet_invariants(request_args):
    counts, size, seed, index = request_args
    dataset = make_dataset(counts)
    batch = TripletSampler(dataset, size, seed=seed).episode(index)

    assert isinstance(batch, TripletBatch) and batch.batch == size
    assert batch.anchor.shape == batch.positive.shape == batch.negative.shape == (size, 1, 4, 4)
    assert torch.equal(batch.classes, dataset.labels[batch.indices])
    anchor, positive, negative = batch.classes.unbind(1)
    assert torch.equal(anchor, positive), "anchor and positive must share a class"
    assert (anchor != negative).all(), "the negative must be of another class"
    assert (batch.indices[:, 0] != batch.indices[:, 1]).all(), "anchor and positive are one image"
    for images, column in ((batch.anchor, 0), (batch.positive, 1), (batch.negative, 2)):
        assert torch.equal(_decoded(images), batch.indices[:, column])


@pytest.mark.parametrize("sampler_class", [PairSampler, TripletSampler])
def test_batches_are_a_function_of_seed_and_index(sampler_class):
    dataset = make_dataset([20] * 30)
    a, b = sampler_class(dataset, 16, seed=7), sampler_class(dataset, 16, seed=7)
    assert torch.equal(a.episode(12).indices, b.episode(12).indices)
    assert torch.equal(a.episode(12).indices, a.episode(12).indices)  # no hidden state
    assert not torch.equal(a.episode(12).indices, a.episode(13).indices)
    assert not torch.equal(a.episode(12).indices, sampler_class(dataset, 16, seed=8)
                           .episode(12).indices)
    # iteration yields batches 0, 1, 2, ...
    for i, batch in zip(range(3), a, strict=False):
        assert torch.equal(batch.indices, a.episode(i).indices)


def test_classes_are_drawn_uniformly_whatever_their_size():
    # class 0 has 2 images, class 1 has 40: each is the class of half the same pairs, and each
    # image of class 0 is either image of its same pairs
    dataset = make_dataset([2, 40, 5])
    sampler = PairSampler(dataset, 200, seed=0)
    same_classes = torch.cat([sampler.episode(i).classes[:100, 0] for i in range(20)])
    share = torch.bincount(same_classes, minlength=3).double() / len(same_classes)
    assert torch.allclose(share, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03), share
    different = torch.cat([sampler.episode(i).classes[100:] for i in range(20)]).flatten()
    share = torch.bincount(different, minlength=3).double() / len(different)
    assert torch.allclose(share, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03), share
    # the two images of a same pair of class 0 are images 0 and 1, in either order
    pairs = torch.cat([sampler.episode(i).indices[:100] for i in range(20)])
    of_class_0 = pairs[dataset.labels[pairs[:, 0]] == 0]
    assert set(map(tuple, of_class_0.tolist())) == {(0, 1), (1, 0)}


def test_moving_a_batch_keeps_it():
    dataset = make_dataset([3] * 4)
    for sampler in (PairSampler(dataset, 4), TripletSampler(dataset, 3)):
        batch = sampler.episode(0)
        moved = batch.to("cpu")
        assert type(moved) is type(batch) and torch.equal(moved.indices, batch.indices)


@pytest.mark.parametrize("make, message", [
    (lambda d: PairSampler(d, 7), "batch must be an even number of pairs, half same and half "
     "different, got 7: use 6 or 8"),
    (lambda d: PairSampler(d, 1), "got 1: use 2"),
    (lambda d: PairSampler(d, 0), "batch must be a positive integer (pairs per batch), got 0"),
    (lambda d: TripletSampler(d, -3), "batch must be a positive integer (triplets per batch), "
     "got -3"),
    (lambda d: PairSampler(d, True), "got True"),
    (lambda d: TripletSampler(d, 2.0), "got 2.0"),
    (lambda d: PairSampler(d, 4, seed=-1), "seed must be a non-negative integer, got -1"),
])
def test_bad_batches_and_seeds(make, message):
    with pytest.raises(ValueError) as error:
        make(make_dataset([3] * 4))
    assert message in str(error.value)


@pytest.mark.parametrize("sampler_class, what", [(PairSampler, "Pairs"),
                                                 (TripletSampler, "Triplets")])
def test_datasets_that_cannot_give_pairs(sampler_class, what):
    with pytest.raises(ValueError, match=f"{what} need images of at least 2 different classes, "
                       f"but synthetic has 1 class: add classes"):
        sampler_class(make_dataset([10]), 4)
    with pytest.raises(ValueError) as error:
        sampler_class(make_dataset([5, 1, 4, 1, 3]), 4)
    assert (f"{what} need 2 different images of a class, but class 'class1' of synthetic has "
            f"only 1 image (2 of 5 classes have fewer than 2): leave those classes out"
            in str(error.value))


def test_a_negative_index_is_refused():
    sampler = PairSampler(make_dataset([3] * 4), 4)
    with pytest.raises(ValueError, match="index must be a non-negative integer, got -1"):
        sampler.episode(-1)
