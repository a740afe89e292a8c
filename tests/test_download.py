"""Downloads against a local HTTP server: checksums, interruptions, offline messages."""

from __future__ import annotations

import hashlib
import http.server
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from fslearn.data import DataNotFoundError, load_omniglot
from fslearn.data import omniglot as omniglot_module
from fslearn.data.download import ChecksumError, DownloadError, RemoteFile, download_file

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB


class _Handler(http.server.BaseHTTPRequestHandler):
    files: typing.ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        if self.path == "/truncated":
            # Promise the whole payload, send half, hang up: an interrupted transfer.
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.connection.close()
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_download_writes_the_file_when_the_checksum_matches(server, tmp_path):
    _Handler.files["/good.bin"] = PAYLOAD
    target = download_file(RemoteFile(f"{server}/good.bin", _sha256(PAYLOAD)),
                           tmp_path / "good.bin", progress=False)
    assert target.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.bin"]
    assert target.stat().st_mode & 0o044, "a downloaded file should not stay private (0600)"


def test_md5_checksums_work_too(server, tmp_path):
    _Handler.files["/md5.bin"] = PAYLOAD
    remote = RemoteFile(f"{server}/md5.bin", "md5:" + hashlib.md5(PAYLOAD).hexdigest())
    assert download_file(remote, tmp_path / "md5.bin", progress=False).is_file()


def test_checksum_failure_leaves_nothing(server, tmp_path):
    _Handler.files["/tampered.bin"] = PAYLOAD[:-1] + b"x"
    remote = RemoteFile(f"{server}/tampered.bin", _sha256(PAYLOAD))
    with pytest.raises(ChecksumError, match="checksum"):
        download_file(remote, tmp_path / "tampered.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_leaves_nothing(server, tmp_path):
    remote = RemoteFile(f"{server}/truncated", _sha256(PAYLOAD))
    with pytest.raises(DownloadError, match=r"broke off after \d+ of \d+ bytes"):
        download_file(remote, tmp_path / "truncated.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interruption_by_the_user_leaves_nothing(server, tmp_path, monkeypatch):
    _Handler.files["/big.bin"] = PAYLOAD

    class InterruptedBar:  # stands in for the progress bar; Ctrl-C after two chunks
        def __init__(self, *args, **kwargs):
            self.chunks = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.chunks += 1
            if self.chunks == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr("fslearn.data.download.tqdm", InterruptedBar)
    with pytest.raises(KeyboardInterrupt):
        download_file(RemoteFile(f"{server}/big.bin", _sha256(PAYLOAD)), tmp_path / "big.bin")
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_download_error(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download_file(RemoteFile(f"{server}/missing", _sha256(b"")), tmp_path / "x",
                      progress=False)


def test_malformed_checksum_is_refused(tmp_path):
    with pytest.raises(ValueError, match="md5:<hex>"):
        download_file(RemoteFile("http://127.0.0.1:9/x", "deadbeef"), tmp_path / "x")


def test_omniglot_is_downloaded_into_the_data_root(server, tmp_path, monkeypatch, omniglot_root):
    # Serve the shared zips as if they were the official ones.
    from fslearn.data.omniglot import find_omniglot

    remotes = {}
    for name, path in find_omniglot(omniglot_root).items():
        data = Path(path).read_bytes()
        _Handler.files[f"/{name}.zip"] = data
        remotes[name] = RemoteFile(f"{server}/{name}.zip", _sha256(data))
    monkeypatch.setattr(omniglot_module, "OMNIGLOT_ARCHIVES", remotes)
    dataset = load_omniglot("test", root=tmp_path / "data", cache=tmp_path / "cache")
    assert dataset.num_classes == 1692
    assert sorted(p.name for p in (tmp_path / "data" / "omniglot").iterdir()) == [
        "images_background.zip", "images_evaluation.zip"]


def test_offline_machine_gets_instructions(tmp_path, monkeypatch):
    # Port 9 (discard) on loopback refuses connections: the behaviour of an offline machine.
    remotes = {name: RemoteFile(f"http://127.0.0.1:9/{name}.zip", "md5:00")
               for name in ("images_background", "images_evaluation")}
    monkeypatch.setattr(omniglot_module, "OMNIGLOT_ARCHIVES", remotes)
    with pytest.raises(DataNotFoundError) as caught:
        load_omniglot("train", root=tmp_path)
    message = str(caught.value)
    assert "could not be downloaded" in message
    assert "offline" in message and str(tmp_path / "omniglot") in message
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
