"""Reading a policy's files while something may be saving them.

A trainer that saves `latest.pt` while CI evaluates it replaces the file between two of the
loader's reads: the weights could come from one file and the digest that keys their episodes
from the other, and every later run of the second would take the first's episodes for its own.
A load is therefore bracketed by the files' identities (inode, size, times): if any changed, what
was read is not one file, the load is refused and `load_policy` tries again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_policyeval.policies.base import PolicyLoadError

ATTEMPTS = 3  # loads tried while a file keeps changing under them


class FileChanged(PolicyLoadError):
    """A file was replaced or written while a policy was read from it."""


def _identity(path: Path) -> tuple[int, ...] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None  # gone: the loader says so, or the check after it does
    # A replacement is a new inode; a write in place moves mtime and ctime (which no one can set).
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


@contextmanager
def read_steadily(source: str, *paths: Path | None) -> Iterator[None]:
    """Raises FileChanged, naming `source`, if any of `paths` changed while the block ran."""
    files = [Path(path) for path in paths if path is not None]
    before = [_identity(path) for path in files]

    def changed() -> FileChanged | None:
        for path, was in zip(files, before, strict=True):
            if _identity(path) != was:
                return FileChanged(
                    f"{source}: {path.name} changed while it was read (is it being saved?): "
                    "the weights and the digest recorded for them could be of different files"
                )
        return None

    try:
        yield
    except Exception:
        # A torn read (a save in place) fails the load: not the checkpoint's fault if it moved.
        moved = changed()
        if moved is not None:
            raise moved from None
        raise
    moved = changed()
    if moved is not None:
        raise moved
