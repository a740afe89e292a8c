"""Training on several processes or machines with PyTorch's own engine (``torchrun``).

``torchrun --standalone --nproc-per-node=N -m fslearn train METHOD ...`` starts N processes
and tells each its place in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``). :func:`world` reads it; without it the run is one process and
nothing here costs anything.

Every rank draws step ``i``'s *full* batch from the same deterministic sampler and keeps its
equal share (:meth:`World.shard`: tasks of an episode, images of a labelled mini-batch, pairs,
sequences), so the run is the same run at any world size. Each rank's training step leaves the
mean gradient over its share; :meth:`World.average_gradients` all-reduces them once per step
and divides by the world size, which over equal shares is the mean over the whole batch.

Why no :class:`torch.nn.parallel.DistributedDataParallel` wrapper: its reducer fires on the
gradient hooks of ``.backward()`` only, and its docstring says it "doesn't work with
torch.autograd.grad()"; ``backward(create_graph=True)`` through it raises (pytorch/pytorch
#63812) and ``torch.func`` transforms fail on wrapped models (#102197, #130932). MAML's inner
loops use both. So, as learn2learn's and Lightning's meta-learning examples do, the model stays
unwrapped, its parameters are broadcast from rank 0 once, and the gradients are averaged by
hand: one all-reduce of one flat buffer per step.

Batch norm over a step's whole batch (a labelled mini-batch, or every task of an episode
embedded in one pass) would see only a rank's share: such layers become :class:`SyncedBatchNorm`
on several processes (a method that normalises each task alone declares
``batch_statistics = "task"`` and is left as it is). Randomness drawn inside a training step
(dropout masks) comes from each rank's copy of the same generator, so it is drawn as often on
every rank and a resumed run is exact, but the masks differ from one process's: such a run is
an equally valid run, not bit for bit the one-process run. Rank 0 alone validates, writes
checkpoints and shows the progress bar; the others wait at a barrier after each save.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["SyncedBatchNorm", "World", "process_count", "sync_batch_norm", "world"]


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints and logs and shows the progress bar."""
        return self.rank == 0

    def device(self, requested: torch.device | str | None) -> torch.device:
        """The device of this rank: one GPU per local rank on CUDA."""
        if requested is None:
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(requested)
        if device.type == "cuda" and self.size > 1 and device.index is None:
            device = torch.device("cuda", self.local_rank)
        return device

    def shard(self, batch: Any) -> Any:
        """This rank's share of a training batch: the same slice of every tensor field along
        its first dimension (tasks, images, pairs, sequences), the rest as it is. ``batch`` is
        a dataclass whose tensor fields all count one unit of work along dimension 0."""
        if self.size == 1:
            return batch
        tensors = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)
                   if isinstance(getattr(batch, f.name), Tensor)}
        count = next(iter(tensors.values())).shape[0]
        if count % self.size:
            raise ValueError(f"A training step of {count} tasks/images/sequences cannot be "
                             f"split over {self.size} processes: make batch_size (--tasks, "
                             f"--batch) a multiple of {self.size}.")
        share = count // self.size
        return dataclasses.replace(batch, **{
            name: value[self.rank * share:(self.rank + 1) * share]
            for name, value in tensors.items()})

    def broadcast(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (a fresh or resumed start)."""
        if self.size == 1:
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def average_gradients(self, parameters: list[nn.Parameter],
                          extra: Tensor | None = None) -> Tensor | None:
        """Average every parameter's ``.grad`` over the ranks with ONE all-reduce of a flat
        buffer; ``extra`` (a few numbers such as the loss) rides along and comes back averaged.

        A ``.grad`` that is None is sent as zeros, never skipped (skipping would pair
        different tensors across ranks), and stays None only where it was None on every rank
        (a flag per parameter travels in the buffer), so the optimizer sees what one process
        would have seen.
        """
        if self.size == 1:
            return extra
        trainable = [p for p in parameters if p.requires_grad]
        dtype = next((p.grad.dtype for p in trainable if p.grad is not None), torch.float32)
        device = trainable[0].device
        pieces = [(p.grad if p.grad is not None else torch.zeros_like(p, dtype=dtype))
                  .reshape(-1).to(dtype) for p in trainable]
        flags = torch.tensor([p.grad is not None for p in trainable], dtype=dtype,
                             device=device)
        extras = extra.to(device, dtype) if extra is not None else torch.zeros(0, dtype=dtype,
                                                                                device=device)
        buffer = torch.cat([*pieces, flags, extras])
        dist.all_reduce(buffer)
        buffer /= self.size
        flags_back = buffer[sum(piece.numel() for piece in pieces):][:len(trainable)]
        offset = 0
        for index, p in enumerate(trainable):
            n = p.numel()
            if flags_back[index] > 0:
                p.grad = buffer[offset:offset + n].view_as(p).to(p.dtype).clone()
            offset += n
        return buffer[offset + len(trainable):].clone() if extra is not None else None

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group (at the end of a command; tests clean up this way too)."""
        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def world() -> World:
    """The world torchrun describes in the environment, joining its process group (gloo on
    CPU, NCCL on CUDA) on first use; one process without it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, rank=rank, world_size=size)
    return World(rank, size, local_rank, dist.get_backend())


def process_count() -> int:
    """How many processes train together: the size of the process group once one is joined,
    else 1. Unlike :func:`world`, it joins nothing, so a method can ask it at any time."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class _SumOverRanks(torch.autograd.Function):
    """``sum_r x_r`` on every rank, differentiable: the gradient of a sum that every rank uses
    is the sum of their gradients (``torch.distributed.nn.functional.all_reduce`` does the
    same, and is deprecated)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the whole batch, summed over the
    ranks with a differentiable all-reduce (:class:`torch.nn.SyncBatchNorm` does not run on
    CPU). Mean and variance from the sums of ``x`` and ``x**2``, in float64 for accuracy.
    Each rank differentiates its own share's loss; the all-reduce in the backward pass brings
    every rank's part of the statistics' gradient, so the averaged gradients are the one
    process's."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"batch norm expects [batch, C, ...], got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:  # x: [batch, C, ...]
        if not self.training:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        x64 = x.double()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        sums = _SumOverRanks.apply(torch.cat([x64.sum(dims), (x64 * x64).sum(dims), count]))
        channels = x.shape[1]
        n = sums[-1]
        mean = sums[:channels] / n
        var = (sums[channels:2 * channels] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
                self.num_batches_tracked.add_(1)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x64 - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        y = y.to(x.dtype)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def sync_batch_norm(module: nn.Module) -> nn.Module:
    """Turn every plain :class:`~torch.nn.BatchNorm1d`/``2d`` of ``module`` into a
    :class:`SyncedBatchNorm` in place (same parameters and buffers, so checkpoints are
    unchanged)."""
    for child in module.modules():
        if type(child) in (nn.BatchNorm1d, nn.BatchNorm2d):
            child.__class__ = SyncedBatchNorm
    return module
