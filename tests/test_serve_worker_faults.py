"""A worker under faults: a policy source that is down for now is retried, not failed for good;
a worker that lost its lease leaves the finishing attempt's files alone; the database going away
or the worker's own failure (a full disk) never ends the worker or leaves an evaluation running."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from servers import AppServer, FileServer
from test_serve_store import _terminate
from test_serve_worker import start_worker, stop, wait_for

from pytest_policyeval.serve.requests import EvaluationRequest
from pytest_policyeval.serve.store import open_store
from pytest_policyeval.serve.worker import Worker, WorkerSettings

REPO = Path(__file__).resolve().parents[1]
QUICK = ("navigation_single",)  # one task: each run here takes a few seconds


def _worker(tmp_path: Path, store, reports: Path | None = None, **settings: float) -> Worker:
    work = WorkerSettings(
        work_dir=tmp_path / "runs", reports_dir=reports or tmp_path / "reports", poll_s=0.1, cwd=REPO,
        **settings,
    )  # fmt: skip
    return Worker(store, work)


def _laptop_service(tmp_path: Path) -> tuple[Worker, threading.Thread, AppServer, Any]:
    """`policyeval serve` in laptop mode, in this process: the API on a loopback port over a
    SQLite queue, its worker in a thread (started), and an HTTP client for the API."""
    import httpx

    from pytest_policyeval.serve.api import create_app
    from pytest_policyeval.serve.settings import ServeSettings

    database = f"sqlite:///{tmp_path / 'q.db'}"
    worker = _worker(tmp_path, open_store(database))
    thread = threading.Thread(target=worker.run_forever, kwargs={"handle_signals": False}, daemon=True)
    app = create_app(
        ServeSettings(database_url=database, api_tokens=("t",)),
        worker_health=lambda: worker.health() if thread.is_alive() else None,
    )
    server = AppServer(app)
    thread.start()
    return worker, thread, server, httpx.Client(base_url=server.url)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_policy_source_down_for_now_is_retried_and_a_missing_one_fails_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLICYEVAL_DATA_DIR", str(tmp_path / "data"))
    server = FileServer()
    server.failing["/busy.pt"] = 503
    store = open_store(f"sqlite:///{tmp_path / 'q.db'}")
    uris = {
        "refused": f"http://127.0.0.1:{_free_port()}/nav.pt",  # nothing listens: unreachable
        "busy": f"{server.url}/busy.pt",
        "missing": f"{server.url}/missing.pt",  # 404: wrong for good
    }
    jobs = {
        name: store.enqueue(EvaluationRequest(policy_uri=uri, suites=QUICK, num_episodes=1), name, "api", 2)[
            0
        ]
        for name, uri in uris.items()
    }
    worker = _worker(tmp_path, store, retry_s=600.0)
    try:
        while (job := store.claim(worker.id)) is not None:
            worker.run_one(job)
        # Not the request's fault: queued again, but not before the source had time to come back.
        for name in ("refused", "busy"):
            waiting = store.get(jobs[name])
            assert (waiting.status, waiting.attempts) == ("queued", 1), (name, waiting.error)
            assert time.time() + 500 < waiting.lease_until <= time.time() + 600
        missing = store.get(jobs["missing"])
        assert (missing.status, missing.attempts) == ("error", 1) and "HTTP 404" in missing.error
        with sqlite3.connect(tmp_path / "q.db") as database:  # ten minutes pass
            database.execute("UPDATE evaluations SET lease_until = lease_until - 600 WHERE status = 'queued'")
        while (job := store.claim(worker.id)) is not None:
            worker.run_one(job)
    finally:
        server.close()
    for name in ("refused", "busy"):
        retried = store.get(jobs[name])
        # Tried as often as a system error is, then left as one.
        assert (retried.status, retried.attempts) == ("system_error", 2), (name, retried.error)
        assert [a.outcome for a in store.attempts(jobs[name])] == ["system_error"] * 2


def test_a_worker_that_lost_its_lease_leaves_the_finishing_attempts_files_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLICYEVAL_DATA_DIR", str(tmp_path / "data"))
    store = open_store(f"sqlite:///{tmp_path / 'q.db'}")
    job, _ = store.enqueue(
        EvaluationRequest(policy_uri="random://", suites=QUICK, num_episodes=1), "k", "api"
    )
    slow = _worker(tmp_path, store, lease_s=0.2, heartbeat_s=1000.0)  # never notices while it runs
    first = store.claim(slow.id, 0.2)
    wait_for(lambda: bool(store.expire_leases()), timeout=10, what="the lease to run out")
    other = _worker(tmp_path, store)
    assert other.run_one(store.claim(other.id)) == "done"
    kept = tmp_path / "reports" / job / "results.json"
    finished = kept.read_bytes()
    assert json.loads(finished) == store.get(job).result["document"]
    # The first worker's run ends after that: its files differ, and must not replace the kept ones.
    assert slow.run_one(first) == "lease lost"
    ran = (tmp_path / "runs" / job / "attempt-1" / "results.json").read_bytes()
    assert ran != finished
    assert kept.read_bytes() == finished and json.loads(finished) == store.get(job).result["document"]
    assert store.get(job).status == "done" and not list(kept.parent.glob(".attempt-*"))


def test_a_worker_failing_itself_ends_the_evaluation_as_a_system_error_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its reports folder cannot be made (a file stands there): as with a full disk, keeping the
    # results fails after the run.
    monkeypatch.setenv("POLICYEVAL_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "blocked").write_text("")
    store = open_store(f"sqlite:///{tmp_path / 'q.db'}")
    request = EvaluationRequest(policy_uri="random://", suites=QUICK, num_episodes=1)
    first, _ = store.enqueue(request, "first", "api")
    second, _ = store.enqueue(request, "second", "api")
    worker = _worker(tmp_path, store, reports=tmp_path / "blocked" / "reports")
    thread = threading.Thread(target=worker.run_forever, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: store.get(second).attempts >= 1 and store.get(second).status != "running", what="both"
        )
    finally:
        worker.stopping.set()
        thread.join(timeout=120)
    assert not thread.is_alive()
    failed = store.get(first)
    assert (
        failed.status in ("queued", "system_error")
        and "the worker failed: NotADirectoryError" in failed.error
    )
    assert store.attempts(first)[0].outcome == "system_error"
    # The loop went on, and says what failed last (an embedded worker's /readyz shows it).
    assert worker.health()["state"] == "stopping" and "NotADirectoryError" in worker.health()["last_failure"]


def test_readyz_reports_an_embedded_worker_that_waits_for_its_database_or_has_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_policyeval.serve.store import StoreError

    worker, thread, server, client = _laptop_service(tmp_path)
    store = worker.store
    try:
        wait_for(lambda: client.get("/readyz").status_code == 200, what="ready")
        assert client.get("/readyz").json()["worker"]["state"] == "ok"

        def away(*_: object) -> None:
            raise StoreError("the queue's database did not answer (connection refused)")

        monkeypatch.setattr(store, "claim", away)
        wait_for(lambda: client.get("/readyz").status_code == 503, what="not ready")
        answer = client.get("/readyz").json()
        assert answer["status"] == "unavailable" and "connection refused" in answer["worker"]["waiting_for"]
        monkeypatch.undo()
        wait_for(lambda: client.get("/readyz").status_code == 200, timeout=30, what="ready again")
    finally:
        worker.stopping.set()
        thread.join(timeout=60)
    try:
        answer = client.get("/readyz")
    finally:
        server.stop()
    assert answer.status_code == 503 and answer.json()["error"] == "the embedded worker has stopped"


def test_a_worker_waits_out_a_database_restart(database: str, tmp_path: Path) -> None:
    store = open_store(database)
    worker = start_worker(database, tmp_path)
    try:
        wait_for(lambda: store.list() == [], timeout=10, what="the store")
        time.sleep(1.0)  # the worker is polling on its connection
        _terminate(database)
        job, _ = store.enqueue(
            EvaluationRequest(policy_uri="random://", suites=QUICK, num_episodes=1), "k", "api"
        )
        wait_for(lambda: store.get(job).status == "done", what="the evaluation after the restart")
    finally:
        output = stop(worker)
    assert worker.returncode == 0, output[-2000:]


def test_a_database_gone_during_a_run_stops_the_run_with_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heartbeats that cannot reach the database are tried again until the lease would have run
    out; then the run is stopped: no orphan keeps playing (and publishing) beside the retry."""
    from pytest_policyeval.serve.store import StoreError

    monkeypatch.setenv("POLICYEVAL_DATA_DIR", str(tmp_path / "data"))
    store = open_store(f"sqlite:///{tmp_path / 'q.db'}")
    store.enqueue(EvaluationRequest(policy_uri="random://", num_episodes=150), "long", "api")
    worker = _worker(tmp_path, store, lease_s=1.0, heartbeat_s=0.2)
    job = store.claim(worker.id, 1.0)

    def unreachable(*args, **kwargs):
        raise StoreError("the queue's database: lost the connection")

    monkeypatch.setattr(store, "heartbeat", unreachable)
    started = time.monotonic()
    assert worker.run_one(job) == "lease lost"
    assert time.monotonic() - started < 30  # stopped about a lease after the last renewal
    log = (tmp_path / "runs" / job.id / "attempt-1" / "pytest.log").read_text()
    assert "passed" not in log.splitlines()[-1:]  # the run did not get to its end


