"""Checkpoints: safetensors weights plus a JSON record of how they were made. No pickle.

A checkpoint is a folder::

    checkpoint.json                 method, hyper-parameters, config, seed, command, metrics,
                                    package versions, and the name and SHA-256 of the weights
    weights-<sha256[:16]>.safetensors

``checkpoint.json`` is the commit point. Weights are written first under a name derived from
their content, then the JSON is atomically replaced, then stale weights are removed; a crash at
any moment leaves either the old or the new checkpoint, whole.

Shipped checkpoints live in ``fslearn/pretrained/<name>/`` and are found by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from fslearn._files import readable_by_others
from fslearn.data.errors import one_line
from fslearn.methods import FewShotMethod, build_method

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "copy_matching_parameters",
    "load_checkpoint",
    "read_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
    "shipped_checkpoints",
    "write_json_atomically",
]

FORMAT = "fslearn-checkpoint"
FORMAT_VERSION = 1
METADATA_FILE = "checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged or of an unknown format."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read from disk: its folder, its JSON record and its tensors."""

    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, Tensor]

    def build_method(self, device: torch.device | str = "cpu") -> FewShotMethod:
        """The method with these weights, in evaluation mode.

        Raises:
            CheckpointError: the record names an unknown method or hyper-parameters, or the
                weights do not fit the method it describes (one line naming the first
                mismatching tensor, instead of PyTorch's multi-line report).
        """
        name, hparams = self.metadata.get("method"), self.metadata.get("hparams", {})
        built_from = f"a {name!r} built from hparams {hparams}"
        fix = (f"the record does not describe these weights: re-create the checkpoint or fix "
               f"hparams in {METADATA_FILE}.")
        try:
            method = build_method(str(name), **hparams)
        except (TypeError, ValueError) as error:
            raise CheckpointError(
                f"{self.path}: {METADATA_FILE} describes {built_from}, which cannot be built "
                f"({one_line(error)}); {fix}"
            ) from error
        weights = {k.removeprefix("model."): v for k, v in self.tensors.items()
                   if k.startswith("model.")}
        mismatch = _state_mismatch(weights, str(self.metadata.get("weights")),
                                   method.state_dict(), built_from)
        if mismatch:
            raise CheckpointError(f"{self.path}: {mismatch}; {fix}")
        try:  # names and shapes agree, so this should not fail; if it does, keep it to one line
            method.load_state_dict(weights, strict=True)
        except RuntimeError as error:
            raise CheckpointError(
                f"{self.path}: the weights do not fit {built_from} ({one_line(error)}); {fix}"
            ) from error
        return method.to(device).eval()


def _state_mismatch(
    weights: dict[str, Tensor], weights_name: str, expected: dict[str, Tensor], method: str
) -> str | None:
    """How ``weights`` differ from the state dict ``expected`` of ``method`` (the first differing
    shape, else the missing and unexpected tensors, a few named); None when names and shapes
    agree. Checked before ``load_state_dict``, whose report spans many lines."""
    for key, tensor in expected.items():
        if key in weights and weights[key].shape != tensor.shape:
            return (f"tensor {key} has shape {tuple(weights[key].shape)} in {weights_name} but "
                    f"{tuple(tensor.shape)} in {method}")
    missing = [key for key in expected if key not in weights]
    unexpected = [key for key in weights if key not in expected]
    problems = []
    if missing:
        problems.append(f"lacks {len(missing)} tensor(s) that {method} has "
                        f"({_first_few(missing)})")
    if unexpected:
        problems.append(f"has {len(unexpected)} tensor(s) that {method} does not "
                        f"({_first_few(unexpected)})")
    return f"{weights_name} " + " and ".join(problems) if problems else None


def _first_few(names: list[str], few: int = 3) -> str:
    more = f" and {len(names) - few} more" if len(names) > few else ""
    return ", ".join(names[:few]) + more


def _package_version() -> str:
    from fslearn import __version__

    return __version__


