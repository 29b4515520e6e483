"""How an evaluating process shares the machine and is kept within its limits.

Under xdist several worker processes evaluate side by side on the same cores: each gets its share
of the cores for torch's threads and is bound to its own slice of them, and a task that outlives
its hard limit ends its worker (watchdog.py) so the controller can report it. The cyclic garbage
collector is told to leave the long-lived loaded objects alone once the first rollout has run.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_policyeval.task import Task
    from pytest_policyeval.watchdog import HangWatch


@dataclass(eq=False)
class ProcessTuning:
    is_worker: bool = False  # an xdist worker, whose controller reports a task that ends it
    worker_count: int = 1  # processes evaluating side by side (xdist workers), sharing the cores
    worker_index: int = 0  # this xdist worker's number (gwN)
    shared_tmp: Callable[[], Path] | None = None  # a temp dir all of this run's processes share
    _heap_frozen: bool = False

    def after_load(self) -> None:
        """Once a policy is loaded (torch may be imported now): share the cores, bind to a slice."""
        self.share_cores()
        self.pin_to_cores()

    def pin_to_cores(self) -> None:
        """Bind xdist worker i to its own slice of the allowed cores (Linux; N workers <= cores).

        Each worker then keeps its caches and never has the scheduler move it onto the core the
        other worker is using: -n 2 on 2 cores ran about 5% faster. Done when a worker first loads
        a policy, so test runs that evaluate none are never bound (processes they start would
        inherit it). An explicit OMP_NUM_THREADS means the user manages threads: left alone.
        """
        if not hasattr(os, "sched_setaffinity") or self.worker_count <= 1 or "OMP_NUM_THREADS" in os.environ:
            return
        allowed = sorted(os.sched_getaffinity(0))
        share = len(allowed) // self.worker_count
        if share < 1:
            return
        slot = self.worker_index % self.worker_count
        os.sched_setaffinity(0, allowed[slot * share : (slot + 1) * share])

    def share_cores(self) -> None:
        """Give each of N worker processes 1/N of the cores for torch's thread pool.

        torch starts one thread per core in every process; with xdist workers on the same cores
        they oversubscribe them (on 2 cores, `-n 2` ran 2.5x slower than serial). An explicit
        OMP_NUM_THREADS is left alone.
        """
        torch = sys.modules.get("torch")  # only policies that use torch load it
        if torch is None or self.worker_count <= 1 or "OMP_NUM_THREADS" in os.environ:
            return
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.worker_count))

    def freeze_heap_once(self) -> None:
        """After the first rollout, move every object alive out of the cyclic collector's sight.

        By then torch, mettagrid and the policies are loaded, and they live until the process
        ends. Each full collection otherwise rescans them (about 0.15 s here), and pytest collects
        five times at exit before Python's own shutdown: the exit of every process (each xdist
        worker too) took about 1.3 s, now 0.2 s. Frozen objects are still freed by reference
        counting; only reference cycles among them are kept.
        """
        if self._heap_frozen:
            return
        self._heap_frozen = True
        gc.collect(1)  # the young garbage first, so little of it is kept
        gc.freeze()

    def hang_watch(self) -> HangWatch | None:
        from pytest_policyeval.watchdog import HangWatch

        return HangWatch(self.shared_tmp()) if self.shared_tmp else None

    @contextmanager
    def hard_limit(self, nodeid: str, task: Task) -> Iterator[None]:
        """On an xdist worker, end the process if the rollout outlives its hard limit (watchdog.py)."""
        watch = self.hang_watch() if self.is_worker and nodeid else None
        if watch is None:
            yield
            return
        from pytest_policyeval.watchdog import hard_limit_s

        limit = hard_limit_s(task.settings.max_time_s)
        message = (
            f"the task hung: still running {limit:g}s after it started (max_time_s="
            f"{task.settings.max_time_s:g}), so its worker was stopped; the stack it was stuck in:"
        )
        with watch.armed(nodeid, limit, message):
            yield
