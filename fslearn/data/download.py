"""Checksummed, atomic downloads.

A download is streamed into a temporary file beside its destination and renamed into place only
once its size and checksum are right, so an interrupted or corrupted download never leaves a file
that a later run could mistake for the real one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from fslearn._files import readable_by_others

__all__ = [
    "ChecksumError",
    "DownloadError",
    "RemoteFile",
    "download_file",
    "file_digest",
    "file_digests",
]

_CHUNK = 1 << 16


class DownloadError(OSError):
    """A file could not be downloaded (offline, server error, interrupted transfer)."""


class ChecksumError(DownloadError):
    """A downloaded file did not match its published checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """A file on the web and the checksum its publisher gives for it.

    Attributes:
        url: where to fetch it.
        checksum: ``"<algorithm>:<hex digest>"``, e.g. ``"md5:68d2..."``; any ``hashlib`` name.
    """

    url: str
    checksum: str

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    return file_digests(path, [algorithm])[algorithm]


def file_digests(path: Path, algorithms: Iterable[str]) -> dict[str, str]:
    """``algorithm -> hex digest`` of a file for several algorithms, in one pass over its bytes
    (checking a local archive against an MD5 and a SHA-256 costs one read, not two)."""
    digests = {algorithm: hashlib.new(algorithm) for algorithm in algorithms}
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            for digest in digests.values():
                digest.update(chunk)
    return {algorithm: digest.hexdigest() for algorithm, digest in digests.items()}


def download_file(
    remote: RemoteFile, destination: Path, *, timeout: float = 60.0, progress: bool = True
) -> Path:
    """Download ``remote`` to ``destination`` and check its checksum; all or nothing.

    Raises:
        DownloadError: the server could not be reached or the transfer broke off. Nothing is
            left at ``destination``.
        ChecksumError: the bytes arrived but do not match ``remote.checksum``. Nothing is left.
    """
    algorithm, _, expected = remote.checksum.partition(":")
    if not expected or algorithm not in hashlib.algorithms_available:
        raise ValueError(f"checksum must look like 'md5:<hex>' or 'sha256:<hex>', got "
                         f"{remote.checksum!r}")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".part", delete=False
    )
    partial = Path(handle.name)
    try:
        with handle:
            digest = hashlib.new(algorithm)
            received, expected_size = _stream(remote.url, handle, digest, timeout, progress)
        if expected_size is not None and received != expected_size:
            raise DownloadError(
                f"The download of {remote.url} broke off after {received} of {expected_size} "
                f"bytes. Nothing was saved; run the command again to retry."
            )
        actual = digest.hexdigest()
        if actual != expected.lower():
            raise ChecksumError(
                f"{remote.url} arrived ({received} bytes) but its {algorithm} checksum is "
                f"{actual}, not the published {expected}. The file was discarded. Retry; if it "
                f"persists, the server's copy changed: download it by hand and place it at "
                f"{destination}."
            )
        readable_by_others(partial)
        os.replace(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return destination


def _stream(
    url: str, sink, digest, timeout: float, progress: bool
) -> tuple[int, int | None]:
    """Copy ``url`` into ``sink`` updating ``digest``; returns (bytes received, Content-Length)."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as error:
        raise DownloadError(f"The server answered {error.code} ({error.reason}) for {url}.") \
            from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"Could not reach {url} ({reason}).") from error
    received = 0
    with response:
        length = response.headers.get("Content-Length")
        expected_size = int(length) if length is not None else None
        bar = tqdm(total=expected_size, unit="B", unit_scale=True, disable=not progress,
                   desc=url.rsplit("/", 1)[-1], leave=False)
        with bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, ValueError) as error:
                    raise DownloadError(
                        f"The download of {url} broke off after {received} bytes ({error}). "
                        f"Nothing was saved; run the command again to retry."
                    ) from error
                if not chunk:
                    break
                sink.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    return received, expected_size