def write_json_atomically(path: Path, content: dict[str, Any], indent: int | None = 2) -> None:
    """Write JSON to ``path`` through a temporary file and a rename: all or nothing
    (``indent=None``: on one line, for files of long lists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False,
        encoding="utf-8",
    )
    try:
        with handle:
            json.dump(content, handle, indent=indent, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        readable_by_others(Path(handle.name))
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def save_checkpoint(
    folder: str | os.PathLike[str],
    method: FewShotMethod,
    metadata: dict[str, Any] | None = None,
    extra_tensors: dict[str, Tensor] | None = None,
) -> Path:
    """Save ``method``'s weights and ``metadata`` into ``folder`` atomically.

    Args:
        folder: the checkpoint folder (created if needed).
        method: a registered method; its ``name`` and ``hparams`` are recorded to rebuild it.
        metadata: anything JSON-serialisable: config, seed, command, metrics...
        extra_tensors: more tensors to store beside the weights (e.g. optimizer state).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in method.state_dict().items()}
    for key, value in (extra_tensors or {}).items():
        tensors[key] = value.detach().cpu().contiguous()
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".weights.", suffix=".part",
                                         delete=False)
    handle.close()
    partial = Path(handle.name)
    try:
        save_file(tensors, str(partial))
        digest = hashlib.sha256(partial.read_bytes()).hexdigest()
        weights_name = f"weights-{digest[:16]}.safetensors"
        readable_by_others(partial)
        os.replace(partial, folder / weights_name)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": method.name,
        "hparams": method.hparams,
        "weights": weights_name,
        "weights_sha256": digest,
        "fslearn_version": _package_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(metadata or {}),
    }
    write_json_atomically(folder / METADATA_FILE, record)
    for stale in folder.glob("weights-*.safetensors"):
        if stale.name != weights_name:
            stale.unlink(missing_ok=True)
    return folder


def _pretrained_root() -> Path:
    return Path(str(resources.files("fslearn").joinpath("pretrained")))


def shipped_checkpoints() -> dict[str, Path]:
    """Checkpoints that ship with the package, by name."""
    root = _pretrained_root()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / METADATA_FILE).is_file()}


def resolve_checkpoint(name_or_path: str | os.PathLike[str]) -> Path:
    """The checkpoint folder for a path, a training run folder (its ``best``), or a shipped name."""
    path = Path(name_or_path).expanduser()
    if (path / METADATA_FILE).is_file():
        return path
    if (path / "best" / METADATA_FILE).is_file():
        return path / "best"
    if path.is_file() and path.name == METADATA_FILE:
        return path.parent
    shipped = shipped_checkpoints()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    names = ", ".join(shipped) or "none"
    raise CheckpointError(
        f"No checkpoint at {str(name_or_path)!r}: expected a folder with {METADATA_FILE} (or a "
        f"training run folder with best/), or the name of a shipped checkpoint ({names}). "
        f"List them with `fslearn checkpoints`."
    )


def read_checkpoint(name_or_path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint: known format, weights present and matching their SHA-256."""
    folder = resolve_checkpoint(name_or_path)
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder / METADATA_FILE} is not readable JSON ({error}).") \
            from error
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{folder / METADATA_FILE} is not an fslearn checkpoint record.")
    if metadata.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} was written by a newer fslearn (format {metadata['format_version']}); "
            f"upgrade fslearn to read it."
        )
    weights = folder / str(metadata.get("weights"))
    if not weights.is_file():
        raise CheckpointError(f"{folder}: the weights file {weights.name} named in "
                              f"{METADATA_FILE} is missing; the checkpoint is incomplete.")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != metadata.get("weights_sha256"):
        raise CheckpointError(
            f"{weights} does not match the SHA-256 recorded in {METADATA_FILE} "
            f"({digest[:16]}... instead of {str(metadata.get('weights_sha256'))[:16]}...): the "
            f"file is damaged or was replaced. Re-create or re-download the checkpoint."
        )
    return Checkpoint(path=folder, metadata=metadata, tensors=load_file(str(weights)))


def load_checkpoint(
    name_or_path: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> tuple[FewShotMethod, dict[str, Any]]:
    """``(method in evaluation mode, checkpoint.json record)`` from a path or shipped name.

    >>> method, record = load_checkpoint("protonet-omniglot")     # doctest: +SKIP
    """
    checkpoint = read_checkpoint(name_or_path)
    return checkpoint.build_method(device), checkpoint.metadata


def copy_matching_parameters(target: torch.nn.Module, source: torch.nn.Module) -> list[str]:
    """Copy into ``target`` every parameter and buffer of ``source`` with the same name and
    shape (a Prototypical Network starting from a ProtoCLR embedding: all of them; a method
    with a head of its own: the shared embedding), and return their names.

    Raises:
        ValueError: nothing matches (another architecture), in one line naming an example.
    """
    wanted = target.state_dict()
    matching = {name: value for name, value in source.state_dict().items()
                if name in wanted and wanted[name].shape == value.shape}
    if not matching:
        raise ValueError(f"no parameter of the source checkpoint matches this model by name "
                         f"and shape (the model has {_first_few(list(wanted))}): start from "
                         f"a checkpoint of the same embedding network")
    target.load_state_dict(matching, strict=False)
    return sorted(matching)
