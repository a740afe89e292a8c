"""Transductive and non-transductive test-time batch norm of the inner-loop methods: with
``transductive=False`` no query informs another, and each is scored beside the support set
exactly as a hand-built batch would be."""

from __future__ import annotations

import pytest
import torch

from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.methods import ANIL, MAML, Reptile


def _small(method_class, **kwargs):
    torch.manual_seed(0)
    return method_class(n_way=5, hidden_channels=8, blocks=2, inner_steps=1, inner_lr=0.4,
                        **kwargs).eval()


def _with_other_queries(episode: Episode, keep: int) -> Episode:
    """The episode with every query but ``keep`` replaced by noise."""
    noisy = torch.rand_like(episode.query_x)
    noisy[:, keep] = episode.query_x[:, keep]
    return Episode(episode.support_x, episode.support_y, noisy, episode.query_y,
                   episode.classes, episode.n_way)


@pytest.mark.parametrize("method_class, kwargs", [
    (MAML, {}), (ANIL, {}), (Reptile, {"inner_optimizer": "sgd"})])
def test_a_non_transductive_query_ignores_the_others(omniglot_small, method_class, kwargs):
    method = _small(method_class, **kwargs)
    episode = EpisodeSampler(omniglot_small, 5, 1, 3, tasks=2, seed=0).episode(0)
    changed = _with_other_queries(episode, keep=4)
    method.transductive = False
    torch.testing.assert_close(method(changed)[:, 4], method(episode)[:, 4])
    method.transductive = True  # the default: the query set's statistics move every query
    assert not torch.allclose(method(changed)[:, 4], method(episode)[:, 4])


def test_a_non_transductive_query_is_scored_beside_the_support_set(omniglot_small):
    """With no inner step, the adapted weights are the initial ones: query ``i``'s logits are
    the network's on the batch [support images, query i], read at its last row."""
    method = _small(MAML, test_inner_steps=0)
    method.transductive = False
    episode = EpisodeSampler(omniglot_small, 5, 1, 3, tasks=1, seed=0).episode(0)
    with torch.no_grad():
        logits = method(episode)[0]
        by_hand = torch.stack([method.network(torch.cat([episode.support_x[0], query[None]]))[-1]
                               for query in episode.query_x[0]])
    torch.testing.assert_close(logits, by_hand, rtol=1e-5, atol=1e-5)


def test_training_always_normalises_over_the_query_set(omniglot_small):
    method = _small(MAML).train()
    method.transductive = False
    episode = EpisodeSampler(omniglot_small, 5, 1, 3, tasks=1, seed=0).episode(0)
    changed = _with_other_queries(episode, keep=0)
    assert not torch.allclose(method(changed)[:, 0], method(episode)[:, 0])


def test_transductive_prototypes_refine_with_the_queries(omniglot_small):
    """``transductive=True``: the queries are unlabelled images of the refinement, so the scores
    are those of ``scores(..., unlabelled_z=query_z)``, computed here by hand."""
    from fslearn.methods import SemiSupervisedPrototypes

    torch.manual_seed(0)
    method = SemiSupervisedPrototypes(refinement="soft").eval()
    episode = EpisodeSampler(omniglot_small, 5, 1, 3, tasks=2, seed=0).episode(0)
    with torch.no_grad():
        inductive = method(episode)
        method.transductive = True
        transductive = method(episode)
        support_z = method.embed(episode.support_x.flatten(0, 1)).view(2, 5, -1)
        query_z = method.embed(episode.query_x.flatten(0, 1)).view(2, 15, -1)
        by_hand = method.scores(support_z, episode.support_y, query_z, 5, unlabelled_z=query_z)
    torch.testing.assert_close(transductive, by_hand, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(transductive, inductive)
