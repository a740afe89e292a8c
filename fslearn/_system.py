"""The machine a figure was measured on, in words, for checkpoint records and benchmarks."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

__all__ = ["describe_hardware"]


def describe_hardware(device: torch.device | str = "cpu") -> str:
    """The GPU's name on CUDA; else the CPU model and the number of PyTorch threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} thread{'s' if threads != 1 else ''}"
