"""The project's checkpoint format: weights plus everything needed to rebuild and map the policy.

A checkpoint is one `torch.save`d dict of plain types and tensors, read back with
`torch.load(weights_only=True)`: loading a checkpoint never unpickles arbitrary objects.

    format        "pytest-policyeval.checkpoint"
    version       1
    architecture  name in `networks.ARCHITECTURES`
    config        keyword arguments of that architecture
    feature_names observation features, in the policy's channel order
    tag_names     object tags, in the policy's channel order
    action_names  the policy's actions, in its logit order
    state_dict    the module's tensors
    metadata      free-form facts (how it was trained, scores seen...)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pytest_policyeval.atomic import atomic_writer
from pytest_policyeval.policies.base import PolicyLoadError
from pytest_policyeval.policies.torch_files import load_torch_file, read_pickle

FORMAT = "pytest-policyeval.checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    architecture: str
    config: dict[str, Any]
    feature_names: list[str]
    tag_names: list[str]
    action_names: list[str]
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "architecture": self.architecture,
            "config": dict(self.config),
            "feature_names": list(self.feature_names),
            "tag_names": list(self.tag_names),
            "action_names": list(self.action_names),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()},
            "metadata": dict(self.metadata),
        }


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Write atomically: a reader never sees half a checkpoint."""
    with atomic_writer(path) as handle:
        torch.save(checkpoint.to_dict(), handle)
    return Path(path)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def is_policyeval_checkpoint(path: Path) -> bool:
    """Whether a torch file is in this format, by reading its pickle's bytes (nothing is run)."""
    try:
        return FORMAT.encode() in read_pickle(Path(path))[0]
    except PolicyLoadError:  # not a sound torch file at all: the Metta loader says why
        return False


def _require(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    if key not in raw:
        raise PolicyLoadError(f"{path}: checkpoint has no '{key}'")
    if not isinstance(raw[key], kind):
        raise PolicyLoadError(f"{path}: checkpoint '{key}' should be {kind}, found {type(raw[key]).__name__}")
    return raw[key]


def _names(raw: dict[str, Any], key: str, path: Path) -> list[str]:
    names = _require(raw, key, list, path)
    if not all(isinstance(name, str) for name in names):
        raise PolicyLoadError(f"{path}: checkpoint '{key}' must be a list of strings")
    return names


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint file; every problem is a PolicyLoadError naming the file."""
    path = Path(path)
    raw = load_torch_file(path)  # sizes checked before anything is allocated; no code is run
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise PolicyLoadError(
            f"{path}: not a pytest-policyeval checkpoint (no format '{FORMAT}'); "
            "Metta/PufferLib state dicts load with pytorch://"
        )
    if raw.get("version") != VERSION:
        raise PolicyLoadError(
            f"{path}: checkpoint version {raw.get('version')!r} is not supported (expected {VERSION})"
        )
    state_dict = _require(raw, "state_dict", dict, path)
    if not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise PolicyLoadError(f"{path}: checkpoint 'state_dict' must hold tensors only")
    return Checkpoint(
        architecture=_require(raw, "architecture", str, path),
        config=_require(raw, "config", dict, path),
        feature_names=_names(raw, "feature_names", path),
        tag_names=_names(raw, "tag_names", path),
        action_names=_names(raw, "action_names", path),
        state_dict=state_dict,
        metadata=raw.get("metadata") or {},
    )
