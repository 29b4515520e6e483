"""Where fetched policies live: a content-addressed cache shared by runs, and a per-run record.

    DATA_DIR/blobs/sha256-<hex>/<file name>   the bytes, stored once whatever URI named them
    DATA_DIR/refs/<scheme>/<hash of uri>.json what a URI last resolved to (digest, version, ETag)
    DATA_DIR/locks/                           one lock per URI: one process downloads at a time

A ref lets a source revalidate (an HTTP ETag, an S3 ETag, a W&B digest) instead of downloading
again, and lets a run go on offline with the copy it has. Files appear atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from filelock import FileLock

from pytest_policyeval.atomic import write_text_atomic
from pytest_policyeval.policies.sources import Fetched, FetchError

ENV_VAR = "POLICYEVAL_DATA_DIR"


def default_data_dir() -> Path:
    """$POLICYEVAL_DATA_DIR, else the user's cache directory (~/.cache/pytest-policyeval on Linux)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("pytest-policyeval")


# What one download may take: its size and its whole time (each read also has its own timeout).
MAX_DOWNLOAD_BYTES = int(os.environ.get("POLICYEVAL_MAX_DOWNLOAD_BYTES", 8 << 30))
DOWNLOAD_DEADLINE_S = float(os.environ.get("POLICYEVAL_DOWNLOAD_DEADLINE_S", 1800))


def chunks(handle: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    """A binary stream (a file, an HTTP response) in pieces, for `DataCache.store`.

    `read1` returns what one read brings rather than waiting for `size` bytes, so a server that
    sends a byte a second cannot hold a read (and the deadline check after it) for days.
    """
    read = getattr(handle, "read1", handle.read)
    while chunk := read(size):
        yield chunk


def check_announced(uri: str, size: int | None) -> None:
    """Refuse before downloading when the store already says the file is over the size limit."""
    if size is not None and size > MAX_DOWNLOAD_BYTES:
        raise FetchError(
            f"{uri}: the store announces {size} bytes, more than {MAX_DOWNLOAD_BYTES} "
            "(POLICYEVAL_MAX_DOWNLOAD_BYTES); nothing was downloaded"
        )


def bounded(
    pieces: Iterable[bytes],
    uri: str,
    max_bytes: int | None = None,
    deadline_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[bytes]:
    """`pieces`, or a FetchError once they pass the size limit or the deadline (nothing is kept)."""
    max_bytes = MAX_DOWNLOAD_BYTES if max_bytes is None else max_bytes
    deadline_s = DOWNLOAD_DEADLINE_S if deadline_s is None else deadline_s
    start, total = clock(), 0
    for piece in pieces:
        total += len(piece)
        if total > max_bytes:
            raise FetchError(
                f"{uri}: the download is larger than {max_bytes} bytes (POLICYEVAL_MAX_DOWNLOAD_BYTES); "
                "nothing was kept"
            )
        if clock() - start > deadline_s:
            raise FetchError(
                f"{uri}: the download took longer than {deadline_s:g} s (POLICYEVAL_DOWNLOAD_DEADLINE_S, "
                f"{total} bytes so far); nothing was kept"
            )
        yield piece


def uri_key(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:32]


class DataCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def lock(self, uri: str) -> FileLock:
        path = self.root / "locks" / f"{uri_key(uri)}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(path)

    def _ref_path(self, scheme: str, uri: str) -> Path:
        return self.root / "refs" / scheme / f"{uri_key(uri)}.json"

    def ref(self, scheme: str, uri: str) -> dict[str, Any] | None:
        """What `uri` last resolved to, if its bytes are still in the cache."""
        try:
            raw = json.loads(self._ref_path(scheme, uri).read_text())
        except (OSError, ValueError):
            return None
        return raw if Path(raw.get("path", "")).is_file() else None

    def cached(
        self, uri: str, ref: dict[str, Any], offline: bool = False, version: str | None = None
    ) -> Fetched:
        """The copy a ref points at, served without downloading (`offline`: the store was unreachable)."""
        return Fetched(uri, Path(ref["path"]), ref["digest"], version or ref.get("version"), True, offline)

    def set_ref(self, scheme: str, uri: str, fetched: Fetched, **extra: Any) -> None:
        write_text_atomic(self._ref_path(scheme, uri), json.dumps({**fetched.describe(), **extra}, indent=1))

    def blob(self, digest: str, name: str) -> Path | None:
        path = self.root / "blobs" / digest.replace(":", "-") / name
        return path if path.is_file() else None

    def store(self, chunks: Iterable[bytes], name: str, check: Callable[[Path], None] | None = None) -> Path:
        """Stream bytes into the cache; returns their path under blobs/ (keyed by their sha256).

        `check` may inspect the complete temporary file (a size or checksum from the store) and
        raise: nothing is kept then.
        """
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=incoming, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    digest.update(chunk)
                    handle.write(chunk)
            if check is not None:
                check(Path(tmp))
            final = self.root / "blobs" / f"sha256-{digest.hexdigest()}" / name
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return final


def blob_digest(path: Path) -> str:
    """The digest a blob's directory names: blobs/sha256-<hex>/file -> sha256:<hex>."""
    return path.parent.name.replace("-", ":", 1)


def fetch_once(uri: str, source: Any, cache: DataCache, options: Any) -> Fetched:
    """Fetch `uri` once per run: xdist workers share `run_dir` (pytest's shared base temp).

    The first worker to take the lock fetches and records the result, or the error; the others
    read the record and never touch the network. Without a run dir (one process) it just fetches.
    """
    run_dir = options.run_dir
    if run_dir is None:
        with cache.lock(uri):
            return source.fetch(uri, cache, options)
    record = run_dir / "policyeval-fetched" / f"{uri_key(uri)}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(record.with_suffix(".lock")):
        if record.is_file():
            raw = json.loads(record.read_text())
            if "error" in raw:
                raise FetchError(raw["error"])
            return Fetched.from_dict(raw)
        try:
            with cache.lock(uri):
                fetched = source.fetch(uri, cache, options)
        except FetchError as exc:
            write_text_atomic(record, json.dumps({"error": str(exc)}))
            raise
        write_text_atomic(record, json.dumps(fetched.describe()))
        return fetched
