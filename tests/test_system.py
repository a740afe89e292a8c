"""The process-wide settings of fslearn._system: the hardware description and keeping freed
memory for reuse."""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest

from fslearn._system import describe_hardware


def test_hardware_description_names_the_threads():
    assert describe_hardware("cpu").endswith(("1 thread", "threads"))


#: run in a fresh interpreter (the test suite's own allocations would set glibc's state): the
#: page faults of each of 10 allocations of a 64 MiB block, each freed before the next, as a
#: training step's activations are allocated again at every step
_REALLOCATE = """
import resource, sys, torch
from fslearn._system import keep_freed_memory
if sys.argv[1] == "keep" and not keep_freed_memory():
    sys.exit(3)
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(16 * 2**20)  # 64 MiB, every page touched
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    assert float(block[-1]) == 1.0
    del block
print(*faults)
"""


def _steady_faults(setting: str) -> float:
    """The median page faults of the allocations after the first two (glibc serves the first
    two blocks of a new size from new memory either way; later ones show the steady state)."""
    done = subprocess.run([sys.executable, "-c", _REALLOCATE, setting], capture_output=True,
                          text=True, timeout=120)
    if done.returncode == 3:
        pytest.skip("not glibc: keep_freed_memory does nothing here")
    assert done.returncode == 0, done.stderr
    return statistics.median(int(n) for n in done.stdout.split()[2:])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_kept_memory_is_reused_without_page_faults():
    """After keep_freed_memory, a freed 64 MiB block serves the next allocation of its size
    without faulting its pages in again; with glibc's defaults every such block is a fresh mmap
    whose 16,384 pages of 4 KiB are all faulted in (the control: what the setting changes)."""
    kept = _steady_faults("keep")
    default = _steady_faults("default")
    assert kept < 1000, kept
    assert default > 10_000, default
