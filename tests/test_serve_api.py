"""`policyeval serve` as a real process on 127.0.0.1 over a real Postgres: requests and webhooks
in, exactly one evaluation per distinct delivery, nothing stored for a refused one, nothing lost
when the API restarts."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serve_process import SECRET, TOKEN, WANDB_TOKEN, ServeProcess

pytest.importorskip("fastapi")
pytest.importorskip("psycopg")

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(database: str):
    server = ServeProcess(database)
    yield server
    server.stop()


def signed_post(api: ServeProcess, payload: dict, delivery: str, secret: str = SECRET) -> httpx.Response:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }
    return httpx.post(f"{api.url}/webhooks/generic", content=body, headers=headers, timeout=30)


def listed(api: ServeProcess, **query: str) -> list[dict]:
    answer = httpx.get(f"{api.url}/evaluations", params={"limit": 1000, **query}, headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["evaluations"]


def test_a_signed_webhook_queues_exactly_one_evaluation_and_a_bad_signature_none(api: ServeProcess) -> None:
    payload = {"policy_uri": "s3://bucket/nav.pt", "suites": ["navigation"]}
    first = signed_post(api, payload, "delivery-1")
    assert first.status_code == 202 and first.json()["duplicate"] is False
    again = signed_post(api, payload, "delivery-1")  # GitHub's redelivery of the same delivery
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"] and again.json()["duplicate"]
    replayed = signed_post(api, payload, "delivery-9")  # a captured body under a new (unsigned) id
    assert replayed.json()["id"] == first.json()["id"] and replayed.json()["duplicate"]
    for bad in (signed_post(api, payload, "delivery-2", secret="wrong"), signed_post(api, {}, "d3", "")):
        assert bad.status_code == 401
    unsigned = httpx.post(f"{api.url}/webhooks/generic", json=payload, headers={"X-GitHub-Delivery": "d4"})
    assert unsigned.status_code == 401
    (only,) = listed(api)
    assert only["id"] == first.json()["id"] and only["status"] == "queued" and only["source"] == "generic"
    detail = httpx.get(f"{api.url}/evaluations/{only['id']}", headers=AUTH).json()
    assert detail["request"]["policy_uri"] == "s3://bucket/nav.pt" and detail["attempts"] == []


def test_a_burst_of_200_deliveries_with_duplicates_yields_one_job_per_distinct_delivery(
    api: ServeProcess,
) -> None:
    deliveries = [f"burst-{i % 130}" for i in range(200)]

    def deliver(delivery: str) -> tuple[str, int, str]:
        answer = signed_post(api, {"policy_uri": f"s3://bucket/{delivery}.pt"}, delivery)
        return delivery, answer.status_code, answer.json().get("id", "")

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(deliver, deliveries))
    assert {status for _, status, _ in answers} == {202}
    ids: dict[str, set[str]] = {}
    for delivery, _, job in answers:
        ids.setdefault(delivery, set()).add(job)
    assert len(ids) == 130 and all(len(found) == 1 for found in ids.values())
    assert sorted(e["id"] for e in listed(api)) == sorted(next(iter(found)) for found in ids.values())


def test_a_wandb_automation_queues_that_artifact_version_and_needs_its_token(api: ServeProcess) -> None:
    payload = {
        "event_type": "ADD_ARTIFACT_ALIAS", "event_author": "alice", "alias": "candidate",
        "artifact_version_string": "team/nav/policy:v7", "artifact_collection_name": "policy",
        "entity_name": "team", "project_name": "nav",
    }  # fmt: skip
    url = f"{api.url}/webhooks/wandb"
    assert httpx.post(url, json=payload).status_code == 401
    assert httpx.post(url, json=payload, headers=AUTH).status_code == 401  # the API's token is not W&B's
    wandb_auth = {"Authorization": f"Bearer {WANDB_TOKEN}"}
    accepted = httpx.post(url, json=payload, headers=wandb_auth)
    assert accepted.status_code == 202
    assert httpx.post(url, json={**payload, "event_author": "bob"}, headers=wandb_auth).json()["duplicate"]
    (queued,) = listed(api, status="queued")
    assert (
        queued["request"]["policy_uri"] == "wandb://team/nav/model/policy:v7" and queued["source"] == "wandb"
    )
    refused = httpx.post(url, json={**payload, "artifact_version_string": "x"}, headers=wandb_auth)
    assert refused.status_code == 422 and "ENTITY/PROJECT/NAME:vN" in refused.json()["error"]


def test_the_api_needs_its_token_and_restarting_it_loses_nothing(api: ServeProcess) -> None:
    request = {"policy_uri": "https://user:pw@host/nav.pt", "suites": ["navigation", "laser_tag"]}
    assert httpx.post(f"{api.url}/evaluations", json=request).status_code == 401
    assert httpx.get(f"{api.url}/evaluations").status_code == 401
    keyed = {**AUTH, "Idempotency-Key": "nightly-2026-12-02"}
    first = httpx.post(f"{api.url}/evaluations", json=request, headers=keyed).json()
    assert httpx.post(f"{api.url}/evaluations", json=request, headers=keyed).json()["id"] == first["id"]
    other = httpx.post(f"{api.url}/evaluations", json=request, headers=AUTH).json()  # no key: a new one
    assert other["id"] != first["id"]
    bad = httpx.post(f"{api.url}/evaluations", json={**request, "suites": ["../x"]}, headers=AUTH)
    assert bad.status_code == 422
    api.stop()
    api.start()
    found = {e["id"]: e for e in listed(api)}
    assert set(found) == {first["id"], other["id"]}
    assert found[first["id"]]["request"]["policy_uri"] == "https://user:***@host/nav.pt"
    assert httpx.get(f"{api.url}/readyz").json() == {"status": "ready"}
    assert httpx.delete(f"{api.url}/evaluations/{other['id']}").status_code == 401
    assert httpx.delete(f"{api.url}/evaluations/{other['id']}", headers=AUTH).json()["status"] == "canceled"
    again = httpx.delete(f"{api.url}/evaluations/{other['id']}", headers=AUTH)
    assert again.status_code == 409 and "this one is canceled" in again.json()["error"]
    assert httpx.delete(f"{api.url}/evaluations/nope", headers=AUTH).status_code == 404
    assert [e["id"] for e in listed(api, suite="laser_tag", status="queued")] == [first["id"]]
    page = httpx.get(f"{api.url}/").text
    assert first["id"][:12] in page and "pw@" not in page


def test_one_command_serves_a_laptop_with_sqlite_and_an_embedded_worker(tmp_path) -> None:
    data = tmp_path / "data"
    api = ServeProcess(f"sqlite:///{tmp_path / 'queue.db'}", POLICYEVAL_DATA_DIR=str(data))
    try:
        posted = httpx.post(
            f"{api.url}/evaluations", json={"policy_uri": "random://", "num_episodes": 2}, headers=AUTH
        ).json()
        deadline = time.monotonic() + 240
        while (found := httpx.get(f"{api.url}/evaluations/{posted['id']}", headers=AUTH).json())[
            "status"
        ] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert found["status"] == "done" and found["result"]["complete"] is True, found["error"]
        ready = httpx.get(f"{api.url}/readyz").json()
        assert ready["status"] == "ready" and ready["worker"]["state"] == "ok", ready
        report = httpx.get(f"{api.url}{found['result']['report_url']}")
        assert report.status_code == 200 and "navigation/maze_small" in report.text
        assert httpx.get(f"{api.url}/evaluations/../../etc/passwd/report").status_code == 404
    finally:
        api.stop()
    assert api.process.returncode in (0, -15)  # uvicorn ends by re-raising the SIGTERM it handled


def test_sigterm_hands_the_embedded_workers_evaluation_back(tmp_path) -> None:
    from pytest_policyeval.serve.store import open_store

    database = f"sqlite:///{tmp_path / 'queue.db'}"
    api = ServeProcess(database, POLICYEVAL_DATA_DIR=str(tmp_path / "data"))
    try:
        request = {"policy_uri": "random://", "num_episodes": 300}
        posted = httpx.post(f"{api.url}/evaluations", json=request, headers=AUTH).json()
        url = f"{api.url}/evaluations/{posted['id']}"
        deadline = time.monotonic() + 60
        while httpx.get(url, headers=AUTH).json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        api.stop()
    left = open_store(database).get(posted["id"])
    assert (left.status, left.attempts, left.lease_owner) == ("queued", 0, None)


def test_a_service_limited_to_remote_schemes_refuses_local_files(database: str) -> None:
    # A token holder must not make the workers read (and quote) or write the workers' own files.
    server = ServeProcess(database, POLICYEVAL_ALLOWED_SCHEMES="random, s3,wandb")
    try:
        for body in (
            {"policy_uri": "file:///etc/passwd"},
            {"policy_uri": "/etc/passwd"},
            {"policy_uri": "random://", "baseline_uri": "pytorch:///root/secret.pt"},
            {"policy_uri": "random://", "output_uri": "file:///etc/cron.d/x"},
            {"policy_uri": "random://", "output_uri": "random"},  # a bare path, however it reads
        ):
            answer = httpx.post(f"{server.url}/evaluations", json=body, headers=AUTH, timeout=30)
            assert answer.status_code == 422 and "POLICYEVAL_ALLOWED_SCHEMES" in answer.text, answer.text
        assert listed(server) == []  # nothing queued for a refused request
        ok = httpx.post(
            f"{server.url}/evaluations", json={"policy_uri": "random://"}, headers=AUTH, timeout=30
        )
        assert ok.status_code == 202, ok.text
    finally:
        server.stop()


def test_an_idempotency_key_stands_for_one_request_of_one_token(database: str) -> None:
    other_token = "other-t0ken"
    server = ServeProcess(database, POLICYEVAL_API_TOKENS=f"{TOKEN},{other_token}")
    try:
        url, key = f"{server.url}/evaluations", {"Idempotency-Key": "nightly-2026-12-02"}
        request = {"policy_uri": "s3://bucket/nav.pt", "suites": ["navigation"]}
        first = httpx.post(url, json=request, headers={**AUTH, **key}, timeout=30).json()
        again = httpx.post(url, json=request, headers={**AUTH, **key}, timeout=30)
        assert again.status_code == 202 and again.json() == {**first, "duplicate": True}
        changed = httpx.post(url, json={**request, "suites": ["laser_tag"]}, headers={**AUTH, **key})
        assert changed.status_code == 409 and "reused with a different request" in changed.json()["error"]
        theirs = httpx.post(url, json=request, headers={"Authorization": f"Bearer {other_token}", **key})
        assert theirs.status_code == 202 and not theirs.json()["duplicate"]  # another holder's key
        assert sorted(e["id"] for e in listed(server)) == sorted([first["id"], theirs.json()["id"]])
    finally:
        server.stop()


def test_a_signed_webhook_takes_the_service_defaults(database: str) -> None:
    defaults = {
        "POLICYEVAL_DEFAULT_SUITES": "laser_tag",
        "POLICYEVAL_DEFAULT_OUTPUT_URI": "s3://results/nightly",
        "POLICYEVAL_DEFAULT_BASELINE_URI": "s3://models/best.pt",
    }
    server = ServeProcess(database, **defaults)
    try:
        bare = signed_post(server, {"policy_uri": "s3://bucket/nav.pt"}, "d1").json()
        given = signed_post(server, {"policy_uri": "s3://bucket/maze.pt", "suites": ["navigation"]}, "d2")
        asked = {e["id"]: e["request"] for e in listed(server)}
        assert asked[bare["id"]] == {
            "policy_uri": "s3://bucket/nav.pt", "suites": ["laser_tag"], "num_episodes": None,
            "baseline_uri": "s3://models/best.pt", "output_uri": "s3://results/nightly",
        }  # fmt: skip
        assert asked[given.json()["id"]]["suites"] == ["navigation"]  # what the payload says wins
    finally:
        server.stop()


def test_a_token_parameter_of_a_policy_url_shows_on_no_page(tmp_path) -> None:
    from servers import FileServer

    token = "glpat-PRIVATE0123456789"
    files = FileServer()  # serves nothing: the download is refused (404), a final error
    uri = f"{files.url}/api/v4/projects/7/nav.pt?private_token={token}"
    api = ServeProcess(f"sqlite:///{tmp_path / 'queue.db'}", POLICYEVAL_DATA_DIR=str(tmp_path / "data"))
    try:
        posted = httpx.post(f"{api.url}/evaluations", json={"policy_uri": uri}, headers=AUTH).json()
        detail = f"{api.url}/evaluations/{posted['id']}"
        deadline = time.monotonic() + 240
        while httpx.get(detail, headers=AUTH).json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        found = httpx.get(detail, headers=AUTH)
        assert found.json()["status"] == "error" and "private_token=%2A%2A%2A" in found.json()["error"]
        for page in (found, httpx.get(f"{api.url}/evaluations", headers=AUTH), httpx.get(f"{api.url}/")):
            assert "private_token=%2A%2A%2A" in page.text and token not in page.text, page.url
    finally:
        api.stop()
        files.close()