def test_a_run_whose_end_never_replaced_its_placeholder_is_not_done(tmp_path: Path) -> None:
    # The results file a run writes when it starts says in_progress: a run that exits 1 leaving
    # it (its final write failed) has no results, and is retried as the machine's fault.
    store = open_store(f"sqlite:///{tmp_path / 'q.db'}")
    store.enqueue(EvaluationRequest(policy_uri="random://"), "k", "api")
    worker = _worker(tmp_path, store)
    job = store.claim(worker.id)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"in_progress": True, "passed": False, "policies": []}))
    status, result, error = worker.outcome(job, folder, 1)
    assert (status, result) == ("system_error", None) and "ended without results" in error


def test_a_queue_that_cannot_be_written_is_not_ready_and_its_worker_waits(tmp_path: Path) -> None:
    """The queue's file deleted under a running service: reads still work on the open file, but no
    write can land. /readyz says so, a request gets 503 (not 500), and the worker waits instead
    of dying."""
    worker, thread, server, client = _laptop_service(tmp_path)
    try:
        wait_for(lambda: client.get("/readyz").status_code == 200, what="ready")
        for name in ("q.db", "q.db-wal", "q.db-shm", "q.db-journal"):
            (tmp_path / name).unlink(missing_ok=True)
        wait_for(lambda: client.get("/readyz").status_code == 503, timeout=30, what="not ready")
        posted = client.post(
            "/evaluations", json={"policy_uri": "random://"}, headers={"Authorization": "Bearer t"}
        )
        assert posted.status_code == 503 and "Retry-After" in posted.headers, posted.text
        # A failure the database raises as it is (disk I/O) does not end the worker's loop either.

        def broken(*_: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        worker.store.expire_leases = broken  # type: ignore[method-assign]
        wait_for(lambda: worker.health()["state"] == "waiting", timeout=30, what="the worker waiting")
        assert thread.is_alive() and "disk I/O error" in worker.health()["waiting_for"]
    finally:
        worker.stopping.set()
        thread.join(timeout=60)
        server.stop()
