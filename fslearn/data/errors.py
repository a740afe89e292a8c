"""Errors about data on disk, with messages that say what was wrong and what to do."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Data on disk is damaged or not what was expected: a truncated or corrupt archive, an image
    that cannot be decoded, an archive of the wrong set, a data root that is not a folder.

    The message is one line that names the file and says what to do; the command line prints it
    and exits with status 2.
    """
