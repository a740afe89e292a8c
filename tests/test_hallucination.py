"""Hallucinated prototypes against hand-computed cases, and their noise's determinism."""

from __future__ import annotations

import pytest
import torch

from fslearn.checkpoints import load_checkpoint, save_checkpoint
from fslearn.data.episodes import EpisodeSampler
from fslearn.methods import METHODS, HallucinatingPrototypes, PrototypicalNetwork


def _episode(dataset, tasks: int = 2):
    return EpisodeSampler(dataset, 5, 1, 3, tasks=tasks, seed=0).episode(0)


def test_it_is_registered_with_its_option():
    assert METHODS["hallucination"] is HallucinatingPrototypes
    assert [o.flags for o in HallucinatingPrototypes.cli_options] == [("--hallucinations",)]


def test_a_new_model_scores_as_a_prototypical_network(omniglot_small):
    """The hallucinator's last layer starts at zero: every hallucination is its seed, so the
    prototypes, and the scores, are Prototypical Networks'."""
    torch.manual_seed(0)
    method = HallucinatingPrototypes().eval()
    protonet = PrototypicalNetwork(backbone=method.backbone).eval()
    episode = _episode(omniglot_small)
    with torch.no_grad():
        torch.testing.assert_close(method(episode), protonet(episode))


def test_prototypes_average_real_and_hallucinated_embeddings_by_hand():
    """With the last layer set to output a constant residual v, each class's M hallucinations
    are z + v, so its prototype is z + M v / (1 + M)."""
    torch.manual_seed(0)
    method = HallucinatingPrototypes(hallucinations=3, features=4, noise=2, hidden=5).eval()
    residual = torch.tensor([1.0, -2.0, 0.5, 0.0])
    with torch.no_grad():
        method.hallucinator.net[-1].bias.copy_(residual)
    support_z = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])
    support_y = torch.tensor([[0, 1]])
    query_z = torch.tensor([[[0.5, 0.5, 0.5, 0.5]]])
    centres = support_z[0] + 3 * residual / 4
    expected = -((query_z[0, 0] - centres) ** 2).sum(dim=1)
    torch.testing.assert_close(method.scores(support_z, support_y, query_z, 2)[0, 0], expected)


def test_evaluation_noise_is_fixed_and_training_noise_is_fresh(omniglot_small):
    torch.manual_seed(0)
    method = HallucinatingPrototypes()
    with torch.no_grad():  # a hallucinator that uses its noise
        torch.nn.init.normal_(method.hallucinator.net[-1].weight, std=0.1)
    support_z = torch.randn(2, 5, 64)
    method.eval()
    first, again = method.hallucinate(support_z), method.hallucinate(support_z)
    assert first.shape == (2, 5, 4, 64) and torch.equal(first, again)
    method.train()
    assert not torch.equal(method.hallucinate(support_z), method.hallucinate(support_z))


def test_the_loss_trains_the_hallucinator(omniglot_small):
    torch.manual_seed(0)
    method = HallucinatingPrototypes()
    method.training_step(_episode(omniglot_small))
    assert method.hallucinator.net[-1].weight.grad.abs().sum() > 0


def test_checkpoint_keeps_the_test_noise(tmp_path, omniglot_small):
    torch.manual_seed(0)
    method = HallucinatingPrototypes(hallucinations=2).eval()
    with torch.no_grad():
        torch.nn.init.normal_(method.hallucinator.net[-1].weight, std=0.1)
    save_checkpoint(tmp_path, method, {})
    loaded, _ = load_checkpoint(tmp_path)
    episode = _episode(omniglot_small)
    assert torch.equal(loaded.test_noise, method.test_noise)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(episode), method(episode))


@pytest.mark.parametrize("kwargs, words", [({"hallucinations": -1}, "hallucinations must be"),
                                           ({"noise": 0}, "noise must be"),
                                           ({"hidden": 2.5}, "hidden must be")])
def test_bad_sizes_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        HallucinatingPrototypes(**kwargs)


def test_an_embedding_of_another_size_is_a_clear_error():
    method = HallucinatingPrototypes(features=32)
    with pytest.raises(ValueError, match="built for 32-dimensional embeddings, but its backbone "
                                         "gives 64: build it with features=64"):
        method.hallucinate(torch.randn(1, 5, 64))
