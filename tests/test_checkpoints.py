"""Checkpoints: round trip, verification, atomic replacement, shipped ones."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from fslearn import checkpoints as checkpoints_module
from fslearn.checkpoints import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    shipped_checkpoints,
)
from fslearn.methods import PrototypicalNetwork


def _method(seed: int) -> PrototypicalNetwork:
    torch.manual_seed(seed)
    return PrototypicalNetwork()


def test_round_trip_restores_weights_buffers_and_record(tmp_path):
    method = _method(0)
    method.backbone.features[0][1].running_mean.fill_(0.25)  # a buffer, not a parameter
    save_checkpoint(tmp_path / "ck", method, {"seed": 0, "command": "fslearn train protonet"})
    loaded, record = load_checkpoint(tmp_path / "ck")
    for key, value in method.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not loaded.training
    assert record["method"] == "protonet" and record["seed"] == 0
    assert record["command"] == "fslearn train protonet"
    assert {"fslearn_version", "torch_version", "weights_sha256"} <= set(record)


def test_saved_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        save_checkpoint(tmp_path, _method(0))
    finally:
        os.umask(umask)
    for file in tmp_path.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file.name


def test_weights_are_plain_safetensors(tmp_path):
    save_checkpoint(tmp_path, _method(0))
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    with safe_open(str(tmp_path / record["weights"]), "pt") as handle:
        assert "model.backbone.features.0.0.weight" in handle.keys()  # noqa: SIM118


def test_damaged_weights_are_detected(tmp_path):
    save_checkpoint(tmp_path, _method(0))
    weights = next(tmp_path.glob("weights-*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        read_checkpoint(tmp_path)


def test_missing_weights_and_bad_json_are_reported(tmp_path):
    save_checkpoint(tmp_path, _method(0))
    next(tmp_path.glob("weights-*.safetensors")).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        read_checkpoint(tmp_path)
    (tmp_path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        read_checkpoint(tmp_path)


def test_newer_format_asks_for_an_upgrade(tmp_path):
    save_checkpoint(tmp_path, _method(0))
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    record["format_version"] = 99
    (tmp_path / "checkpoint.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="upgrade"):
        read_checkpoint(tmp_path)


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, _method(0), {"round": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints_module, "write_json_atomically", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, _method(1), {"round": 2})
    loaded, record = load_checkpoint(tmp_path)
    assert record["round"] == 1
    assert torch.equal(loaded.state_dict()["backbone.features.0.0.weight"],
                       _method(0).state_dict()["backbone.features.0.0.weight"])
    assert not list(tmp_path.glob("*.part"))


def test_saving_again_removes_stale_weights(tmp_path):
    save_checkpoint(tmp_path, _method(0))
    save_checkpoint(tmp_path, _method(1))
    assert len(list(tmp_path.glob("weights-*.safetensors"))) == 1


def test_unknown_name_lists_the_shipped_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="protonet-omniglot"):
        resolve_checkpoint(tmp_path / "nothing-here")


def test_a_run_folder_resolves_to_its_best_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "run" / "best", _method(0))
    assert resolve_checkpoint(tmp_path / "run") == tmp_path / "run" / "best"


def test_shipped_checkpoint_loads_and_records_how_it_was_made():
    assert "protonet-omniglot" in shipped_checkpoints()
    method, record = load_checkpoint("protonet-omniglot")
    assert isinstance(method, PrototypicalNetwork)
    assert record["command"].startswith("fslearn train protonet")
    assert record["data"]["protocol"] == "vinyals"
    assert {"seed", "config", "hardware", "training_seconds", "fslearn_version"} <= set(record)
    results = json.loads((shipped_checkpoints()["protonet-omniglot"] / "results.json")
                         .read_text())
    assert {(r["n_way"], r["k_shot"]) for r in results["results"]} == {
        (5, 1), (5, 5), (20, 1), (20, 5)}
    assert all(r["episodes"] >= 1000 for r in results["results"])
