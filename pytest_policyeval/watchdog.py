"""A hard time limit for a rollout stuck where Python cannot interrupt it (inside native code).

`max_time_s` is checked between steps, which catches a slow task but not a step that never
returns. Under xdist, each worker arms `faulthandler` around a rollout: if the rollout outlives
its hard limit, faulthandler's own C thread (it needs no GIL) writes the stack to a file in the
run's shared temp dir and ends the worker. xdist reports the task as crashed, the controller finds
the file and records the task as hung, and a fresh worker goes on with the other tasks.

A serial run has no second process to carry on, so it is not armed: use `-n 1` for the limit.
"""

from __future__ import annotations

import faulthandler
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FOLDER = "policyeval-hung"


def hard_limit_s(max_time_s: float) -> float:
    """A quarter more than the soft limit, plus two seconds: the soft check gets its chance first."""
    return 1.25 * max_time_s + 2.0


class HangWatch:
    def __init__(self, shared_dir: Path):
        self.folder = shared_dir / FOLDER

    def _path(self, nodeid: str) -> Path:
        return self.folder / (hashlib.sha256(nodeid.encode()).hexdigest()[:24] + ".txt")

    @contextmanager
    def armed(self, nodeid: str, limit_s: float, message: str) -> Iterator[None]:
        """Within the block, outliving `limit_s` ends this process, leaving `message` and the stack."""
        path = self._path(nodeid)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            handle.write(message + "\n")
            handle.flush()
            faulthandler.dump_traceback_later(limit_s, exit=True, file=handle)
            try:
                yield
            finally:
                faulthandler.cancel_dump_traceback_later()
        path.unlink(missing_ok=True)

    def verdict(self, nodeid: str) -> tuple[str, str] | None:
        """(message, stack) left by a process that the watch ended while running `nodeid`.

        The file is written when the watch is armed, so its message alone proves nothing: only
        faulthandler's dump ("Timeout (h:mm:ss)!" and the stack) after it says the limit was hit.
        A worker killed for another reason (a signal, out of memory) leaves the message alone.
        """
        try:
            text = self._path(nodeid).read_text()
        except OSError:
            return None
        message, _, stack = text.partition("\n")
        stack = stack.strip()
        return (message, stack) if stack.startswith("Timeout (") else None
