"""The hard time limit of a task on a Ray worker, as xdist workers have it (watchdog.py).

`max_time_s` is checked between steps, so a step that never returns needs more. The evaluation
runs in a thread of the job; `RayTuning.hard_limit` arms the watch around the rollout (policy
loading before it does not count), and the job's own thread, waiting, reports the task as hung
once the rollout outlives its limit, with the stack it was stuck in. The stuck thread cannot be
stopped, so the worker process ends moments after its result has gone (Ray starts another).

A hang that holds the GIL stops the waiting thread too. Then faulthandler's own C thread writes
the stack to a record on the node and ends the process; Ray retries the task, and the retry on
that node finds the record and reports the hang instead of playing it again.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_policyeval.watchdog import hard_limit_s
from pytest_policyeval.worker import ProcessTuning

BACKSTOP_S = 10.0  # faulthandler ends a process whose hang kept the waiting thread from acting
EXIT_AFTER_S = 2.0  # a hung worker process ends this long after its result was returned
POLL_S = 0.25
end_process = os._exit  # how a hung worker process ends (without cleanup: a thread is stuck)


@dataclass
class Watch:
    record: Path | None = None  # where faulthandler leaves the stack of a GIL-holding hang
    armed_at: float | None = None  # when the rollout began (monotonic), while it runs
    limit_s: float = float("inf")
    max_time_s: float = 0.0


@dataclass(eq=False)
class RayTuning(ProcessTuning):
    """A Ray worker's process tuning: Ray sets its threads (OMP_NUM_THREADS from the task's CPUs)
    and places it; what it adds is the hard limit around each rollout."""

    watch: Watch = field(default_factory=Watch)

    @contextmanager
    def hard_limit(self, nodeid: str, task: Any) -> Iterator[None]:
        watch = self.watch
        watch.limit_s, watch.max_time_s = hard_limit_s(task.settings.max_time_s), task.settings.max_time_s
        handle = None
        if watch.record is not None:
            watch.record.parent.mkdir(parents=True, exist_ok=True)
            handle = open(watch.record, "w")  # noqa: SIM115 (faulthandler writes to it while armed)
            faulthandler.dump_traceback_later(watch.limit_s + BACKSTOP_S, exit=True, file=handle)
        watch.armed_at = time.monotonic()
        try:
            yield
        finally:
            watch.armed_at = None
            if handle is not None:
                faulthandler.cancel_dump_traceback_later()
                handle.close()


def message(watch: Watch) -> str:
    return (
        f"the task hung: still running {watch.limit_s:g}s after it started (max_time_s="
        f"{watch.max_time_s:g}), so its Ray worker process was ended; the stack it was stuck in:"
    )


def run_watched(evaluate: Callable[[], Any], planned: Callable[[], Any], watch: Watch) -> tuple[Any, list]:
    """`evaluate()`, or the planned result with the hang as its error if its rollout hung."""
    if watch.record is not None:
        with contextlib.suppress(OSError):
            earlier = watch.record.read_text()
            if earlier.startswith("Timeout ("):  # an earlier attempt of this run's task, ended here
                return _hung(
                    planned(), "the task hung, so its Ray worker process was ended; the stack:", earlier
                )
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = evaluate()
        except BaseException as exc:  # handed to the job's thread, which raises it
            box["error"] = exc

    thread = threading.Thread(target=target, name="policyeval-task", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_S)
        armed = watch.armed_at
        if thread.is_alive() and armed is not None and time.monotonic() - armed > watch.limit_s:
            frame = sys._current_frames().get(thread.ident or 0)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            faulthandler.cancel_dump_traceback_later()
            threading.Timer(EXIT_AFTER_S, end_process, args=(70,)).start()  # after the result is sent
            return _hung(planned(), message(watch), stack)
    if watch.record is not None:
        watch.record.unlink(missing_ok=True)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _hung(result: Any, text: str, stack: str) -> tuple[Any, list]:
    result.error = text
    result.traceback = stack.strip()
    return result, []
