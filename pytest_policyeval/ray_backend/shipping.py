"""Files the nodes need, taken there once each: policy checkpoints, Metta configs, a task's maps.

The caller puts each distinct file into Ray's object store once (`Shipment`); a task that needs it
gets a reference. On a node, the first task to need a file writes it under the node's folder,
named by its digest (`materialize`); later tasks there find it on disk and never fetch it again,
so a checkpoint crosses the network once per node, not once per task.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MAX_FILE_BYTES = 8 << 30  # a checkpoint larger than this is not shipped whole through the object store


class ShippingError(RuntimeError):
    """A file could not be taken to a node: too large, unreadable, or changed on its way."""


@dataclass(frozen=True)
class Shipped:
    name: str  # the file's own name (formats are told by content; labels come from the URI)
    sha256: str
    size: int
    ref: Any  # the ObjectRef of its bytes


class Shipment:
    """The caller's side: each distinct file put into the object store once per run."""

    def __init__(self, ray: Any):
        self._ray = ray
        self._files: dict[Path, Shipped] = {}

    def file(self, path: Path) -> Shipped:
        path = Path(path).resolve()
        if path not in self._files:
            try:
                size = path.stat().st_size
                if size > MAX_FILE_BYTES:
                    raise ShippingError(f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} shipped")
                data = path.read_bytes()
            except OSError as exc:
                raise ShippingError(f"{path}: {exc.strerror or type(exc).__name__}") from None
            digest = hashlib.sha256(data).hexdigest()
            self._files[path] = Shipped(path.name, digest, len(data), self._ray.put(data))
        return self._files[path]

    @property
    def count(self) -> int:
        return len(self._files)


def node_folder(node_id: str) -> Path:
    """This node's folder for shipped files (per node id, so nodes sharing a disk stay apart)."""
    safe = "".join(c for c in node_id if c.isalnum())[:16] or "node"
    return Path(tempfile.gettempdir()) / f"pytest-policyeval-ray-{os.getuid()}" / safe


def materialize(ray: Any, shipped: Shipped, target: Path) -> bool:
    """Write `shipped` at `target` unless this node has it already; True if it was written."""
    from pytest_policyeval.atomic import write_bytes_atomic

    if target.is_file() and not target.is_symlink() and target.stat().st_size == shipped.size:
        return False
    data = ray.get(shipped.ref)
    if hashlib.sha256(data).hexdigest() != shipped.sha256:
        raise ShippingError(f"{shipped.name}: its bytes changed on the way to this node")
    write_bytes_atomic(target, data)
    return True


def file_path(folder: Path, shipped: Shipped) -> Path:
    return folder / "files" / shipped.sha256 / shipped.name


def tree_path(folder: Path, files: dict[str, Shipped]) -> Path:
    """Where a task's files (relative paths under its suite's folder) are laid out on a node."""
    manifest = sorted((rel, shipped.sha256) for rel, shipped in files.items())
    return folder / "trees" / hashlib.sha256(repr(manifest).encode()).hexdigest()[:32]


def relative_name(rel: str) -> PurePosixPath:
    """A task file's path under its folder; anything that could leave the folder is refused."""
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or any(part in ("", ".", "..") for part in path.parts):
        raise ShippingError(f"{rel[:200]}: not a path inside the suite's folder")
    return path
