"""Attributions of a metric method's decision: integrated gradients and occlusion against a hand
computation on a Prototypical Network with a linear embedding, and completeness on the shipped
network."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("captum", reason="Captum is not installed: pip install "
                    "'fslearn[interpret]' (tools/setup.sh installs it, so CI runs this test)")

from test_federated import tiny_protonet

from fslearn.checkpoints import load_checkpoint
from fslearn.data.episodes import Episode, EpisodeSampler
from fslearn.interpret import query_attributions, support_attributions


def _episode() -> Episode:
    torch.manual_seed(3)
    support = torch.rand(1, 2, 1, 2, 2)  # 2-way 1-shot, 2x2 images
    query = torch.rand(1, 2, 1, 2, 2)
    labels = torch.tensor([[0, 1]])
    return Episode(support, labels, query, labels.clone(), torch.tensor([[0, 1]]), 2)


def _score(weight: torch.Tensor, bias: torch.Tensor, q: torch.Tensor, s: torch.Tensor
           ) -> torch.Tensor:
    """-||W q + b - (W s + b)||^2: the score of a 1-shot class whose prototype is s's."""
    return -((weight @ q.flatten() + bias) - (weight @ s.flatten() + bias)).pow(2).sum()


def test_integrated_gradients_of_a_query_by_hand() -> None:
    """The score is quadratic in x, so the integrand is linear along the path and the
    Gauss-Legendre integral is exact: IG = x * grad s(x / 2), with grad s(q) = -2 W^T (W q + b
    - c)."""
    model, episode = tiny_protonet(), _episode()
    weight, bias = model.backbone[1].weight.detach(), model.backbone[1].bias.detach()
    x, target = episode.query_x[0, 1], 0  # explain the score of the other class too
    prototype = weight @ episode.support_x[0, target].flatten() + bias
    gradient = -2 * weight.T @ (weight @ (x.flatten() / 2) + bias - prototype)
    found = query_attributions(model, episode, 1, target=target, n_steps=4)
    torch.testing.assert_close(found.map.flatten(), x.flatten() * gradient, atol=1e-5, rtol=0)
    expected_score = _score(weight, bias, x, episode.support_x[0, target])
    assert found.score == pytest.approx(float(expected_score), abs=1e-5)
    # completeness: the attributions add up to s(x) - s(blank)
    assert found.map.sum() == pytest.approx(found.score - found.baseline_score, abs=1e-5)
    assert abs(found.delta) < 1e-5


def test_occlusion_of_single_pixels_by_hand() -> None:
    model, episode = tiny_protonet(), _episode()
    weight, bias = model.backbone[1].weight.detach(), model.backbone[1].bias.detach()
    x = episode.query_x[0, 0]
    found = query_attributions(model, episode, 0, how="occlusion", window=1, stride=1)
    scores = model(episode)[0, 0]
    assert found.target == int(scores.argmax())  # default: the class it is assigned to
    s = episode.support_x[0, found.target]
    for pixel in range(4):
        blanked = x.flatten().clone()
        blanked[pixel] = 0
        expected = _score(weight, bias, x, s) - _score(weight, bias, blanked, s)
        assert float(found.map.flatten()[pixel]) == pytest.approx(float(expected), abs=1e-5)
    assert found.delta is None


def test_integrated_gradients_of_a_support_image_by_hand() -> None:
    """s(support) = -||W (q - support)||^2: IG = support * 2 W^T W (q - support / 2)."""
    model, episode = tiny_protonet(), _episode()
    weight = model.backbone[1].weight.detach()
    q, s = episode.query_x[0, 0].flatten(), episode.support_x[0, 1].flatten()
    found = support_attributions(model, episode, 1, 0, target=1, n_steps=4)
    expected = s * (2 * weight.T @ weight @ (q - s / 2))
    torch.testing.assert_close(found.map.flatten(), expected, atol=1e-5, rtol=0)


def test_shipped_protonet_attributions_are_complete(omniglot_test) -> None:
    method, _ = load_checkpoint("protonet-omniglot")
    method.train()  # attributions run in eval mode and give the mode back
    episode = EpisodeSampler(omniglot_test, 5, 1, 1, seed=0).episode(0)
    for query in range(3):
        found = query_attributions(method, episode, query, n_steps=256)
        assert found.map.shape == (1, 28, 28)
        # the integral of a ReLU network's piecewise-constant gradient by 256 Gauss-Legendre
        # points: within 2% of s(x) - s(blank) (at most 0.8% over 20 queries measured; 64
        # points miss by up to 4%)
        assert abs(found.delta) < 0.02 * abs(found.score - found.baseline_score)
    assert method.training
    assert found.target == int(method.eval()(episode)[0, 2].argmax())
    occluded = query_attributions(method, episode, 2, how="occlusion", window=4, stride=2)
    assert occluded.map.shape == (1, 28, 28) and occluded.target == found.target


def test_bad_arguments_are_one_line() -> None:
    model, episode = tiny_protonet(), _episode()
    with pytest.raises(ValueError, match="target 5 is not a class of the episode"):
        query_attributions(model, episode, 0, target=5)
    with pytest.raises(ValueError, match="task 1 is not in the episode"):
        query_attributions(model, episode, 0, task=1)
    with pytest.raises(ValueError, match="how must be"):
        query_attributions(model, episode, 0, how="saliency")  # type: ignore[arg-type]
