"""Feature extractors shared by the methods."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Conv4", "OffsetBatchNorm2d", "SamePadConv2d", "StridedConv4", "TaskBatchNorm2d",
           "TaskRunningStatistics", "batch_statistics", "channels_last", "conv_block",
           "task_running_statistics"]


def channels_last(x: Tensor) -> Tensor:
    """``x: [batch, C, H, W]`` laid out channels-last in memory, one channel included.

    With one channel (Omniglot), the channels-last and the default layouts hold the same
    numbers in the same order, ``x.contiguous(memory_format=torch.channels_last)`` changes
    nothing, and the convolution, seeing a default-layout input and (one input channel again)
    weights, computes every map of the network in the default layout. The same memory viewed as
    ``[batch, H, W, 1]`` and permuted to ``[batch, 1, H, W]`` has channels-last strides, so every
    later map is channels-last, where max-pooling and batch norm are several times faster on a
    CPU.

    Use it only where batch norm normalises with stored running statistics: with the statistics
    of the batch, torch 2.13's channels-last batch norm on a CPU sums the values of a channel in
    float32 one after another, so its outputs and gradients are off by about 1e-4 to 1e-3
    relative on a Conv4's first maps (1e-7 in the default layout; ``benchmarks/PROFILE.md``),
    enough to change some of MAML's test predictions.
    """
    if x.shape[1] == 1:
        batch, _, height, width = x.shape
        return x.contiguous().view(batch, height, width, 1).permute(0, 3, 1, 2)
    return x.contiguous(memory_format=torch.channels_last)


def batch_statistics(module: nn.Module) -> bool:
    """Whether some batch norm inside ``module`` normalises with the statistics of the batch:
    in training mode, without running averages, or always (:class:`TaskBatchNorm2d`,
    :class:`OffsetBatchNorm2d`)."""
    return any(isinstance(m, TaskBatchNorm2d | OffsetBatchNorm2d)
               or (isinstance(m, nn.modules.batchnorm._BatchNorm)
                   and (m.training or not m.track_running_stats))
               for m in module.modules())


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU, 2x2 max-pool: one block of the Conv4 backbone.

    The max-pool runs before the ReLU. The two commute exactly (ReLU is monotone, so
    ``max(relu(a), relu(b)) == relu(max(a, b))``), and the ReLU then touches a quarter of the
    values: about 10% faster training on a CPU, same function.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.MaxPool2d(2),
        nn.ReLU(),
    )


class Conv4(nn.Module):
    """The four-block CNN of Vinyals et al. (2016), used by most few-shot papers.

    Each block halves the spatial size, so a 28x28 Omniglot image becomes a 64-dimensional
    vector (``64 * 1 * 1``) and an 84x84 image a 1600-dimensional one (``64 * 5 * 5``).

    The module holds no state outside its parameters and buffers, so it works with
    ``torch.func.functional_call`` (what MAML uses to run it with adapted weights).

    Args:
        in_channels: 1 for Omniglot, 3 for colour images.
        hidden_channels: filters in every block (64 in the paper).
        blocks: number of conv blocks (4 in the paper).

    Attributes:
        channels_last: run the convolutions on channels-last tensors (faster on a CPU). Set it
            to False under ``torch.func.vmap``, which cannot convert memory formats.
    """

    def __init__(self, in_channels: int = 1, hidden_channels: int = 64, blocks: int = 4) -> None:
        super().__init__()
        channels = [in_channels] + [hidden_channels] * blocks
        self.features = nn.Sequential(
            *(conv_block(c_in, c_out) for c_in, c_out in itertools.pairwise(channels))
        )
        self.in_channels = in_channels
        self.min_size = 2**blocks
        self.channels_last = True

    def forward(self, x: Tensor) -> Tensor:
        """``x: [batch, C, H, W]`` -> ``[batch, D]`` flattened features."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv4 expects images [batch, {self.in_channels}, H, W], got shape "
                f"{tuple(x.shape)}"
            )
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"Conv4 with {len(self.features)} blocks halves the image {len(self.features)} "
                f"times, so it needs images of at least {self.min_size}x{self.min_size} pixels; "
                f"got {x.shape[-2]}x{x.shape[-1]}. Use a larger image size."
            )
        # channels-last lets the CPU convolution kernels run 1.5-3x faster (measured on AVX2);
        # with one channel only where batch norm uses running averages (see channels_last)
        if self.channels_last and (x.shape[1] > 1 or not batch_statistics(self.features)):
            x = channels_last(x)
        return self.features(x).flatten(1)


