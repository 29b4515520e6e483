"""The whole service as a user meets it: a request posted to the real API, run by a real worker,
both over a real Postgres; the status page opened in real Chromium lists it and its report link
opens the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from serve_process import TOKEN, ServeProcess

from pytest_policyeval.reporting.browser import CHROMIUM, launch

pytest.importorskip("fastapi")
pytest.importorskip("psycopg")
pytest.importorskip("pytest_html")


def _need(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)


def test_the_status_page_lists_evaluations_and_links_to_their_reports(tmp_path: Path) -> None:
    _need(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    from postgres_server import PostgresServer

    postgres = PostgresServer()
    shared = {
        "POLICYEVAL_REPORTS_DIR": str(tmp_path / "reports"),
        "POLICYEVAL_DATA_DIR": str(tmp_path / "data"),
    }
    api = worker = None
    try:
        api = ServeProcess(postgres.url, **shared)
        posted = httpx.post(
            f"{api.url}/evaluations", json={"policy_uri": "random://", "num_episodes": 2},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )  # fmt: skip
        assert posted.status_code == 202
        command = [sys.executable, "-m", "pytest_policyeval", "worker", "--database", postgres.url]
        command += ["--work-dir", str(tmp_path / "runs"), "--heartbeat", "0.5", "--poll", "0.2"]
        worker = subprocess.Popen(command, env={**os.environ, **shared}, stdout=subprocess.DEVNULL)
        url = f"{api.url}/evaluations/{posted.json()['id']}"
        deadline = time.monotonic() + 240
        while httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).json()["status"] != "done":
            assert time.monotonic() < deadline, "the evaluation did not finish"
            time.sleep(0.2)
        with playwright_api.sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page()
            page.goto(api.url + "/")
            row = page.locator("tbody tr").first
            assert "random://" in row.inner_text() and "done" in row.inner_text()
            assert "fail" in row.inner_text()  # random:// fails its gates
            with page.expect_navigation():
                row.locator("a", has_text="report").click()
            assert page.url.split("?")[0].endswith(f"/evaluations/{posted.json()['id']}/report")
            assert "navigation/emptyspace_in_sight" in page.content()
            browser.close()
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        if api is not None:
            api.stop()
        postgres.stop()
