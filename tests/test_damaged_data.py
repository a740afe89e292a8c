"""Damaged or misplaced data: one clear line that names the file and says what to do, both from
Python and from the ``fslearn`` command, and nothing half-written left behind.

Most cases use tiny synthetic archives (a few real drawings) with the expected counts of
characters and drawings patched down, so they run the real loading path in milliseconds; two
cases use copies of the real zips, which fail before any slow decoding.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from fslearn.checkpoints import CheckpointError, _state_mismatch, load_checkpoint, save_checkpoint
from fslearn.cli import main
from fslearn.data import DataError, DataNotFoundError, load_omniglot
from fslearn.data import omniglot as omniglot_module
from fslearn.data.download import RemoteFile
from fslearn.data.omniglot import (
    _Archive,
    _decode_drawings,
    _list_drawings,
    _verify_checksum,
    find_omniglot,
    load_omniglot_characters,
)
from fslearn.evaluation import MIN_REPORTED_EPISODES
from fslearn.methods import PrototypicalNetwork

BACKGROUND, EVALUATION = "images_background", "images_evaluation"
#: Patched sizes of the tiny archives: 3 background and 2 evaluation characters of 3 drawings.
TINY = {BACKGROUND: 3, EVALUATION: 2}
TINY_DRAWERS = 3
OFFICIAL_MD5 = {
    name: remote.checksum.removeprefix("md5:")
    for name, remote in omniglot_module.OMNIGLOT_ARCHIVES.items()
}


# ---------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def png(omniglot_root: Path) -> bytes:
    """One real drawing, to fill the tiny archives."""
    with zipfile.ZipFile(find_omniglot(omniglot_root)[EVALUATION]) as zipped:
        return zipped.read(zipped.namelist()[0])


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private processed cache, so each test can check that nothing was written to it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FSLEARN_CACHE", str(folder))
    return folder


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Expect tiny archives instead of the 964 + 659 characters of 20 drawings."""
    monkeypatch.setattr(omniglot_module, "_CHARACTERS", dict(TINY))
    monkeypatch.setattr(omniglot_module, "_DRAWERS", TINY_DRAWERS)


def _members(name: str, png: bytes, characters: int | None = None,
             drawers: int = TINY_DRAWERS, top: str | None = None) -> dict[str, bytes]:
    """``{member: bytes}`` in the official layout, e.g. ``images_background/Alpha/character01/
    0001_01.png``; ``top`` replaces the first path component (to fake an archive of the other
    set)."""
    first = 1 if name == BACKGROUND else 965
    return {
        f"{top or name}/Alpha/character{c + 1:02d}/{first + c:04d}_{d + 1:02d}.png": png
        for c in range(TINY[name] if characters is None else characters)
        for d in range(drawers)
    }


