"""The hard limit of a task on a Ray worker (ray_backend/hang.py), without a cluster: the watch is
plain threads and faulthandler, so it is tried here in this process."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_policyeval.ray_backend import hang
from pytest_policyeval.results import TaskResult


def planned() -> TaskResult:
    return TaskResult(
        suite="s", task="t/a", policy_uri="random://", policy_label="random", order=(0, 0, 0),
        threshold=None, higher_is_better=True, gate="sequential", num_episodes=10, seed=0,
    )  # fmt: skip


def task(max_time_s: float) -> SimpleNamespace:
    return SimpleNamespace(settings=SimpleNamespace(max_time_s=max_time_s))


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes: list[int] = []
    monkeypatch.setattr(hang, "end_process", codes.append)
    monkeypatch.setattr(hang, "EXIT_AFTER_S", 0.01)
    return codes


def test_a_rollout_that_outlives_its_hard_limit_is_reported_hung_and_its_process_ends(
    tmp_path: Path, ended: list[int]
) -> None:
    tuning = hang.RayTuning()
    tuning.watch.record = tmp_path / "hung" / "record"
    release = threading.Event()

    def stuck_in_a_step() -> None:
        with tuning.hard_limit("t/a", task(max_time_s=0.2)):  # hard limit 2.25 s
            release.wait(60)

    start = time.monotonic()
    try:
        result, films = hang.run_watched(stuck_in_a_step, planned, tuning.watch)
    finally:
        release.set()
    assert 2.25 <= time.monotonic() - start < 5
    assert result.error.startswith("the task hung: still running 2.25s after it started (max_time_s=0.2)")
    assert "stuck_in_a_step" in result.traceback and "release.wait(60)" in result.traceback
    assert films == []
    time.sleep(0.2)
    assert ended == [70]


def test_time_before_the_rollout_does_not_count_and_a_finished_task_returns_its_value(
    tmp_path: Path, ended: list[int]
) -> None:
    tuning = hang.RayTuning()
    tuning.watch.record = tmp_path / "record"

    def loads_slowly_then_plays() -> tuple[str, list]:
        time.sleep(2.5)  # loading a policy: longer than the hard limit, but not in the rollout
        with tuning.hard_limit("t/a", task(max_time_s=0.2)):
            time.sleep(0.1)
        return "played", []

    assert hang.run_watched(loads_slowly_then_plays, planned, tuning.watch) == ("played", [])
    assert not tuning.watch.record.exists() and ended == []

    def fails() -> None:
        raise ValueError("engine said no")

    with pytest.raises(ValueError, match="engine said no"):
        hang.run_watched(fails, planned, tuning.watch)


def test_a_retry_after_faulthandler_ended_a_hung_process_reports_the_hang_instead_of_playing(
    tmp_path: Path, ended: list[int]
) -> None:
    watch = hang.Watch(record=tmp_path / "record")
    watch.record.write_text(
        'Timeout (0:00:12)!\nThread 0x01 (most recent call first):\n  File "env.py", line 9 in step\n'
    )
    calls: list[int] = []
    result, _ = hang.run_watched(lambda: calls.append(1), planned, watch)
    assert calls == [] and ended == []
    assert result.error.startswith("the task hung") and 'File "env.py", line 9 in step' in result.traceback
