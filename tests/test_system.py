"""The process-wide settings of fslearn._system: the hardware description and keeping freed
memory for reuse."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from fslearn._system import describe_hardware, keep_freed_memory


def test_hardware_description_names_the_threads():
    assert describe_hardware("cpu").endswith(("1 thread", "threads"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_kept_memory_is_reused_without_page_faults():
    """After keep_freed_memory, a freed 64 MiB block serves the next allocation of its size
    without faulting its pages in again (a fresh mmap would fault all 16,384 pages of 4 KiB)."""
    if not keep_freed_memory():
        pytest.skip("not glibc: keep_freed_memory does nothing here")
    block = torch.ones(16 * 2**20)  # 64 MiB, every page touched
    del block
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(16 * 2**20)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert float(block[-1]) == 1.0
    assert faults < 1000, faults
