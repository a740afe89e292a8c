"""What the checkers show of values: inputs in full when small, shapes, numbers; and the
copies and comparisons of the tensors (and dicts of tensors) that cases pass."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["describe"]

#: Values shown in full when they have at most this many entries (else their shape).
_SHOW_MAX = 12


def _clone(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_clone_one(arg) for arg in args)


def _clone_one(arg: Any) -> Any:
    if isinstance(arg, Tensor):
        return arg.clone()
    if _is_tensors(arg):  # a dict of tensors (parameters by name)
        return {name: value.clone() for name, value in arg.items()}
    return arg


def _is_tensors(value: Any) -> bool:
    """A tensor, or a non-empty dict of tensors."""
    return isinstance(value, Tensor) or (isinstance(value, dict) and bool(value) and all(
        isinstance(item, Tensor) for item in value.values()))


def _identical(a: Tensor | dict[str, Tensor], b: Any) -> bool:
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(_identical(a[name], b[name]) for name in a))
    return (isinstance(b, Tensor) and a.shape == b.shape and a.dtype == b.dtype
            and bool(torch.equal(a, b.detach())))


def _as_float64(value: Any) -> Tensor:
    """``value`` (a number, tensor, array or sequence of numbers) as a float64 tensor."""
    if isinstance(value, Tensor):
        return value.detach().cpu().to(torch.float64)
    if isinstance(value, np.ndarray | np.generic):
        return torch.from_numpy(np.asarray(value, dtype=np.float64).copy())
    if isinstance(value, list | tuple):
        return torch.stack([_as_float64(item) for item in value]) if value else torch.zeros(0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {type(value).__name__}")
    return torch.tensor(float(value), dtype=torch.float64)


def _article(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} `{word}`"


def _shape(t: Tensor) -> str:
    return "[" + ", ".join(str(size) for size in t.shape) + "]"


def _shape_text(t: Tensor, axes: tuple[str, ...]) -> str:
    if t.ndim == 0:
        return "one number"
    named = f" ({', '.join(axes)})" if len(axes) == t.ndim else ""
    return f"shape {_shape(t)}{named}"


def _number(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x + 0.0:.4g}"  # + 0.0 turns -0.0 into 0.0


def _nested(values: Any) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_nested(v) for v in values) + "]"
    if isinstance(values, bool):
        return str(values)
    if isinstance(values, int):
        return str(values)
    return _number(float(values))


def _show_numbers(t: Tensor) -> str:
    return _nested(t.tolist())


def _show_value(value: Any) -> str:
    """A test input: in full when small, else its dtype and shape."""
    if isinstance(value, Tensor):
        if value.numel() <= _SHOW_MAX:
            return _nested(value.detach().tolist())
        return describe(value)
    if _is_tensors(value):
        return "{" + ", ".join(f"{name}: {_show_value(item)}" for name, item in value.items()) + "}"
    return repr(value)


def describe(value: Any) -> str:
    """``float32 tensor of shape [2, 6, 4]`` for a tensor, ``repr`` for anything else."""
    if isinstance(value, Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} tensor of shape {_shape(value)}"
    if _is_tensors(value):
        return "{" + ", ".join(f"{name}: {describe(item)}" for name, item in value.items()) + "}"
    return repr(value)
