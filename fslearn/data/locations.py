"""Where the datasets and the processed cache live: the data root (``root=``,
``$FSLEARN_DATA`` or a per-user folder, checked before anything looks inside it) and the cache
folder (``cache=``, ``$FSLEARN_CACHE`` or a per-user folder)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["DataNotFoundError", "cache_dir", "data_root"]


class DataNotFoundError(FileNotFoundError):
    """The dataset is neither on disk nor downloadable; the message says where to put it."""


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where datasets live: ``root`` if given, else ``$FSLEARN_DATA``, else a per-user folder."""
    return _data_root_and_origin(root)[0]


def _data_root_and_origin(root: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The data root and where that value came from, so an error about it can say what to fix."""
    if root is not None:
        return Path(root).expanduser(), "the root= argument or the --data-root option"
    if env := os.environ.get("FSLEARN_DATA"):
        return Path(env).expanduser(), "the FSLEARN_DATA environment variable"
    return Path(platformdirs.user_cache_dir("fslearn")) / "data", "the default data folder"


def _check_data_root(root: Path, origin: str) -> None:
    """Fail clearly on a data root that is a file or cannot be read, before anything looks inside
    it (which would raise a bare NotADirectoryError or PermissionError)."""
    if root.exists() and not root.is_dir():
        raise DataNotFoundError(
            f"The data root {root}, taken from {origin}, is a file, not a folder: point it at the "
            f"folder that holds images_background.zip and images_evaluation.zip (or an omniglot/ "
            f"folder with them)."
        )
    for folder in (root, root / "omniglot"):  # root first: without access, root/omniglot can't
        if folder.is_dir() and not os.access(folder, os.R_OK | os.X_OK):  # even be looked at
            raise DataNotFoundError(
                f"The data folder {folder} cannot be read (the data root comes from {origin}): "
                f"give your user read and execute permission on it (chmod u+rx {folder}) or "
                f"point the data root at a readable copy."
            )


def cache_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where processed arrays are cached: ``directory``, ``$FSLEARN_CACHE`` or a per-user folder.

    Kept apart from the data root because that may be read-only (a shared copy of the data).
    """
    if directory is not None:
        return Path(directory).expanduser()
    if env := os.environ.get("FSLEARN_CACHE"):
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("fslearn")) / "processed"
