"""Service benchmark: webhook deliveries accepted per second, and the time from a delivery to its
claim by a worker, on this machine.

    python benchmarks/bench_service.py                 # 1000 deliveries, 16 senders, Postgres and SQLite

A real `policyeval serve` process on 127.0.0.1 (over a Postgres started for the run, then over a
SQLite file) receives signed generic deliveries (a fifth of them redeliveries) from concurrent
senders; every answer must be 202 and the queue must end with one evaluation per distinct
delivery. Then deliveries arrive one every 50 ms while a claimer polls the queue as a worker
does (every 0.2 s, `--poll`), and the delay from each delivery's answer to its claim is measured.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from postgres_server import PostgresServer
from serve_process import SECRET, ServeProcess

from pytest_policyeval.serve.store import open_store


def deliver(client: httpx.Client, url: str, delivery: str) -> int:
    body = json.dumps({"policy_uri": f"s3://bucket/{delivery}.pt"}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": signature, "X-GitHub-Delivery": delivery}
    return client.post(f"{url}/webhooks/generic", content=body, headers=headers).status_code


def throughput(url: str, count: int, senders: int) -> float:
    deliveries = [f"d{i % (count * 4 // 5)}" for i in range(count)]
    local = threading.local()

    def send(delivery: str) -> int:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=30)
        return deliver(local.client, url, delivery)

    start = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        statuses = list(pool.map(send, deliveries))
    elapsed = time.perf_counter() - start
    assert set(statuses) == {202}, set(statuses)
    return count / elapsed


def claim_latency(url: str, database: str, count: int = 40, poll_s: float = 0.2) -> list[float]:
    store = open_store(database)
    answered: dict[str, float] = {}
    claimed: dict[str, float] = {}
    done = threading.Event()

    def claimer() -> None:
        while not done.is_set() or len(claimed) < count:
            job = store.claim("bench")
            if job is None:
                time.sleep(poll_s)
                continue
            claimed[job.request.policy_uri] = time.perf_counter()
            store.finish(job.id, "bench", "done", result={})

    with httpx.Client(timeout=30) as client:
        thread = threading.Thread(target=claimer)
        thread.start()
        for i in range(count):
            key = f"latency-{i}"
            assert deliver(client, url, key) == 202
            answered[f"s3://bucket/{key}.pt"] = time.perf_counter()
            time.sleep(0.05)
        done.set()
        thread.join(timeout=60)
    return [claimed[uri] - answered[uri] for uri in answered]


def main() -> None:
    count, senders = 1000, 16
    postgres = PostgresServer()
    try:
        results = {}
        for name, database in (
            ("postgres", postgres.url),
            ("sqlite", f"sqlite:///{tempfile.mkdtemp()}/q.db"),
        ):
            for step in ("throughput", "latency"):
                target = database if step == "throughput" or name == "sqlite" else postgres.url
                if step == "latency" and name == "postgres":  # a fresh queue for the latency run
                    import psycopg

                    with psycopg.connect(postgres.url, autocommit=True) as connection:
                        connection.execute("CREATE DATABASE latency")
                    target = postgres.url.rsplit("/", 1)[0] + "/latency"
                api = ServeProcess(target)
                try:
                    if step == "throughput":
                        results[(name, step)] = throughput(api.url, count, senders)
                        queued = open_store(target).list(limit=1000)
                        assert len(queued) == count * 4 // 5, len(queued)
                    else:
                        results[(name, step)] = claim_latency(api.url, target)
                finally:
                    api.stop()
    finally:
        postgres.stop()
    head = f"{count} signed deliveries ({count // 5} of them redeliveries) from {senders} senders"
    print(f"{head}, one API process")
    for name in ("postgres", "sqlite"):
        delays = sorted(results[(name, "latency")])
        p95 = delays[int(0.95 * (len(delays) - 1))]
        print(
            f"  {name:<9} {results[(name, 'throughput')]:6.0f} deliveries/s accepted; delivery to claim "
            f"(polling every 0.2 s): median {statistics.median(delays) * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    main()
