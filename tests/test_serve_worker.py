"""`policyeval worker` as real processes over a real Postgres: an evaluation is run and kept, a
worker killed mid-run has its evaluation finished once by another, a user error is final, and
SIGTERM hands the lease back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_policyeval.serve.requests import EvaluationRequest
from pytest_policyeval.serve.store import open_store

pytest.importorskip("psycopg")


def start_worker(
    database: str, tmp_path: Path, lease: float = 5.0, heartbeat: float = 0.5
) -> subprocess.Popen:
    env = {
        **os.environ,
        "POLICYEVAL_REPORTS_DIR": str(tmp_path / "reports"),
        "POLICYEVAL_DATA_DIR": str(tmp_path / "data"),
    }
    command = [sys.executable, "-m", "pytest_policyeval", "worker", "--database", database]
    command += [
        "--work-dir",
        str(tmp_path / "runs"),
        "--lease",
        str(lease),
        "--heartbeat",
        str(heartbeat),
        "--poll",
        "0.2",
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(check, timeout: float = 240.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stop(worker: subprocess.Popen) -> str:
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    return output


def test_a_queued_evaluation_is_run_and_its_results_and_report_kept(database: str, tmp_path: Path) -> None:
    store = open_store(database)
    job, _ = store.enqueue(EvaluationRequest(policy_uri="random://", num_episodes=2), "k1", "api")
    worker = start_worker(database, tmp_path)
    try:
        wait_for(lambda: store.get(job).status in ("done", "error", "system_error"), what="the evaluation")
    finally:
        output = stop(worker)
    assert worker.returncode == 0, output[-2000:]
    done = store.get(job)
    assert done.status == "done" and done.attempts == 1, (done.error, output[-2000:])
    assert done.result["passed"] is False and done.result["complete"] is True  # random:// fails its gates
    document = done.result["document"]
    assert document["policies"][0]["policy_uri"] == "random://"
    assert len(document["policies"][0]["checkpoints"][0]["metrics"]["tasks"]) == 13
    assert (tmp_path / "reports" / job / "results.json").is_file()
    if done.result["report_url"]:
        assert (tmp_path / "reports" / job / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_a_worker_killed_mid_evaluation_has_it_finished_once_by_another(
    database: str, tmp_path: Path
) -> None:
    store = open_store(database)
    job, _ = store.enqueue(EvaluationRequest(policy_uri="random://", num_episodes=150), "long", "api")
    first = start_worker(database, tmp_path, lease=3.0)
    wait_for(lambda: store.get(job).status == "running", what="the first claim")
    time.sleep(1.5)  # its pytest run is under way
    first.kill()  # no cleanup, no goodbye: its child dies with it
    first.communicate(timeout=30)
    second = start_worker(database, tmp_path, lease=3.0)
    try:
        wait_for(lambda: store.get(job).status == "done", what="the retry")
    finally:
        stop(second)
    done = store.get(job)
    assert done.attempts == 2 and done.result["complete"] is True
    outcomes = [a.outcome for a in store.attempts(job)]
    assert outcomes == ["system_error", "done"]
    # The first attempt's run was stopped with its worker: it never wrote results.
    assert not (tmp_path / "runs" / job / "attempt-1" / "results.json").exists()
    assert (tmp_path / "runs" / job / "attempt-2" / "results.json").is_file()


def test_a_user_error_is_final_and_sigterm_hands_the_lease_back(database: str, tmp_path: Path) -> None:
    store = open_store(database)
    missing, _ = store.enqueue(
        EvaluationRequest(policy_uri="file:///no/such/policy.pt", num_episodes=1), "a", "api"
    )
    unknown, _ = store.enqueue(EvaluationRequest(policy_uri="random://", suites=("nosuchsuite",)), "b", "api")
    worker = start_worker(database, tmp_path)
    try:
        wait_for(
            lambda: (
                store.get(missing).status != "queued"
                and store.get(unknown).status not in ("queued", "running")
            ),
            what="both",
        )
        wait_for(lambda: store.get(missing).status not in ("queued", "running"), what="the first")
    finally:
        stop(worker)
    for job, words in ((missing, "policy could not be loaded"), (unknown, "usage error")):
        ended = store.get(job)
        assert (ended.status, ended.attempts) == ("error", 1) and words in ended.error, ended.error
    long_job, _ = store.enqueue(EvaluationRequest(policy_uri="random://", num_episodes=150), "c", "api")
    worker = start_worker(database, tmp_path)
    wait_for(lambda: store.get(long_job).status == "running", what="the claim")
    time.sleep(1.0)
    started = time.monotonic()
    output = stop(worker)
    assert worker.returncode == 0 and time.monotonic() - started < 30, output[-2000:]
    handed_back = store.get(long_job)
    assert (handed_back.status, handed_back.attempts, handed_back.lease_owner) == ("queued", 0, None)


def test_sigterm_hands_the_evaluation_back_at_once_whatever_the_heartbeat(
    database: str, tmp_path: Path
) -> None:
    # docker stop sends SIGKILL 10 s after SIGTERM: the hand-back cannot wait for a 15 s heartbeat.
    store = open_store(database)
    job, _ = store.enqueue(EvaluationRequest(policy_uri="random://", num_episodes=150), "slow", "api")
    worker = start_worker(database, tmp_path, lease=60.0, heartbeat=15.0)
    try:
        wait_for(lambda: store.get(job).status == "running", what="the claim")
        time.sleep(1.0)
        worker.send_signal(signal.SIGTERM)
        wait_for(lambda: store.get(job).status == "queued", timeout=3.0, what="the hand-back")
    finally:
        stop(worker)
    handed_back = store.get(job)
    assert (handed_back.status, handed_back.attempts, handed_back.lease_owner) == ("queued", 0, None)
