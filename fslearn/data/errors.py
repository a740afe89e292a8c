"""Errors about data on disk, with messages that say what was wrong and what to do."""

from __future__ import annotations

__all__ = ["DataError", "one_line"]


class DataError(ValueError):
    """Data on disk is damaged or not what was expected: a truncated or corrupt archive, an image
    that cannot be decoded, an archive of the wrong set, a data root that is not a folder.

    The message is one line that names the file and says what to do; the command line prints it
    and exits with status 2.
    """


def one_line(error: BaseException) -> str:
    """An exception's text on one line (whitespace runs collapsed), for messages that the
    command line prints as a single line; the exception's type name if it has no text."""
    return " ".join(str(error).split()) or type(error).__name__
