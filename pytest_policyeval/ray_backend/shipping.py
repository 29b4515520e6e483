"""Files the nodes need, taken there once each: policy checkpoints, Metta configs, a task's maps.

The caller puts each distinct file into Ray's object store once (`Shipment`); a task that needs it
gets a reference. On a node, the first task to need a file writes it under the node's folder,
named by its digest (`materialize`); later tasks there find it on disk and never fetch it again,
so a checkpoint crosses the network once per node, not once per task.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import time
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


FILES_DIR_VAR = "POLICYEVAL_RAY_FILES_DIR"
KEEP_DAYS = 7  # shipped files no task used for this long are removed when a new one arrives
# Copies this process has checked against their digest, with the file's identity then: a copy
# removed or replaced since (a temp cleaner, a user) no longer matches and is checked again.
_verified: dict[Path, tuple[int, int, int]] = {}


def node_folder() -> Path:
    """This machine's folder of shipped files, this user's alone (0700, owned, not a link):
    $POLICYEVAL_RAY_FILES_DIR where a node sets it (a local disk), else one in the temp folder.

    Files are named by their digest, so a later run, or another node sharing the disk, finds a
    copy already there and fetches nothing."""
    chosen = os.environ.get(FILES_DIR_VAR)
    folder = Path(chosen) if chosen else Path(tempfile.gettempdir()) / f"pytest-policyeval-ray-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError as exc:
        raise ShippingError(f"{folder}: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ShippingError(f"{folder}: not a folder of this user's own; remove it or set TMPDIR")
    if info.st_mode & 0o077:
        folder.chmod(0o700)  # ours, but others could read or write it: no longer
    return folder


def materialize(ray: Any, shipped: Shipped, target: Path) -> bool:
    """Write `shipped` at `target` unless this node has it already; True if it was written.

    A copy already there is used once this process has checked its digest (a copy damaged or
    replaced since is written again)."""
    from pytest_policyeval.atomic import write_bytes_atomic

    now = _identity(target)
    if (now is not None and _verified.get(target) == now) or _intact(target, shipped):
        _remember(target)
        with contextlib.suppress(OSError):
            os.utime(target.parent)  # in use: not pruned
        return False
    data = ray.get(shipped.ref)
    if hashlib.sha256(data).hexdigest() != shipped.sha256:
        raise ShippingError(f"{shipped.name}: its bytes changed on the way to this node")
    prune(target.parent.parent)
    write_bytes_atomic(target, data)
    _remember(target)
    return True


def _identity(target: Path) -> tuple[int, int, int] | None:
    try:
        info = target.lstat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None


def _remember(target: Path) -> None:
    identity = _identity(target)
    if identity is not None:
        _verified[target] = identity


def _intact(target: Path, shipped: Shipped) -> bool:
    try:
        if target.is_symlink() or not target.is_file() or target.stat().st_size != shipped.size:
            return False
        digest = hashlib.sha256()
        with open(target, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest() == shipped.sha256
    except OSError:
        return False


def prune(files: Path, keep_days: float = KEEP_DAYS) -> None:
    """Remove shipped files no task has used for `keep_days` (their folder's time is bumped on use)."""
    cutoff = time.time() - keep_days * 86400
    with contextlib.suppress(OSError):
        for folder in files.iterdir():
            with contextlib.suppress(OSError):
                if folder.is_dir() and not folder.is_symlink() and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)


def file_path(folder: Path, shipped: Shipped) -> Path:
    return folder / "files" / shipped.sha256 / shipped.name


def place(source: Path, target: Path) -> None:
    """Put a task's file in its tree: a hard link to the shipped copy, else a copy moved in
    whole, so a task reading it never sees it half-written."""
    if target.is_file() and not target.is_symlink() and os.path.samefile(source, target):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


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
