"""Arithmetic precision of training and evaluation: float32, or bfloat16 where the hardware has it.

``"float32"`` (the default, and what every shipped checkpoint was trained with) computes in
float32 throughout. ``"bf16"`` runs the forward and backward passes under PyTorch's automatic
mixed precision (:func:`torch.autocast` with ``torch.bfloat16``): convolutions, linear layers and
matrix products compute in bfloat16 (8 bits of mantissa instead of 23, the same exponent range as
float32), while the weights, their gradients, the optimizer's state, losses and reductions stay in
float32. bfloat16 needs no loss scaling (unlike float16), because its range is float32's.

It is an option, never a silent choice: a run records its precision in every checkpoint it
saves, a resumed run must keep it, and a device without native bfloat16 arithmetic is refused
(emulated bfloat16 is slower than float32, so asking for it there is a mistake worth a message).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["PRECISIONS", "bf16_supported", "check_precision", "computing_in"]

#: the precisions :func:`computing_in` knows, the default first
PRECISIONS = ("float32", "bf16")


def bf16_supported(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CPU with AVX-512 BF16 or AMX
    instructions, or a CUDA device PyTorch says supports it (Ampere and later)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def check_precision(precision: str, device: torch.device | str) -> None:
    """Refuse, in one line, a precision that is unknown or that ``device`` cannot compute
    natively."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError(f"--precision bf16 needs native bfloat16 arithmetic, which this "
                         f"{torch.device(device).type} device lacks (a CPU needs AVX-512 BF16 or "
                         f"AMX); use --precision float32.")


@contextlib.contextmanager
def computing_in(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the body in ``precision`` on ``device`` (checked first by :func:`check_precision`).

    ``"float32"`` changes nothing; ``"bf16"`` enables :func:`torch.autocast` with bfloat16 for
    ``device``'s type, gradients included (autograd replays the forward pass's dtypes).
    """
    check_precision(precision, device)
    if precision == "float32":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        yield
