"""Whether a run's results are the whole run: what every results document says about itself.

A run is complete when every task item that was collected (after -k, deselection and sharding)
has a result (an error counts: it is a result), and interrupted when pytest stopped on Ctrl-C or a
signal. `passed` may be true only for a complete, uninterrupted run whose gates all passed: a
document never claims more than happened. Knows nothing of pytest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SUITE_SUFFIXES = (".yaml", ".yml")
MAX_LISTED = 20  # missing tasks named in a document; the count is always there


def is_task_id(nodeid: str) -> bool:
    """A suite task's node id (`suites/x.yaml::category/task[policy]`), not a Python test's."""
    path, _, rest = nodeid.partition("::")
    return bool(rest) and path.endswith(SUITE_SUFFIXES)


def status(expected: Iterable[str] | None, reported: Iterable[str], interrupted: bool) -> dict[str, Any]:
    """The run status fields of a results document.

    `expected` None means the collected tasks are unknown (no collection reached this process),
    so the run cannot be called complete.
    """
    reported = set(reported)
    wanted = sorted(expected) if expected is not None else None
    missing = [nodeid for nodeid in wanted if nodeid not in reported] if wanted is not None else []
    return {
        "complete": wanted is not None and not missing,
        "interrupted": interrupted,
        "tasks_expected": len(wanted) if wanted is not None else None,
        "tasks_with_results": len(reported),
        "missing_tasks": missing[:MAX_LISTED],
    }


def run_passed(run: dict[str, Any], gates_passed: bool) -> bool:
    """`passed` as a document may state it: only for a whole, uninterrupted run."""
    return bool(gates_passed and run.get("complete") is True and not run.get("interrupted"))


def describe(run: dict[str, Any]) -> str | None:
    """One line for the terminal when the results are not the whole run, else None."""
    if run.get("complete") is True:
        return None
    have, want = run.get("tasks_with_results"), run.get("tasks_expected")
    counted = f"{have} of {want}" if want is not None else f"{have}"
    what = "INTERRUPTED" if run.get("interrupted") else "INCOMPLETE"
    return f"run {what}: {counted} tasks have results; the results files say passed: false"
