"""Write files so that a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_writer(path: str | Path, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside `path` that replaces it only on success.

    The file gets the permissions any new file of the user gets (0666 less the umask), not the
    temporary file's private 0600. `durable=False` skips the fsync, for files whose loss in a
    power cut costs only time (a cache): readers still never see half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, durable: bool = True) -> Path:
    with atomic_writer(path, durable) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, durable: bool = True) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), durable)
