"""The evaluation queue on a real Postgres (on 127.0.0.1) and on SQLite: idempotent requests,
claims that never overlap, leases that expire into retries, final user errors, durability."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pytest_policyeval.serve.requests import EvaluationRequest
from pytest_policyeval.serve.store import StoreError, open_store


@pytest.fixture(params=["postgres", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return request.getfixturevalue("database")  # a database of its own on the real Postgres


def request_for(n: int) -> EvaluationRequest:
    return EvaluationRequest(policy_uri=f"wandb://team/proj/model/nav:v{n}", suites=("navigation",))


def test_a_request_is_queued_once_per_key(store_url: str) -> None:
    store = open_store(store_url)
    first, created = store.enqueue(request_for(1), "delivery-1", "generic")
    again, created_again = store.enqueue(request_for(2), "delivery-1", "generic")
    assert created and not created_again and again == first
    assert store.get(first).request == request_for(1) and store.get(first).status == "queued"


def test_a_burst_of_deliveries_with_duplicates_queues_one_job_per_distinct_key(store_url: str) -> None:
    store = open_store(store_url)
    keys = [f"delivery-{i % 120}" for i in range(200)]  # 200 deliveries, 120 distinct, 80 repeats

    def deliver(key: str) -> tuple[str, str]:
        return key, store.enqueue(request_for(int(key.split("-")[1])), key, "generic")[0]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(deliver, keys))
    ids_by_key: dict[str, set[str]] = {}
    for key, job in answers:
        ids_by_key.setdefault(key, set()).add(job)
    assert len(ids_by_key) == 120 and all(len(ids) == 1 for ids in ids_by_key.values())
    queued = store.list(status="queued", limit=1000)
    assert len(queued) == 120 and {e.id for e in queued} == {next(iter(i)) for i in ids_by_key.values()}


def test_concurrent_workers_never_claim_the_same_evaluation(store_url: str) -> None:
    store = open_store(store_url)
    for n in range(40):
        store.enqueue(request_for(n), f"k{n}", "api")
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(worker: str) -> None:
        while (job := store.claim(worker)) is not None:
            with lock:
                claimed.append((job.id, worker))
            assert store.finish(job.id, worker, "done", result={"passed": True})

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 40 and len({job for job, _ in claimed}) == 40
    assert all(e.status == "done" and e.attempts == 1 for e in store.list(limit=100))


def test_an_expired_lease_is_a_system_error_retried_by_another_worker_and_finished_once(
    store_url: str,
) -> None:
    store = open_store(store_url)
    job_id, _ = store.enqueue(request_for(1), "k", "api", max_attempts=3)
    first = store.claim("dead-worker", lease_s=0.2)
    assert first.id == job_id and store.claim("other") is None  # running: not claimable
    time.sleep(0.3)
    assert store.expire_leases() == [job_id]
    assert store.get(job_id).status == "queued"
    second = store.claim("live-worker")
    assert second.id == job_id and second.attempts == 2
    assert not store.heartbeat(job_id, "dead-worker") and not store.finish(job_id, "dead-worker", "done")
    assert store.heartbeat(job_id, "live-worker")
    assert store.finish(job_id, "live-worker", "done", result={"passed": False})
    done = store.get(job_id)
    assert (done.status, done.result, done.attempts) == ("done", {"passed": False}, 2)
    attempts = store.attempts(job_id)
    assert [(a.worker, a.outcome) for a in attempts] == [
        ("dead-worker", "system_error"),
        ("live-worker", "done"),
    ]


def test_a_user_error_is_final_and_system_errors_stop_after_their_attempts(store_url: str) -> None:
    store = open_store(store_url)
    user, _ = store.enqueue(request_for(1), "bad-uri", "api")
    job = store.claim("w")
    assert store.finish(job.id, "w", "error", error="policy could not be loaded: no such file")
    assert store.get(user).status == "error" and store.claim("w") is None
    flaky, _ = store.enqueue(request_for(2), "flaky", "api", max_attempts=2)
    for attempt in (1, 2):
        job = store.claim("w")
        assert (job.id, job.attempts) == (flaky, attempt)
        assert store.finish(job.id, "w", "system_error", error="worker crashed")
    assert store.get(flaky).status == "system_error" and store.claim("w") is None
    with pytest.raises(ValueError, match="cannot finish with status 'canceled'"):
        store.finish(flaky, "w", "canceled")


def test_a_released_lease_is_queued_again_without_counting_an_attempt(store_url: str) -> None:
    store = open_store(store_url)
    job_id, _ = store.enqueue(request_for(1), "k", "api")
    store.claim("stopping")
    assert store.release(job_id, "stopping") and not store.release(job_id, "stopping")
    again = store.claim("next")
    assert again.attempts == 1 and [a.worker for a in store.attempts(job_id)] == ["next"]
    assert store.cancel(job_id) is False  # running: only queued evaluations are canceled


def test_the_queue_survives_reopening(store_url: str) -> None:
    job_id, _ = open_store(store_url).enqueue(request_for(7), "k7", "wandb")
    reopened = open_store(store_url)
    assert reopened.get(job_id).request.policy_uri == "wandb://team/proj/model/nav:v7"
    assert reopened.enqueue(request_for(7), "k7", "wandb") == (job_id, False)
    assert [e.id for e in reopened.list(policy_uri="wandb://team/proj/model/nav:v7")] == [job_id]


def test_a_database_that_cannot_be_reached_is_named_without_its_password(postgres) -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreError, match=rf"postgresql://postgres:\*\*\*@127.0.0.1:{port}/x: cannot open"):
        open_store(f"postgresql://postgres:s3cret@127.0.0.1:{port}/x")
    with pytest.raises(StoreError, match=r"must be postgresql://\.\.\. or sqlite:///PATH"):
        open_store("mysql://host/db")


def test_evaluations_are_found_by_whole_suite_names(store_url: str) -> None:
    store = open_store(store_url)
    for key, suites in (
        ("a", ("navigation",)),
        ("b", ("navigation_single", "laser_tag")),
        ("c", ("laser_tag",)),
    ):
        store.enqueue(EvaluationRequest(policy_uri="random://", suites=suites), key, "api")

    def keys(suite: str) -> set[str]:
        return {e.idempotency_key for e in store.list(suite=suite)}

    assert (
        keys("navigation") == {"a"} and keys("laser_tag") == {"b", "c"} and keys("navigation_single") == {"b"}
    )
    assert keys("%") == set() and keys("navigation_%") == set() and keys("navigation!single") == set()


def test_a_request_never_passes_an_option_to_the_workers_pytest(tmp_path: Path) -> None:
    # pytest imports `-pNAME` as a plugin wherever it stands on its command line, before parsing.
    import pydantic

    from pytest_policyeval.serve.worker import Worker, WorkerSettings

    for hostile in ({"policy_uri": "-pthis"}, {"suites": ("-pthis",)}, {"baseline_uri": "-pantigravity"}):
        with pytest.raises(pydantic.ValidationError):
            EvaluationRequest(**{"policy_uri": "random://", **hostile})
    # And were one to get past the request's checks, the command still reads it as a value.
    request = EvaluationRequest.model_construct(
        policy_uri="-pthis",
        suites=("-pantigravity",),
        num_episodes=None,
        baseline_uri="-pthis",
        output_uri="-pthis",
    )
    job = type("Job", (), {"request": request})()
    command = Worker(None, WorkerSettings(tmp_path, tmp_path)).command(job, tmp_path)  # type: ignore[arg-type]
    assert not [arg for arg in command if arg.startswith("-p") and arg != "-p"]
    assert "--policy-uri=-pthis" in command and "--eval-suite=-pantigravity" in command


def _terminate(database: str) -> None:
    """What a Postgres restart does to a client: every connection to the database cut."""
    import psycopg

    with psycopg.connect(database.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
            "pg_backend_pid()",
            (database.rsplit("/", 1)[1],),
        )


def test_a_connection_the_server_cut_is_replaced_on_the_next_call(database: str) -> None:
    """A Postgres restart (here: every backend of the queue terminated) breaks each thread's
    connection; the store must not keep failing on it."""
    store = open_store(database)
    job_id, _ = store.enqueue(request_for(1), "k1", "api")
    _terminate(database)
    found = store.get(job_id)  # a read runs again on a fresh connection: no error at all
    assert found is not None and found.id == job_id
    _terminate(database)
    assert store.enqueue(request_for(2), "k2", "api")[1] is True  # idempotent by its key: the same
    _terminate(database)
    # A claim is not run twice (it could claim two evaluations): it says what happened, once.
    with pytest.raises(StoreError, match="lost the connection to the queue's database"):
        store.claim("w1")
    assert store.claim("w1") is not None


def test_text_with_a_nul_finds_nothing_instead_of_failing(store_url: str) -> None:
    store = open_store(store_url)
    store.enqueue(request_for(1), "k1", "api")
    assert store.get("a\0b") is None and store.attempts("a\0b") == [] and store.cancel("a\0b") is False
    assert store.list(policy_uri="a\0b") == [] and store.list(suite="nav\0") == []
    assert store.list(status="queued\0") == [] and len(store.list()) == 1


def test_a_malformed_database_url_is_named_without_its_password() -> None:
    with pytest.raises(StoreError) as error:
        open_store("postgresql://u:SUPERSECRET@[::1/db")
    assert "SUPERSECRET" not in str(error.value) and "u:***@" in str(error.value)


def test_the_api_answers_as_before_once_the_database_is_back(database: str) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from serve_process import TOKEN, ServeProcess

    auth = {"Authorization": f"Bearer {TOKEN}"}
    server = ServeProcess(database)
    try:
        url = server.url
        with ThreadPoolExecutor(8) as pool:  # several of the API's threads hold a connection
            assert {
                r.status_code
                for r in pool.map(lambda _: httpx.get(f"{url}/evaluations", headers=auth), range(32))
            } == {200}
        _terminate(database)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: httpx.get(f"{url}/evaluations", headers=auth), range(32)))
        assert {r.status_code for r in answers} == {200}, [r.text for r in answers if r.status_code != 200][
            :1
        ]
        assert httpx.get(f"{url}/readyz").status_code == 200
        posted = httpx.post(f"{url}/evaluations", json={"policy_uri": "random://"}, headers=auth)
        assert posted.status_code == 202
    finally:
        server.stop()
