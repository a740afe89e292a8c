"""The Omniglot network of Finn et al.'s MAML code (``architecture="authors"``): its shapes,
TensorFlow's 'SAME' padding, batch norm without a scale, and an offset that only the outer
loop learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fslearn.backbones import OffsetBatchNorm2d, SamePadConv2d, StridedConv4
from fslearn.data import Episode
from fslearn.methods import ANIL, MAML, MetaSGD, Reptile
from fslearn.methods.inner_loop import maml_network


def test_shapes_on_omniglot_images():
    """28 -> 14 -> 7 -> 4 -> 2 with stride 2 and 'SAME' padding, then the mean of the 2x2 map:
    64 features whatever the image size, and n_way logits."""
    network = maml_network(5, architecture="authors")
    sides = []
    for block in network[0].features:
        block.register_forward_hook(lambda _m, _i, out: sides.append(tuple(out.shape[-2:])))
    x = torch.rand(3, 1, 28, 28)
    assert network[0](x).shape == (3, 64)
    assert sides == [(14, 14), (7, 7), (4, 4), (2, 2)]
    assert network(x).shape == (3, 5)
    assert maml_network(20, image_size=84, architecture="authors")(torch.rand(2, 1, 84, 84)
                                                                    ).shape == (2, 20)
    with pytest.raises(ValueError, match="architecture must be one of conv4, authors"):
        maml_network(5, architecture="resnet")


def test_same_padding_puts_the_odd_row_and_column_at_the_end():
    """TensorFlow pads 28 -> 14 (stride 2, 3x3) with no row above and one below, so the first
    output sees rows 0-2 and the last rows 26-27 and a zero row (PyTorch's padding=1 would put
    the zero row on top); 7 -> 4 pads one row on each side."""
    torch.manual_seed(0)
    conv = SamePadConv2d(1, 1).double()
    x = torch.rand(1, 1, 28, 28, dtype=torch.float64)
    w, b = conv.weight[0, 0], conv.bias[0]
    out = conv(x)
    assert out.shape == (1, 1, 14, 14)
    assert torch.allclose(out[0, 0, 0, 0], (x[0, 0, :3, :3] * w).sum() + b)
    assert torch.allclose(out[0, 0, -1, -1], (x[0, 0, 26:, 26:] * w[:2, :2]).sum() + b)
    small = torch.rand(1, 1, 7, 7, dtype=torch.float64)
    assert torch.allclose(conv(small), F.conv2d(small, conv.weight, conv.bias, 2, padding=1))


def test_batch_norm_has_no_scale_and_normalises_each_batch():
    norm = OffsetBatchNorm2d(4)
    assert [name for name, _ in norm.named_parameters()] == ["offset"]
    with torch.no_grad():
        norm.offset.copy_(torch.arange(4.0))
    out = norm(torch.randn(6, 4, 3, 3) * 5 + 2)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.arange(4.0), atol=1e-5)
    assert torch.allclose(out.var(dim=(0, 2, 3), unbiased=False), torch.ones(4), atol=1e-3)
    # the convolutions' weights and biases and the batch norms' offsets, no scale
    assert {name for name, _ in StridedConv4().named_parameters()} == {
        f"features.{block}.{part}" for block in range(4)
        for part in ("0.weight", "0.bias", "1.offset")}


@pytest.mark.parametrize("cls", [MAML, MetaSGD, ANIL])
def test_the_offsets_are_learned_by_the_outer_loop_only(cls):
    model = cls(n_way=3, image_size=8, hidden_channels=3, blocks=2, architecture="authors")
    offsets = {name for name, _ in model.network.named_parameters() if name.endswith("offset")}
    assert len(offsets) == 2 and not offsets & set(model.step_sizes())
    if cls is MetaSGD:  # no learned rate for what is never adapted
        assert len(model.learned_step_sizes) == len(model.step_sizes())
    support = torch.rand(1, 6, 1, 8, 8)
    labels = torch.arange(3).repeat_interleave(2)[None]
    episode = Episode(support, labels, torch.rand(1, 6, 1, 8, 8), labels,
                      torch.arange(3)[None], 3)
    model.training_step(episode)
    grads = dict(model.network.named_parameters())
    assert all(grads[name].grad is not None and grads[name].grad.abs().max() > 0
               for name in offsets)


def test_reptile_adapts_the_offsets_too_and_regression_refuses_the_network():
    model = Reptile(n_way=3, image_size=8, hidden_channels=3, blocks=2, architecture="authors")
    assert {name for name in model.step_sizes() if name.endswith("offset")}
    with pytest.raises(ValueError, match="leave --architecture out"):
        MAML(n_way=1, task="regression", hidden_channels=40, architecture="authors")