class TaskBatchNorm2d(nn.Module):
    """Batch norm with the statistics of the current batch, always, and no running averages.

    What MAML's reference code does at training and at test time alike (transductive batch
    norm): each task's images are normalised by their own mean and variance. It keeps no state
    outside its parameters, so it can be run with ``torch.func.vmap`` over tasks. (Within
    :func:`task_running_statistics` it keeps one task's running averages instead, on the loop
    engine only.)

    Under ``vmap`` the affine part is applied outside ``F.batch_norm``:
    ``F.batch_norm(x, None, None, weight, bias, training=True)`` gives wrong second-order
    gradients there in torch 2.13 (measured; ``shared/notes/repro_vmap_batchnorm.py``), while
    the normalisation alone followed by ``* weight + bias`` gives the right ones. Outside
    ``vmap`` (:attr:`fuse_affine`, which the vmap engine turns off) the affine part goes into
    ``F.batch_norm``, the same function in two passes over the maps fewer: about 1.1 times
    faster MAML steps on a CPU (``benchmarks/speed.py``).

    Attributes:
        fuse_affine: apply the weight and bias inside ``F.batch_norm`` (not under ``vmap``).
        running: one task's running averages, while :func:`task_running_statistics` is active
            (None: the batch's own statistics).
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.fuse_affine = True
        self.running: TaskRunningStatistics | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.running is not None:
            return self.running.normalise(x, self.weight, self.bias, self.eps)
        if self.fuse_affine:
            return F.batch_norm(x, None, None, self.weight, self.bias, training=True,
                                eps=self.eps)
        normalised = F.batch_norm(x, None, None, training=True, eps=self.eps)
        return normalised * self.weight[:, None, None] + self.bias[:, None, None]


@dataclass
class TaskRunningStatistics:
    """One task's running averages of a :class:`TaskBatchNorm2d`'s statistics, kept as
    :class:`torch.nn.BatchNorm2d` keeps them: from mean 0 and variance 1, each batch's mean and
    unbiased variance averaged in with weight ``momentum``.

    Attributes:
        mean, var: ``[channels]`` the averages so far.
        momentum: the weight of each new batch.
        collecting: True: each batch is normalised by its own statistics, which update the
            averages; False: every batch is normalised by the averages, which stay as they are.
    """

    mean: Tensor
    var: Tensor
    momentum: float
    collecting: bool = True

    def normalise(self, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        """``x: [batch, C, H, W]`` normalised, scaled by ``weight`` and shifted by ``bias``."""
        return F.batch_norm(x, self.mean, self.var, weight, bias, training=self.collecting,
                            momentum=self.momentum, eps=eps)


@contextmanager
def task_running_statistics(network: nn.Module, momentum: float = 0.1
                            ) -> Iterator[Callable[[], None]]:
    """Within the ``with`` block, every :class:`TaskBatchNorm2d` of ``network`` keeps running
    averages of the batches it normalises (fresh ones: mean 0, variance 1); the function it
    yields stops the collecting, after which those averages normalise every batch. Leaving the
    block drops them: nothing is kept for the next task.

    What Ravi and Larochelle's code does at meta-test: the support mini-batches feed the running
    averages (reset for every task) and the queries are scored with them, each on its own.

    Raises:
        ValueError: ``network`` has no :class:`TaskBatchNorm2d`, or ``momentum`` is not in
            (0, 1].
    """
    if not 0 < momentum <= 1:
        raise ValueError(f"momentum must be in (0, 1], got {momentum!r}")
    layers = [m for m in network.modules() if isinstance(m, TaskBatchNorm2d)]
    if not layers:
        raise ValueError(f"{type(network).__name__} has no TaskBatchNorm2d to keep running "
                         "averages in")
    for layer in layers:
        layer.running = TaskRunningStatistics(layer.weight.detach().new_zeros(layer.weight.shape),
                                              layer.weight.detach().new_ones(layer.weight.shape),
                                              momentum)

    def stop_collecting() -> None:
        for layer in layers:
            assert layer.running is not None
            layer.running.collecting = False

    try:
        yield stop_collecting
    finally:
        for layer in layers:
            layer.running = None


class OffsetBatchNorm2d(nn.Module):
    """Batch norm of the current batch with a learned offset and no learned scale: what
    ``tf.contrib.layers.batch_norm`` does with its defaults (``center=True, scale=False``,
    epsilon 1e-3), as Finn et al.'s MAML code uses it for Omniglot.

    Its ``offset`` is named in :attr:`meta_only`: in that code it is a variable of the layer,
    not one of the weights the inner loop adapts, so only the outer loop learns it.

    Attributes:
        fuse_affine: as :class:`TaskBatchNorm2d`'s.
    """

    #: parameters that the inner loop of a MAML-like method leaves as they are
    meta_only = ("offset",)

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.fuse_affine = True

    def forward(self, x: Tensor) -> Tensor:
        # under vmap the offset is added outside F.batch_norm, for the reason TaskBatchNorm2d
        # gives; elsewhere inside it (fuse_affine), which is faster
        if self.fuse_affine:
            return F.batch_norm(x, None, None, None, self.offset, training=True, eps=self.eps)
        normalised = F.batch_norm(x, None, None, training=True, eps=self.eps)
        return normalised + self.offset[:, None, None]


class SamePadConv2d(nn.Conv2d):
    """A convolution with TensorFlow's ``'SAME'`` padding: the output has ``ceil(H / stride)``
    rows, and where the padding is odd the extra row and column go at the bottom and right
    (PyTorch's ``padding=1`` pads both sides equally, which shifts a strided grid)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 2) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, kernel, stride in zip(reversed(x.shape[-2:]), reversed(self.kernel_size),
                                        reversed(self.stride), strict=True):
            total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]  # F.pad: (left, right, top, bottom)
        return super().forward(F.pad(x, pads))


