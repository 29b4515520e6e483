"""Parallel and split runs: a dying worker loses only its own task; shards merge into one result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import write_suite

SUITE = """
name: par
seed: 11
defaults: {num_episodes: 3, max_steps: 20}
tasks:
  - {name: nav/easy, map: maps/easy.map, threshold: 0.5}
  - {name: nav/hard, map: maps/hard.map, threshold: 0.5}
  - {name: nav/easy2, map: maps/easy.map, threshold: 0.5}
  - {name: other/easy, map: maps/easy.map}
"""
# Kills the worker process (no cleanup, no report) when it starts the task named in KILL_TASK.
KILLER = """
import os, signal
def pytest_runtest_call(item):
    if os.environ.get("KILL_TASK") and os.environ["KILL_TASK"] in item.nodeid:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def _tasks(path: Path) -> dict:
    document = json.loads(path.read_text())
    return {
        task: detail
        for policy in document["policies"]
        for checkpoint in policy["checkpoints"]
        for task, detail in checkpoint["metrics"]["tasks"].items()
    }


def test_a_killed_worker_loses_only_its_task(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_suite(pytester.path, SUITE)
    pytester.makeconftest(KILLER)
    serial = pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", "random://", "--eval-json", "s.json"
    )
    serial.assert_outcomes(passed=3, failed=1)
    monkeypatch.setenv("KILL_TASK", "nav/easy2")
    killed = pytester.runpytest_subprocess(
        "-p",
        "no:importnb",
        "-n",
        "2",
        "--policy-uri",
        "random://",
        "--eval-json",
        "k.json",
        "--eval-yaml",
        "k.yaml",
    )
    killed.assert_outcomes(passed=2, failed=2)
    killed.stdout.fnmatch_lines(["*crashed while running*nav/easy2*", "*nav/easy2*ERROR*"])
    reference, survivors = _tasks(pytester.path / "s.json"), _tasks(pytester.path / "k.json")
    assert sorted(survivors) == sorted(reference)
    for task in ("nav/easy", "nav/hard", "other/easy"):
        keys = ("episode_rewards", "score", "passed")
        assert {k: survivors[task][k] for k in keys} == {k: reference[task][k] for k in keys}
    lost = survivors["nav/easy2"]
    assert lost["error"].startswith("the test process died while running this task")
    assert lost["threshold"] == 0.5 and lost["num_episodes"] == 3 and lost["episode_rewards"] == []
    assert "nav" in (pytester.path / "k.yaml").read_text()
