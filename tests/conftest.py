"""Fixtures for the plugin's tests."""

from __future__ import annotations

from pathlib import Path

# pytester's in-process runs drop modules first imported inside them; native extensions cannot
# be imported twice, so load them once here, in the outer process.
import numpy  # noqa: F401
import pytest
import scipy.stats  # noqa: F401
import torch  # noqa: F401
from helpers import MINI_SUITE, write_suite

# The modules whose globals tests patch too (sources.cache): one first imported inside an
# in-process run is dropped after it, and could be patched in one copy and used in another.
import pytest_policyeval.engines.mettagrid.simulation
import pytest_policyeval.policies.sources.cache
import pytest_policyeval.policies.sources.http
import pytest_policyeval.policies.torch_policy  # noqa: F401


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own data dir: downloaded policies and kept episodes never leak between tests."""
    path = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("POLICYEVAL_DATA_DIR", str(path))
    return path


@pytest.fixture
def mini_suite(pytester: pytest.Pytester) -> Path:
    return write_suite(pytester.path, MINI_SUITE)


@pytest.fixture
def http_server():
    from servers import FileServer

    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch):
    """A real S3-compatible server; the environment points boto3 (and subprocesses) at it."""
    from servers import S3Server

    server = S3Server()
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres():
    """A real Postgres on 127.0.0.1 (Debian's server), one per test process."""
    pytest.importorskip("psycopg")
    from postgres_server import PostgresServer

    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def database(postgres) -> str:
    """The URL of a database of its own on that server, for one test."""
    import time

    import psycopg

    name = f"t{time.time_ns()}"
    with psycopg.connect(postgres.url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"
