"""Conv4 and Prototypical Networks against hand-computed cases and reference computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from fslearn.backbones import Conv4
from fslearn.data import Episode
from fslearn.methods import PrototypicalNetwork, build_method
from fslearn.methods.protonet import prototypes, squared_euclidean_distance


class Identity(nn.Module):
    def forward(self, x):
        return x.flatten(1)


def _episode(support_x, support_y, query_x, query_y, n_way) -> Episode:
    return Episode(support_x[None], support_y[None], query_x[None], query_y[None],
                   torch.arange(n_way)[None], n_way)


def test_protonet_logits_on_a_hand_computed_case():
    # class 0: (0,0), (2,0) -> prototype (1,0); class 1: (0,4), (0,2) -> prototype (0,3)
    support = torch.tensor([[0.0, 0.0], [0.0, 4.0], [2.0, 0.0], [0.0, 2.0]])
    support_y = torch.tensor([0, 1, 0, 1])  # interleaved on purpose: order must not matter
    query = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    method = PrototypicalNetwork(backbone=Identity())
    # the flattening identity backbone sees [batch, 2] vectors as already-embedded rows
    logits = method(_episode(support[:, :, None, None], support_y,
                             query[:, :, None, None], torch.tensor([0, 1]), 2))
    # (1,1): d0 = 0 + 1 = 1, d1 = 1 + 4 = 5; (0,3): d0 = 1 + 9 = 10, d1 = 0
    assert torch.allclose(logits, torch.tensor([[[-1.0, -5.0], [-10.0, 0.0]]]))


def test_prototypes_are_class_means_whatever_the_order():
    z = torch.randn(2, 12, 5)
    y = torch.stack([torch.randperm(12) % 3 for _ in range(2)])
    result = prototypes(z, y, 3)
    for t in range(2):
        for n in range(3):
            assert torch.allclose(result[t, n], z[t][y[t] == n].mean(0), atol=1e-6)


def test_squared_distance_matches_a_double_loop():
    q, c = torch.randn(2, 7, 4), torch.randn(2, 3, 4)
    d = squared_euclidean_distance(q, c)
    for t in range(2):
        for i in range(7):
            for n in range(3):
                assert torch.isclose(d[t, i, n], ((q[t, i] - c[t, n]) ** 2).sum(), atol=1e-5)


def test_euclidean_protonet_is_a_linear_classifier():
    # -||q - c||^2 = 2 c.q - ||c||^2 - ||q||^2; the last term is the same for every class, so
    # the softmax equals that of a linear layer with W = 2c, b = -||c||^2.
    q, c = torch.randn(1, 6, 8), torch.randn(1, 4, 8)
    via_distance = torch.softmax(-squared_euclidean_distance(q, c), -1)
    linear = q @ (2 * c).transpose(1, 2) - (c**2).sum(-1).unsqueeze(1)
    assert torch.allclose(via_distance, torch.softmax(linear, -1), atol=1e-5)


def test_gradients_match_finite_differences():
    z = torch.randn(1, 6, 3, dtype=torch.float64, requires_grad=True)
    q = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[0, 1, 2, 0, 1, 2]])
    assert torch.autograd.gradcheck(
        lambda z, q: squared_euclidean_distance(q, prototypes(z, y, 3)), (z, q))


def test_tasks_in_a_batch_are_independent():
    torch.manual_seed(0)
    method = PrototypicalNetwork().eval()
    support_x, query_x = torch.rand(3, 10, 1, 28, 28), torch.rand(3, 6, 1, 28, 28)
    support_y = torch.arange(5).repeat_interleave(2).expand(3, -1)
    query_y = torch.arange(5).repeat_interleave(2)[:6].expand(3, -1)
    batched = method(Episode(support_x, support_y, query_x, query_y,
                             torch.zeros(3, 5, dtype=torch.long), 5))
    for t in range(3):
        single = method(Episode(support_x[t : t + 1], support_y[t : t + 1], query_x[t : t + 1],
                                query_y[t : t + 1], torch.zeros(1, 5, dtype=torch.long), 5))
        assert torch.allclose(batched[t], single[0], atol=1e-4)


def test_loss_is_cross_entropy_of_the_logits():
    torch.manual_seed(0)
    method = PrototypicalNetwork()
    episode = Episode(torch.rand(1, 4, 1, 28, 28), torch.tensor([[0, 0, 1, 1]]),
                      torch.rand(1, 2, 1, 28, 28), torch.tensor([[1, 0]]),
                      torch.zeros(1, 2, dtype=torch.long), 2)
    loss, logits = method.loss(episode)
    expected = -(torch.log_softmax(logits[0], -1)[[0, 1], [1, 0]]).mean()
    assert torch.isclose(loss, expected, atol=1e-6)


@pytest.mark.parametrize("size,channels,dim", [(28, 1, 64), (84, 3, 1600)])
def test_conv4_output_size(size, channels, dim):
    assert Conv4(channels)(torch.rand(2, channels, size, size)).shape == (2, dim)


def test_conv4_block_equals_the_paper_order():
    # conv -> BN -> ReLU -> pool (the paper) and conv -> BN -> pool -> ReLU (ours) are equal.
    torch.manual_seed(0)
    ours = Conv4().features[0]
    paper = nn.Sequential(ours[0], ours[1], nn.ReLU(), nn.MaxPool2d(2))
    x = torch.randn(4, 1, 28, 28)
    ours.train(), paper.train()
    assert torch.allclose(ours(x), paper(x), atol=1e-6)


def test_conv4_works_with_functional_call():
    torch.manual_seed(0)
    net = Conv4().eval()
    x = torch.rand(3, 1, 28, 28)
    params = dict(net.named_parameters())
    buffers = dict(net.named_buffers())
    assert torch.allclose(functional_call(net, {**params, **buffers}, (x,)), net(x))
    shifted = {k: v + 0.1 for k, v in params.items()}
    other = Conv4().eval()
    other.load_state_dict({**shifted, **buffers})
    assert torch.allclose(functional_call(net, {**shifted, **buffers}, (x,)), other(x),
                          atol=1e-5)
    assert not torch.allclose(functional_call(net, {**shifted, **buffers}, (x,)), net(x))


def test_conv4_rejects_wrong_input():
    with pytest.raises(ValueError, match=r"\[batch, 1, H, W\].*\(3, 28, 28\)"):
        Conv4()(torch.rand(3, 28, 28))


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ValueError, match="protonet"):
        build_method("protonett")
