"""The machine a figure was measured on, in words, for checkpoint records and benchmarks; and
how the process keeps the memory it frees."""

from __future__ import annotations

import ctypes
import platform
import sys
from pathlib import Path

import torch

__all__ = ["describe_hardware", "keep_freed_memory"]

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: free memory at the top of the heap that glibc may keep before giving it back (1 GiB)
_TRIM_THRESHOLD = 1 << 30


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


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep the memory the process frees, for the next allocation.

    By default glibc serves every block above its mmap threshold (128 KiB to 32 MiB) with a
    fresh ``mmap`` and unmaps it when freed, and trims the top of its heap, so each new
    activation of a training step (15 to 72 MB for a Conv4 on 28x28 Omniglot) is faulted in
    again, page by page: a third of a ProtoNet step's CPU time and a fifth of MAML's in a fresh
    process on the course's machine (``benchmarks/PROFILE.md``). With mmap off
    (``M_MMAP_MAX = 0``) and a trim threshold of 1 GiB, freed blocks are reused instead; the
    process's resident memory then stays near its peak rather than shrinking between steps.
    Numbers are unchanged: only where the memory comes from.

    What ``fslearn``'s command line calls first. Returns True where it applied (Linux with
    glibc); elsewhere (macOS, Windows, musl) it does nothing and returns False.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc's, in the running process
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
