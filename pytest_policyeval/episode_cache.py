"""Per-episode results kept on disk, under a key of everything that decides them.

    DATA_DIR/episodes/<key>/<first>-<last>.json   the episodes of one round, written atomically

The key hashes what was evaluated: the policy's identity (its checkpoint's digest, not its URI),
the task's definition (every setting that changes an episode, the map's bytes, the suite seed),
the npc policy, the engine and package versions, the Metta preset and the device. Gate settings
(threshold, margin, error rates, caps) are not in it: changing them re-decides from the same
episodes. An episode is found by its index, so a resumed run plays only the indices it lacks and a
longer sequential gate continues where a shorter one stopped. Round files never overlap
within one writer; readers merge every file of a key, so files written by parallel workers or
interrupted runs all count. An unreadable file is ignored (its episodes are played again).

    DATA_DIR/episodes/hints/<hint>.json   the keys a task's episodes were last kept under

A hint is made from what a caller knows without loading anything (the task and the policy's
URI): the Ray backend's caller, which never loads policies, sends a job the episodes kept under
its hint's keys, and the worker uses those whose key is the one it computes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 64 << 20  # a round file larger than this is not ours
MAX_HINT_KEYS = 8  # keys remembered per hint (a policy file that changes gets a new key each time)
SCHEMA = 2  # the layout of a round file and of the key; bump to leave old files unread


@dataclass(frozen=True)
class CachedEpisode:
    index: int
    seed: int
    rewards: list[float]  # per scored agent
    steps: int
    policy_agents: list[int]


def cache_key(parts: dict[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def plain(value: Any) -> Any:
    """What JSON cannot hold, as JSON: a numpy number as its value, an array by its dtype, shape and
    a digest of every byte (its str() would elide the middle of a large one), anything else as
    its str() (a registration's kwargs may hold any of these)."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)  # 0-d comes back 1-d: the shape is the value's own
        digest = hashlib.sha256(
            data.view(np.uint8).tobytes() if data.dtype != object else repr(data).encode()
        )
        return {"ndarray": str(value.dtype), "shape": list(value.shape), "sha256": digest.hexdigest()}
    return str(value)


class EpisodeCacheWarning(UserWarning):
    """The cache could not keep a round: the results stand, the next run plays it again."""


class EpisodeCache:
    def __init__(self, root: Path):
        self.root = Path(root) / "episodes"
        self._warned = False  # one warning a run: a full disk fails every round alike

    def _could_not_write(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            # Shown, never raised: under -W error it would make the task that ran fine an error.
            with warnings.catch_warnings():
                warnings.simplefilter("always", EpisodeCacheWarning)
                warnings.warn(
                    f"the episode cache cannot be written at {self.root} ({type(exc).__name__}: "
                    f"{exc}); results are unaffected, but the next run plays these episodes again",
                    EpisodeCacheWarning,
                    stacklevel=3,
                )

    def load(self, key: str) -> dict[int, CachedEpisode]:
        found: dict[int, CachedEpisode] = {}
        if not KEY.match(key):  # a key names a folder: nothing else may
            return found
        folder = self.root / key
        if folder.is_symlink():  # another key's folder, perhaps: its episodes are not this key's
            return found
        try:
            # Oldest first, so that an episode played again (a check refused the kept one) wins.
            files = sorted(folder.glob("*.json"), key=lambda path: (_written(path), path.name))
        except OSError:
            return found
        for path in files:
            for episode in _read(path, key):
                found[episode.index] = episode
        return found

    def store(self, key: str, episodes: list[CachedEpisode], meta: dict[str, Any]) -> None:
        """Write one round's episodes; a failure to write loses only the cache, never a result."""
        if not episodes or not KEY.match(key):
            return
        from pytest_policyeval.atomic import write_text_atomic

        indices = sorted({e.index for e in episodes})
        first, last = indices[0], indices[-1]
        name = f"{first:07d}-{last:07d}"
        if len(indices) != last - first + 1:
            # Some of a round (those a check refused, played again): a name of their own, so
            # that they never replace the whole round's file.
            name += "-" + hashlib.sha256(json.dumps(indices).encode()).hexdigest()[:12]
        body = {"meta": meta, "episodes": [asdict(e) for e in sorted(episodes, key=lambda e: e.index)]}
        try:
            folder = self.root / key
            if folder.is_symlink():  # load() reads no linked folder: nor is one written through
                raise ValueError(f"{folder.name} is a link")
            # No fsync: a round lost in a power cut is only played again.
            write_text_atomic(folder / f"{name}.json", json.dumps(body, default=plain), durable=False)
        except (OSError, ValueError, TypeError, RecursionError) as exc:
            self._could_not_write(exc)

    def remember(self, hint: str, key: str) -> None:
        """Note that `hint`'s episodes are kept under `key` (first of the few remembered)."""
        known = self.recall(hint)
        keys = [key, *(k for k in known if k != key)][:MAX_HINT_KEYS]
        if keys == known or not KEY.match(hint) or not KEY.match(key):
            return
        from pytest_policyeval.atomic import write_text_atomic

        with contextlib.suppress(OSError, ValueError):
            write_text_atomic(self.root / "hints" / f"{hint}.json", json.dumps(keys), durable=False)

    def recall(self, hint: str) -> list[str]:
        if not KEY.match(hint):
            return []
        raw = _read_bounded(self.root / "hints" / f"{hint}.json", 64 << 10)
        try:
            keys = json.loads(raw) if raw is not None else []
        except (ValueError, RecursionError):
            return []
        if not isinstance(keys, list):
            return []
        return [k for k in keys if isinstance(k, str) and KEY.match(k)][:MAX_HINT_KEYS]


KEY = re.compile(r"^[0-9a-f]{40}$")


def _written(path: Path) -> int:
    try:
        return os.lstat(path).st_mtime_ns
    except OSError:
        return 0


def _read_bounded(path: Path, limit: int) -> bytes | None:
    """A plain file's bytes, if it is one and no larger than `limit` (no links, FIFOs, devices)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            raw = handle.read(limit + 1)
    except OSError:
        return None
    return raw if len(raw) <= limit else None


def _read(path: Path, key: str) -> list[CachedEpisode]:
    """A round file's episodes; anything but a plain, bounded file of the right shape, written
    under `key` (its meta, the key's parts, hashes to it: a file copied from another key's folder
    does not), reads as none."""
    # Never follow a link or open a FIFO or device.
    raw = _read_bounded(path, MAX_FILE_BYTES)
    if raw is None:
        return []
    try:
        data = json.loads(raw.decode("utf-8"))
        if cache_key(data["meta"]) != key:
            return []
        return [
            CachedEpisode(
                index=_integer(e["index"]),
                seed=_integer(e["seed"]),
                rewards=[_number(r) for r in _items(e["rewards"])],
                steps=_integer(e["steps"]),
                policy_agents=[_integer(a) for a in _items(e["policy_agents"])],
            )
            for e in _items(data["episodes"])
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError):
        return []


# As written, or not ours: a string, a bool or a fraction where a count belongs is never converted.
def _integer(value: Any) -> int:
    if type(value) is not int:
        raise TypeError("not an integer")
    return value


def _number(value: Any) -> float:
    if type(value) not in (int, float):
        raise TypeError("not a number")
    return float(value)


def _items(value: Any) -> list[Any]:
    if type(value) is not list:
        raise TypeError("not a list")
    return value
