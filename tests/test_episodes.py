"""The episode sampler against its invariants, on synthetic data where every image is known."""

from __future__ import annotations

import pytest
import torch
from conftest import make_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from fslearn.data import EpisodeSampler


@st.composite
def requests(draw):
    counts = draw(st.lists(st.integers(2, 12), min_size=2, max_size=12))
    n_way = draw(st.integers(1, len(counts)))
    per_class = min(counts)
    k_shot = draw(st.integers(1, per_class - 1))
    n_query = draw(st.integers(1, per_class - k_shot))
    tasks = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32))
    index = draw(st.integers(0, 10**6))
    return counts, n_way, k_shot, n_query, tasks, seed, index


@settings(max_examples=150, deadline=None)
@given(requests())
def test_episode_invariants(request_args):
    counts, n_way, k_shot, n_query, tasks, seed, index = request_args
    dataset = make_dataset(counts)
    sampler = EpisodeSampler(dataset, n_way, k_shot, n_query, tasks=tasks, seed=seed)
    indices = sampler.indices(index)
    episode = indices.gather(dataset.images)

    assert episode.support_x.shape == (tasks, n_way * k_shot, 1, 4, 4)
    assert episode.query_x.shape == (tasks, n_way * n_query, 1, 4, 4)
    assert (episode.tasks, episode.n_way, episode.k_shot, episode.n_query) == (
        tasks, n_way, k_shot, n_query)
    for t in range(tasks):
        classes = indices.classes[t]
        assert len(set(classes.tolist())) == n_way, "classes within a task must be distinct"
        support, query = indices.support[t], indices.query[t]
        assert not set(support.tolist()) & set(query.tolist()), "support and query overlap"
        assert len(set(support.tolist())) == len(support), "an image repeats in the support"
        assert len(set(query.tolist())) == len(query), "an image repeats in the query set"
        for ids, labels, per_class in ((support, episode.support_y[t], k_shot),
                                       (query, episode.query_y[t], n_query)):
            # labels are 0..n_way-1, per_class of each, and label j is dataset class classes[j]
            assert torch.equal(torch.bincount(labels, minlength=n_way),
                               torch.full((n_way,), per_class))
            assert torch.equal(dataset.labels[ids], classes[labels])
    # the pixels are those of the indexed images
    decoded = (episode.support_x[..., 0, 0, 0] * 255).round().long() + 256 * (
        episode.support_x[..., 0, 0, 1] * 255).round().long()
    assert torch.equal(decoded, indices.support)


def test_same_seed_and_index_give_the_same_episode_and_others_differ():
    dataset = make_dataset([20] * 30)
    a = EpisodeSampler(dataset, 5, 1, 3, seed=7)
    b = EpisodeSampler(dataset, 5, 1, 3, seed=7)
    assert torch.equal(a.indices(12).support, b.indices(12).support)
    assert torch.equal(a.indices(12).query, b.indices(12).query)
    assert not torch.equal(a.indices(12).support, a.indices(13).support)
    c = EpisodeSampler(dataset, 5, 1, 3, seed=8)
    assert not torch.equal(a.indices(12).support, c.indices(12).support)


def test_iteration_yields_episodes_in_index_order():
    dataset = make_dataset([6] * 8)
    sampler = EpisodeSampler(dataset, 3, 2, 2, seed=1)
    first_three = [e for _, e in zip(range(3), sampler, strict=False)]
    for i, episode in enumerate(first_three):
        assert torch.equal(episode.support_x, sampler.episode(i).support_x)


def test_classes_and_images_are_drawn_uniformly():
    # 10 classes of 10 images, 2-way 1-shot 1-query: each class appears in 20% of episodes and
    # each image is the support image of its class 10% of the time.
    dataset = make_dataset([10] * 10)
    sampler = EpisodeSampler(dataset, 2, 1, 1, seed=3)
    class_hits = torch.zeros(10)
    image_hits = torch.zeros(100)
    episodes = 4000
    for i in range(episodes):
        indices = sampler.indices(i)
        class_hits[indices.classes[0]] += 1
        image_hits[indices.support[0]] += 1
    assert torch.allclose(class_hits / episodes, torch.full((10,), 0.2), atol=0.03)
    per_image = image_hits / (class_hits.repeat_interleave(10))
    assert torch.allclose(per_image, torch.full((100,), 0.1), atol=0.06)


def test_unequal_class_sizes_never_pick_padding():
    dataset = make_dataset([3, 9, 4, 20])
    sampler = EpisodeSampler(dataset, 4, 1, 2, seed=0)
    for i in range(200):
        indices = sampler.indices(i)
        assert int(indices.support.min()) >= 0 and int(indices.query.min()) >= 0


def test_too_many_classes_names_the_numbers():
    dataset = make_dataset([5] * 4)
    with pytest.raises(ValueError, match=r"n_way=5 .* only 4 classes"):
        EpisodeSampler(dataset, 5, 1, 1)


def test_too_many_images_names_the_numbers_and_the_class():
    dataset = make_dataset([20, 20, 7, 20])
    with pytest.raises(ValueError, match=r"1 \+ 19 = 20 images .* 'class2' .* only 7 images"):
        EpisodeSampler(dataset, 2, 1, 19)


@pytest.mark.parametrize("field,value", [("n_way", 0), ("k_shot", -1), ("n_query", 0),
                                         ("tasks", 0), ("n_way", 2.5)])
def test_non_positive_sizes_are_refused(field, value):
    dataset = make_dataset([5] * 4)
    args = {"n_way": 2, "k_shot": 1, "n_query": 1, "tasks": 1} | {field: value}
    with pytest.raises(ValueError, match=field):
        EpisodeSampler(dataset, **args)


def test_negative_seed_and_index_are_refused():
    dataset = make_dataset([5] * 4)
    with pytest.raises(ValueError, match="seed"):
        EpisodeSampler(dataset, 2, 1, 1, seed=-1)
    with pytest.raises(ValueError, match="episode_index"):
        EpisodeSampler(dataset, 2, 1, 1).indices(-1)


def test_gather_from_embeddings_keeps_rows():
    dataset = make_dataset([4] * 5)
    embeddings = torch.arange(20, dtype=torch.float32)[:, None].repeat(1, 3)
    indices = EpisodeSampler(dataset, 3, 1, 2, tasks=2).indices(0)
    episode = indices.gather(embeddings)
    assert episode.support_x.shape == (2, 3, 3)
    assert torch.equal(episode.support_x[..., 0].long(), indices.support)


def test_select_classes_relabels_and_keeps_images():
    dataset = make_dataset([3, 4, 5, 6])
    subset = dataset.select_classes([2, 0])
    assert subset.class_names == ["class2", "class0"]
    assert torch.equal(subset.class_counts(), torch.tensor([5, 3]))
    assert torch.equal(subset.images[subset.labels == 0], dataset.images[dataset.labels == 2])
    with pytest.raises(ValueError, match="indices"):
        dataset.select_classes([4])