def _write_zip(path: Path, members: dict[str, bytes], trust: bool = True,
               compression: int = zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as zipped:
        for member, data in members.items():
            zipped.writestr(member, data)
    if trust:
        _trust(path)
    return path


def _trust(path: Path) -> None:
    """The documented escape hatch: list the file's SHA-256 in a SHA256SUMS beside it."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with open(path.parent / "SHA256SUMS", "a", encoding="utf-8") as sums:
        sums.write(f"{digest}  {path.name}\n")


def _write_folder(root: Path, members: dict[str, bytes]) -> None:
    for member, data in members.items():
        (root / member).parent.mkdir(parents=True, exist_ok=True)
        (root / member).write_bytes(data)


@pytest.fixture
def tiny_root(tmp_path: Path, png: bytes, tiny: None) -> Path:
    """A data root with two small, trusted zips in the official layout."""
    root = tmp_path / "data"
    for name in (BACKGROUND, EVALUATION):
        _write_zip(root / f"{name}.zip", _members(name, png))
    return root


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _snapshot(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.exists() else {}


def _assert_nothing_written(cache: Path, root: Path, before: dict[str, int]) -> None:
    """No processed cache, no temporary file, no partial download, and the data untouched."""
    assert not list(cache.glob("omniglot-*.npz")) and not list(cache.glob("*.part"))
    assert _snapshot(root) == before


def _load_fails(root: Path, cache: Path, message: str) -> str:
    """Load through Python: a DataError matching ``message``, on one line, nothing written."""
    before = _snapshot(root)
    with pytest.raises(DataError, match=message) as caught:
        load_omniglot_characters(root, download=False)
    text = str(caught.value)
    assert "\n" not in text
    _assert_nothing_written(cache, root, before)
    return text


def _cli_fails(capsys: pytest.CaptureFixture[str], cache: Path, root: Path | None) -> str:
    """Run ``fslearn evaluate`` (on ``--data-root root`` if given) expecting status 2, exactly one
    line on stderr, and nothing written."""
    before = _snapshot(root) if root else {}
    capsys.readouterr()
    status = main(["evaluate", "protonet-omniglot", "--way", "5", "--shot", "1", "--episodes",
                   str(MIN_REPORTED_EPISODES), "--device", "cpu",
                   *(["--data-root", str(root)] if root else [])])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fslearn evaluate: error: ")
    if root:
        _assert_nothing_written(cache, root, before)
    return lines[0]


def test_the_tiny_archives_load_so_the_failures_below_come_from_the_damage(tiny_root, cache):
    characters = load_omniglot_characters(tiny_root, download=False)
    assert len(characters.names) == 5 and characters.images.shape == (15, 1, 28, 28)
    assert len(list(cache.glob("omniglot-*.npz"))) == 1


# ------------------------------------------------------------- 1. truncated or corrupt zips


def test_a_truncated_real_zip_is_named_with_what_to_do(tmp_path, omniglot_root, cache, capsys):
    shared = find_omniglot(omniglot_root)
    root = tmp_path / "data"
    root.mkdir()
    whole = shared[BACKGROUND].read_bytes()
    (root / f"{BACKGROUND}.zip").write_bytes(whole[: len(whole) // 2])
    (root / f"{EVALUATION}.zip").symlink_to(shared[EVALUATION])
    message = _load_fails(root, cache, "is not a readable zip archive")
    assert message == (
        f"{root / BACKGROUND}.zip is not a readable zip archive (File is not a zip file): it is "
        f"truncated or damaged; delete it and run again to download a fresh copy, or replace it "
        f"with an intact copy."
    )
    assert _cli_fails(capsys, cache, root).endswith(message)


def test_a_flipped_byte_in_the_shared_copy_is_damage(tmp_path, omniglot_root, cache):
    shared = find_omniglot(omniglot_root)
    root = tmp_path / "data"
    root.mkdir()
    for name, path in shared.items():
        shutil.copy(path, root / f"{name}.zip")
    shutil.copy(shared[BACKGROUND].parent / "SHA256SUMS", root)
    zipped = root / f"{BACKGROUND}.zip"
    _flip_byte(zipped, zipped.stat().st_size // 2)
    message = _load_fails(root, cache, r"images_background.zip is damaged: its SHA-256 is")
    assert f"but {root / 'SHA256SUMS'} lists 15c2d3c92905eb3a" in message
    assert message.endswith("delete it and run again to download a fresh copy, or replace it "
                            "with an intact copy.")


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_corrupt_member_of_a_trusted_zip(tiny_root, cache, capsys, compression, png):
    # Trusted by SHA256SUMS yet corrupt inside: the CRC check or zlib catches it while reading.
    zipped = tiny_root / f"{BACKGROUND}.zip"
    (tiny_root / "SHA256SUMS").unlink()
    _write_zip(zipped, _members(BACKGROUND, png), trust=False, compression=compression)
    with zipfile.ZipFile(zipped) as archive:
        info = archive.infolist()[1]
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    _flip_byte(zipped, data_start + info.compress_size // 2)
    for name in (BACKGROUND, EVALUATION):
        _trust(tiny_root / f"{name}.zip")
    message = _load_fails(tiny_root, cache, "could not be read")
    assert message.startswith(f"{zipped}: {info.filename} could not be read (")
    assert message.endswith("): it is truncated or damaged; delete it and run again to download "
                            "a fresh copy, or replace it with an intact copy.")
    assert _cli_fails(capsys, cache, tiny_root).endswith(message)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_any_truncation_of_a_zip_is_a_data_error(tmp_path, png, keep, tiny):
    whole = _write_zip(tmp_path / "whole" / f"{BACKGROUND}.zip", _members(BACKGROUND, png),
                       trust=False).read_bytes()
    cut = tmp_path / f"{BACKGROUND}.zip"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    pattern = rf"^{re.escape(str(cut))}.*truncated or damaged; delete it"
    with pytest.raises(DataError, match=pattern) as caught, \
            _Archive(BACKGROUND, cut) as archive:
        _decode_drawings(archive, _list_drawings(archive), 28)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------ 2. checksums


def test_the_shared_copy_is_trusted_through_its_sha256sums(omniglot_root):
    for name, path in find_omniglot(omniglot_root).items():
        with _Archive(name, path) as archive:
            _verify_checksum(archive)


def test_a_link_to_a_trusted_copy_stays_trusted(tmp_path, omniglot_root):
    link = tmp_path / f"{BACKGROUND}.zip"
    link.symlink_to(find_omniglot(omniglot_root)[BACKGROUND])
    with _Archive(BACKGROUND, link) as archive:
        _verify_checksum(archive)


def _make_official(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the zips in ``root`` are the official ones: publish their MD5s."""
    official = {name: RemoteFile(f"https://example.invalid/{name}.zip", "md5:" + hashlib.md5(
        (root / f"{name}.zip").read_bytes()).hexdigest()) for name in TINY}
    monkeypatch.setattr(omniglot_module, "OMNIGLOT_ARCHIVES", official)


def test_the_official_md5_is_trusted_without_sha256sums(tiny_root, monkeypatch, cache):
    (tiny_root / "SHA256SUMS").unlink()
    _make_official(tiny_root, monkeypatch)
    assert len(load_omniglot_characters(tiny_root, download=False).names) == 5


def test_an_unknown_zip_says_how_to_trust_it_and_that_works(tiny_root, cache, capsys):
    (tiny_root / "SHA256SUMS").unlink()
    _trust(tiny_root / f"{EVALUATION}.zip")
    zipped = tiny_root / f"{BACKGROUND}.zip"
    md5 = hashlib.md5(zipped.read_bytes()).hexdigest()
    message = _load_fails(tiny_root, cache, "is not the official images_background.zip")
    assert message == (
        f"{zipped} is not the official images_background.zip (it may be truncated, damaged or a "
        f"different file): its MD5 is {md5}, not {OFFICIAL_MD5[BACKGROUND]}, and no SHA256SUMS "
        f"beside it lists it. Delete it and run again to download a fresh copy, or replace it "
        f"with an intact copy; or, for a copy you trust (a faithful repack), list its SHA-256 in "
        f"a SHA256SUMS file beside it: cd {tiny_root} && sha256sum images_background.zip >> "
        f"SHA256SUMS"
    )
    assert _cli_fails(capsys, cache, tiny_root).endswith(message)
    _trust(zipped)  # what the message says to do
    assert len(load_omniglot_characters(tiny_root, download=False).names) == 5


def test_swapped_real_zips_are_reported_as_swapped(tmp_path, omniglot_root, cache, capsys):
    shared = find_omniglot(omniglot_root)
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(shared[BACKGROUND], root / f"{EVALUATION}.zip")
    shutil.copy(shared[EVALUATION], root / f"{BACKGROUND}.zip")
    shutil.copy(shared[BACKGROUND].parent / "SHA256SUMS", root)
    message = _load_fails(root, cache, "look swapped")
    assert message == (
        f"{root / BACKGROUND}.zip has the checksum of images_evaluation.zip, not of "
        f"images_background.zip: the two files look swapped. Give each its right name "
        f"(images_background.zip holds images_background/...), or delete both and run again to "
        f"download fresh copies."
    )
    assert _cli_fails(capsys, cache, root).endswith(message)


def test_swapped_zips_are_recognised_by_the_official_md5_too(tiny_root, monkeypatch, cache):
    (tiny_root / "SHA256SUMS").unlink()
    _make_official(tiny_root, monkeypatch)
    background, evaluation = (tiny_root / f"{name}.zip" for name in (BACKGROUND, EVALUATION))
    background.rename(tmp := tiny_root / "tmp")
    evaluation.rename(background)
    tmp.rename(evaluation)
    _load_fails(tiny_root, cache, r"images_background.zip has the checksum of "
                                  r"images_evaluation.zip.*look swapped")


def test_checksums_are_computed_only_when_the_cache_is_built(tiny_root, monkeypatch, cache):
    load_omniglot_characters(tiny_root, download=False)

    def no_hashing(*args, **kwargs):
        raise AssertionError("the archives were hashed again on a cache hit")

    monkeypatch.setattr(omniglot_module, "file_digests", no_hashing)
    assert len(load_omniglot_characters(tiny_root, download=False).names) == 5


# ----------------------------------------------------------------- 3. the wrong set or layout


def test_a_zip_of_the_other_set_under_this_name(tiny_root, cache, capsys, png):
    (tiny_root / "SHA256SUMS").unlink()
    _write_zip(tiny_root / f"{BACKGROUND}.zip", _members(BACKGROUND, png, top=EVALUATION))
    _trust(tiny_root / f"{EVALUATION}.zip")
    message = _load_fails(tiny_root, cache, "saved under the wrong name")
    assert message == (
        f"{tiny_root / BACKGROUND}.zip holds 'images_evaluation/Alpha/character01/0001_01.png', "
        f"but every member of images_background must be under images_background/: it looks like "
        f"images_evaluation.zip saved under the wrong name; delete it and run again to download "
        f"a fresh copy, or replace it with an intact copy."
    )
    assert _cli_fails(capsys, cache, tiny_root).endswith(message)


def test_a_zip_of_something_else(tiny_root, cache):
    (tiny_root / "SHA256SUMS").unlink()
    _write_zip(tiny_root / f"{BACKGROUND}.zip", {"holiday/beach.jpg": b"\xff\xd8"})
    _trust(tiny_root / f"{EVALUATION}.zip")
    _load_fails(tiny_root, cache, r"holds 'holiday/beach.jpg', but every member of "
                                  r"images_background must be under images_background/: it does "
                                  r"not look like an Omniglot archive; delete it")


def test_an_unpacked_folder_of_the_other_set(tiny_root, cache, png):
    (tiny_root / f"{BACKGROUND}.zip").unlink()
    _write_folder(tiny_root, _members(BACKGROUND, png, characters=TINY[EVALUATION]))
    message = _load_fails(tiny_root, cache, "holds 2 characters")
    assert message == (
        f"{tiny_root / BACKGROUND} holds 2 characters, but images_background has 3 (2 is the "
        f"number in images_evaluation: the two look swapped); unpack an intact "
        f"images_background.zip in its place, or delete the folder to use (or download) the zip."
    )


def test_a_character_with_a_missing_drawing(tiny_root, cache, png):
    members = _members(EVALUATION, png)
    del members[f"{EVALUATION}/Alpha/character02/0966_03.png"]
    _write_zip(tiny_root / f"{EVALUATION}.zip", members)
    _load_fails(tiny_root, cache, r"images_evaluation.zip: Alpha/character02 has 2 drawings, "
                                  r"but every Omniglot character has 3 \(one per drawer\)")


def test_a_folder_unpacked_one_level_too_deep(tiny_root, cache, png):
    (tiny_root / f"{EVALUATION}.zip").unlink()
    _write_folder(tiny_root / EVALUATION, _members(EVALUATION, png))
    nested = tiny_root / EVALUATION / EVALUATION
    message = _load_fails(tiny_root, cache, "unpacked one level too deep")
    assert message == (
        f"{nested}/Alpha/character01/0965_01.png is not at images_evaluation/<Alphabet>/"
        f"<characterNN>/<file>.png, the official layout; it seems unpacked one level too deep: "
        f"move the contents of {nested} up into {tiny_root / EVALUATION}."
    )


def test_a_zip_with_an_extra_folder_level(tiny_root, cache, png):
    (tiny_root / "SHA256SUMS").unlink()
    members = {f"{BACKGROUND}/{member}": data for member, data in _members(BACKGROUND, png).items()}
    _write_zip(tiny_root / f"{BACKGROUND}.zip", members)
    _trust(tiny_root / f"{EVALUATION}.zip")
    _load_fails(tiny_root, cache, r"images_background.zip: images_background/images_background/"
                                  r"Alpha/character01/0001_01.png is not at images_background/"
                                  r"<Alphabet>/<characterNN>/<file>.png, the official layout; is "
                                  r"it Omniglot\? Delete it and run again")


# ------------------------------------------------------------------ 4. undecodable drawings


def test_an_undecodable_drawing_in_a_zip(tiny_root, cache, capsys, png):
    members = _members(BACKGROUND, png)
    member = f"{BACKGROUND}/Alpha/character01/0001_01.png"
    members[member] = b"this is not a PNG\n"
    (tiny_root / "SHA256SUMS").unlink()
    for name, content in ((BACKGROUND, members), (EVALUATION, _members(EVALUATION, png))):
        _write_zip(tiny_root / f"{name}.zip", content)
    message = _load_fails(tiny_root, cache, "could not be decoded as an image")
    assert message == (
        f"{tiny_root / BACKGROUND}.zip: {member} could not be decoded as an image (not a PNG or "
        f"any other image format Pillow knows); delete it and run again to download a fresh "
        f"copy, or replace it with an intact copy."
    )
    assert _cli_fails(capsys, cache, tiny_root).endswith(message)


def test_an_undecodable_drawing_in_an_unpacked_folder(tiny_root, cache, png):
    (tiny_root / f"{EVALUATION}.zip").unlink()
    members = _members(EVALUATION, png)
    member = f"{EVALUATION}/Alpha/character02/0966_02.png"
    members[member] = png[: len(png) // 2]  # a PNG cut short
    _write_folder(tiny_root, members)
    message = _load_fails(tiny_root, cache, "could not be decoded as an image")
    assert message.startswith(f"{tiny_root / member} could not be decoded as an image (")
    assert message.endswith("); unpack an intact images_evaluation.zip in its place, or delete "
                            "the folder to use (or download) the zip.")


# -------------------------------------------------------------------------- 5. the data root


def test_a_data_root_that_is_a_file(tmp_path, monkeypatch, cache, capsys):
    not_a_folder = tmp_path / "omniglot.zip"
    not_a_folder.write_bytes(b"PK")
    expected = (f"The data root {not_a_folder}, taken from {{origin}}, is a file, not a folder: "
                f"point it at the folder that holds images_background.zip and "
                f"images_evaluation.zip (or an omniglot/ folder with them).")
    with pytest.raises(DataNotFoundError) as caught:
        load_omniglot("test", root=not_a_folder)
    assert str(caught.value) == expected.format(
        origin="the root= argument or the --data-root option")
    monkeypatch.setenv("FSLEARN_DATA", str(not_a_folder))
    with pytest.raises(DataNotFoundError) as caught:
        load_omniglot("test")
    assert str(caught.value) == expected.format(origin="the FSLEARN_DATA environment variable")
    assert _cli_fails(capsys, cache, None).endswith(str(caught.value))
    assert _cli_fails(capsys, cache, not_a_folder).endswith(
        expected.format(origin="the root= argument or the --data-root option"))
    assert not cache.exists() and not_a_folder.read_bytes() == b"PK"


def test_an_unreadable_data_root(tmp_path, monkeypatch, cache, capsys):
    # Tests run as root, for whom permissions do not restrict: fake what os.access would say.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: Path(path) != locked and
                        real_access(path, mode, **kwargs))
    expected = (f"The data folder {locked} cannot be read (the data root comes from the root= "
                f"argument or the --data-root option): give your user read and execute "
                f"permission on it (chmod u+rx {locked}) or point the data root at a readable "
                f"copy.")
    with pytest.raises(DataNotFoundError) as caught:
        load_omniglot("test", root=locked)
    assert str(caught.value) == expected
    assert _cli_fails(capsys, cache, locked).endswith(expected)
    assert not cache.exists() and not list(locked.iterdir())


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="permissions do not restrict root")
def test_an_unreadable_data_root_for_real(tmp_path):
    locked = tmp_path / "locked"
    (locked / "omniglot").mkdir(parents=True)
    locked.chmod(0)
    try:
        with pytest.raises(DataNotFoundError, match="cannot be read"):
            load_omniglot("test", root=locked)
    finally:
        locked.chmod(0o755)


