"""The backbones' memory layout: channels-last where batch norm uses running averages (faster on
a CPU), the default layout where it normalises with the batch's statistics, whose channels-last
CPU kernel is far less accurate in float32."""

from __future__ import annotations

import copy

import pytest
import torch

from fslearn.backbones import (
    Conv4,
    TaskBatchNorm2d,
    batch_statistics,
    channels_last,
    task_running_statistics,
)
from fslearn.methods.inner_loop import maml_network


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_last_gives_channels_last_strides_and_the_same_values(channels):
    x = torch.rand(4, channels, 6, 5)
    y = channels_last(x)
    assert torch.equal(y, x)
    assert y.stride()[1] == 1 and y.stride()[3] == channels  # C innermost, then W
    assert torch.nn.functional.conv2d(y, torch.rand(8, channels, 3, 3)).is_contiguous(
        memory_format=torch.channels_last)


def _first_maps(network: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    captured = []
    handle = network.features[0][0].register_forward_hook(lambda m, i, o: captured.append(o))
    network(x)
    handle.remove()
    return captured[0]


def test_running_averages_run_channels_last_and_match_the_default_layout():
    torch.manual_seed(0)
    network = Conv4()
    network(torch.rand(64, 1, 28, 28))  # running averages away from their initial values
    network.eval()
    x = torch.rand(50, 1, 28, 28)
    assert not batch_statistics(network)
    assert not _first_maps(network, x).is_contiguous()  # channels-last, not the default
    reference = copy.deepcopy(network)
    reference.channels_last = False
    with torch.no_grad():
        assert torch.allclose(network(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("which", ["conv4 in training mode", "MAML's network in evaluation"])
def test_batch_statistics_stay_in_the_default_layout_and_accurate(which):
    """Batch norm over 300 images of 28x28 with the batch's statistics: float32 within 1e-5 of
    float64 (with torch 2.13's channels-last kernel the embeddings are about 1e-3 off here)."""
    torch.manual_seed(0)
    network = Conv4() if which.startswith("conv4") else maml_network(5)[0].eval()
    x = (torch.rand(300, 1, 28, 28) > 0.1).float()  # white pages, a few dark pixels
    assert batch_statistics(network)
    assert _first_maps(network, x).is_contiguous()
    with torch.no_grad():
        single, double = network(x), copy.deepcopy(network).double()(x.double())
    assert (single.double() - double).abs().max() <= 1e-5 * double.abs().max()


def test_task_running_statistics_average_each_batch_in_then_normalise_with_them():
    """Within the block, each batch is normalised by its own statistics and averaged in, as
    torch's BatchNorm2d with momentum 0.1 does from mean 0 and variance 1 (computed here by
    hand); after stop_collecting the averages normalise every batch; after the block, nothing
    is kept."""
    torch.manual_seed(0)
    norm = TaskBatchNorm2d(3).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    batches = [torch.randn(4, 3, 2, 2, dtype=torch.float64) * (i + 1) + i for i in range(3)]
    mean, var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for x in batches:
        mean = 0.9 * mean + 0.1 * x.mean((0, 2, 3))
        var = 0.9 * var + 0.1 * x.var((0, 2, 3), unbiased=True)
    query = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    by_hand = ((query - mean[:, None, None]) / (var[:, None, None] + norm.eps).sqrt()
               * norm.weight[:, None, None] + norm.bias[:, None, None])
    with task_running_statistics(norm) as stop_collecting:
        for x in batches:
            torch.testing.assert_close(norm(x), TaskBatchNorm2d.forward(
                _without_running(norm), x), rtol=0, atol=1e-12)
        stop_collecting()
        torch.testing.assert_close(norm(query), by_hand, rtol=0, atol=1e-12)
        torch.testing.assert_close(norm.running.mean, mean, rtol=0, atol=1e-12)
    assert norm.running is None
    with (pytest.raises(ValueError, match="momentum must be in"),
          task_running_statistics(norm, momentum=0.0)):
        pass
    with (pytest.raises(ValueError, match="has no TaskBatchNorm2d"),
          task_running_statistics(torch.nn.Linear(2, 2))):
        pass


def _without_running(norm: TaskBatchNorm2d) -> TaskBatchNorm2d:
    """A copy of ``norm`` normalising with each batch's own statistics."""
    plain = copy.copy(norm)
    plain.running = None
    return plain