class StridedConv4(nn.Module):
    """The Omniglot network of Finn et al.'s MAML code (``max_pool=False``): ``blocks`` blocks
    of a 3x3 convolution of stride 2 with ``'SAME'`` padding, :class:`OffsetBatchNorm2d` and a
    ReLU, then the mean over the remaining map. A 28x28 image becomes 14, 7, 4, then 2x2
    maps, and a ``hidden_channels`` vector whatever the image size.

    The weights start as the authors' do: Xavier-uniform convolutions, zero biases.

    Attributes:
        channels_last: as :class:`Conv4`'s.
    """

    def __init__(self, in_channels: int = 1, hidden_channels: int = 64, blocks: int = 4) -> None:
        super().__init__()
        channels = [in_channels] + [hidden_channels] * blocks
        self.features = nn.Sequential(*(
            nn.Sequential(SamePadConv2d(c_in, c_out), OffsetBatchNorm2d(c_out), nn.ReLU())
            for c_in, c_out in itertools.pairwise(channels)))
        for block in self.features:
            nn.init.xavier_uniform_(block[0].weight)
            nn.init.zeros_(block[0].bias)
        self.in_channels = in_channels
        self.channels_last = True

    def forward(self, x: Tensor) -> Tensor:
        """``x: [batch, C, H, W]`` -> ``[batch, hidden_channels]``, the spatial mean."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"StridedConv4 expects images [batch, {self.in_channels}, H, W], "
                             f"got shape {tuple(x.shape)}")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.features(x).mean(dim=(-2, -1))