# --------------------------------------------------------------------------- 6. checkpoints


def _edit_record(folder: Path, **changes: object) -> None:
    record = json.loads((folder / "checkpoint.json").read_text())
    record.update(changes)
    (folder / "checkpoint.json").write_text(json.dumps(record))


def test_weights_that_do_not_fit_the_recorded_architecture(tmp_path, capsys):
    folder = save_checkpoint(tmp_path / "ck", PrototypicalNetwork(in_channels=3))
    _edit_record(folder, hparams={"in_channels": 1})  # the weights and their SHA-256 stay right
    weights = next(folder.glob("weights-*.safetensors")).name
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(folder)
    assert str(caught.value) == (
        f"{folder}: tensor backbone.features.0.0.weight has shape (64, 3, 3, 3) in {weights} but "
        f"(64, 1, 3, 3) in a 'protonet' built from hparams {{'in_channels': 1}}; the record does "
        f"not describe these weights: re-create the checkpoint or fix hparams in "
        f"checkpoint.json."
    )
    capsys.readouterr()
    assert main(["evaluate", str(folder), "--way", "5", "--shot", "1", "--episodes",
                 str(MIN_REPORTED_EPISODES), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err == f"fslearn evaluate: error: {caught.value}\n"


def test_weights_with_tensors_the_method_does_not_have(tmp_path):
    folder = save_checkpoint(tmp_path, PrototypicalNetwork(),
                             extra_tensors={"model.head.weight": torch.zeros(5, 64)})
    with pytest.raises(CheckpointError, match=r"weights-\w+\.safetensors has 1 tensor\(s\) that "
                       r"a 'protonet' built from hparams \{'in_channels': 1\} does not "
                       r"\(head.weight\); the record does not describe these weights"):
        load_checkpoint(folder)


def test_weights_that_lack_tensors_name_the_first_few():
    expected = PrototypicalNetwork().state_dict()
    weights = dict(list(expected.items())[:-5])
    assert _state_mismatch(weights, "w.safetensors", expected, "a 'protonet'") == (
        f"w.safetensors lacks 5 tensor(s) that a 'protonet' has "
        f"({', '.join(list(expected)[-5:-2])} and 2 more)"
    )
    assert _state_mismatch(expected, "w.safetensors", expected, "a 'protonet'") is None


def test_hparams_the_method_does_not_take(tmp_path):
    folder = save_checkpoint(tmp_path, PrototypicalNetwork())
    _edit_record(folder, hparams={"in_chanels": 1})
    with pytest.raises(CheckpointError, match=r"checkpoint.json describes a 'protonet' built "
                       r"from hparams \{'in_chanels': 1\}, which cannot be built \(.*"
                       r"in_chanels.*\); the record does not describe these weights") as caught:
        load_checkpoint(folder)
    assert "\n" not in str(caught.value)
