"""Small file helpers shared by the modules that write atomically."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["readable_by_others"]


def readable_by_others(path: Path) -> None:
    """Give a file made by ``tempfile`` (always mode 0600) the usual permissions under the umask,
    before it is renamed into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
