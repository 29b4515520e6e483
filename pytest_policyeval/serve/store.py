"""The durable queue of evaluations: Postgres for a service, SQLite for one process on a laptop.

    evaluations  one row per request: its idempotency key (unique), status, attempts, lease
    attempts     one row per claim: who ran it, when, how it ended

Statuses: queued -> running -> done | error (the user's: a bad URI, a bad checkpoint; final) |
system_error (the machine's: a worker died or its lease ran out; queued again until the attempts
run out) | canceled. A worker claims the oldest queued row (`FOR UPDATE SKIP LOCKED` on Postgres,
a write transaction on SQLite), holds a lease it renews as a heartbeat, and finishes only while it
still holds it, so a job whose lease expired and was claimed again is finished once.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytest_policyeval.serve.connections import (
    LostConnection,
    StoreError,
    again_if_lost,
    lost,
    redacted,
    safe_url,
)
from pytest_policyeval.serve.records import (
    COLUMNS,
    DEFAULT_LEASE_S,
    DEFAULT_MAX_ATTEMPTS,
    SCHEMA,
    STATUSES,
    Attempt,
    Evaluation,
)
from pytest_policyeval.serve.requests import EvaluationRequest

__all__ = ["STATUSES", "Attempt", "Evaluation", "LostConnection", "Store", "StoreError", "open_store"]


class Store:
    """The queue over a DB-API connection; `sqlite` says which SQL dialect it speaks."""

    def __init__(self, connect: Any, sqlite: bool, url: str):
        self._connect = connect
        self.sqlite = sqlite
        self.url = url
        self._local = threading.local()
        self._sqlite_lock = threading.Lock()  # one writer at a time in this process
        with self._transaction() as cursor:
            for statement in SCHEMA:
                cursor.execute(statement)

    # -- connections and SQL ------------------------------------------------------------------

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is not None and lost(connection):
            self._drop(connection)  # the server restarted or cut it: open another
            connection = None
        if connection is None:
            try:
                connection = self._connect()
            except Exception as exc:
                message = redacted(str(exc), self.url)
                raise StoreError(
                    f"{safe_url(self.url)}: cannot open the queue's database: {message}"
                ) from None
            self._local.connection = connection
        return connection

    def _drop(self, connection: Any) -> None:
        self._local.connection = None
        with contextlib.suppress(Exception):  # it is gone either way
            connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        connection = self._connection()
        lock = self._sqlite_lock if self.sqlite else contextlib.nullcontext()
        with lock:
            cursor = connection.cursor()
            try:
                if self.sqlite:
                    cursor.execute("BEGIN IMMEDIATE")  # the write lock now: claims never interleave
                yield cursor
                connection.commit()
            except BaseException as exc:
                if lost(connection):
                    # Each thread keeps its connection: a broken one would fail every later call.
                    # Dropped here, the next call connects again.
                    self._drop(connection)
                    if isinstance(exc, Exception):
                        cause = redacted(
                            str(exc).strip().splitlines()[0] if str(exc).strip() else "", self.url
                        )
                        raise LostConnection(
                            f"{safe_url(self.url)}: lost the connection to the queue's database ({cause}); "
                            "the next call connects again"
                        ) from None
                    raise
                with contextlib.suppress(Exception):  # a database that cannot write cannot roll back
                    connection.rollback()
                if _operational(exc):  # the database failed (read-only, full, locked), not the SQL
                    cause = redacted(str(exc).strip().splitlines()[0] if str(exc).strip() else "", self.url)
                    raise StoreError(f"{safe_url(self.url)}: the queue's database failed: {cause}") from None
                raise
            finally:
                with contextlib.suppress(Exception):  # a cursor of a lost connection
                    cursor.close()

    def ping(self) -> None:
        """A write, undone at once: raises StoreError unless the queue can take requests."""
        with self._transaction() as cursor:
            cursor.execute("INSERT INTO readiness (probe) VALUES (1)")
            cursor.execute("DELETE FROM readiness")

    def _sql(self, text: str) -> str:
        return text if self.sqlite else text.replace("?", "%s")

    # -- the queue ----------------------------------------------------------------------------

    @again_if_lost
    def enqueue(
        self, request: EvaluationRequest, key: str, source: str, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> tuple[str, bool]:
        """(id, created): a new queued evaluation, or the existing one with the same key."""
        new_id = uuid.uuid4().hex
        with self._transaction() as cursor:
            cursor.execute(
                self._sql(
                    "INSERT INTO evaluations (id, idempotency_key, source, request, policy_uri, suites, "
                    "status, attempts, max_attempts, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?) "
                    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
                ),
                (
                    new_id,
                    key,
                    source,
                    request.model_dump_json(),
                    request.policy_uri,
                    "," + ",".join(request.suites) + ",",  # so that LIKE '%,NAME,%' finds a whole name
                    max_attempts,
                    time.time(),
                ),
            )
            row = cursor.fetchone()
            if row is not None:
                return row[0], True
            cursor.execute(self._sql("SELECT id FROM evaluations WHERE idempotency_key = ?"), (key,))
            return cursor.fetchone()[0], False

    def claim(self, worker: str, lease_s: float = DEFAULT_LEASE_S) -> Evaluation | None:
        """The oldest queued evaluation, now running under `worker`'s lease; None if none waits."""
        now = time.time()
        skip_locked = "" if self.sqlite else " FOR UPDATE SKIP LOCKED"
        with self._transaction() as cursor:
            cursor.execute(
                self._sql(
                    "UPDATE evaluations SET status = 'running', attempts = attempts + 1, lease_owner = ?, "
                    "lease_until = ?, started_at = COALESCE(started_at, ?) WHERE id = (SELECT id FROM "
                    "evaluations WHERE status = 'queued' AND (lease_until IS NULL OR lease_until <= ?) "
                    f"ORDER BY created_at, id LIMIT 1{skip_locked}) RETURNING {COLUMNS}"
                ),
                (worker, now + lease_s, now, now),
            )
            row = cursor.fetchone()
            if row is None:
                return None
            claimed = Evaluation.from_row(row)
            cursor.execute(
                self._sql(
                    "INSERT INTO attempts (evaluation_id, number, worker, started_at) VALUES (?, ?, ?, ?)"
                ),
                (claimed.id, claimed.attempts, worker, now),
            )
            return claimed

    @again_if_lost
    def heartbeat(self, evaluation_id: str, worker: str, lease_s: float = DEFAULT_LEASE_S) -> bool:
        """Renew the lease; False if this worker no longer holds it (it expired and moved on)."""
        with self._transaction() as cursor:
            cursor.execute(
                self._sql(
                    "UPDATE evaluations SET lease_until = ? WHERE id = ? AND lease_owner = ? "
                    "AND status = 'running'"
                ),
                (time.time() + lease_s, evaluation_id, worker),
            )
            return cursor.rowcount == 1

    def finish(
        self,
        evaluation_id: str,
        worker: str,
        status: str,
        result: dict | None = None,
        error: str | None = None,
        retry_after_s: float = 0.0,
    ) -> bool:
        """End a running evaluation held by `worker`: done, error (final), or system_error
        (queued again while attempts remain, claimable `retry_after_s` from now: a source that is
        down is given time to come back). False if the worker no longer held its lease."""
        if status not in ("done", "error", "system_error"):
            raise ValueError(f"a worker cannot finish with status {status!r}")
        now = time.time()
        # A queued row's lease_until is when it may be claimed again (NULL: at once).
        not_before = now + retry_after_s if retry_after_s > 0 else None
        with self._transaction() as cursor:
            cursor.execute(
                self._sql(
                    "UPDATE evaluations SET status = CASE WHEN ? = 'system_error' "
                    "AND attempts < max_attempts THEN 'queued' ELSE ? END, result = ?, error = ?, "
                    "lease_owner = NULL, lease_until = CASE WHEN ? = 'system_error' AND attempts < "
                    "max_attempts THEN CAST(? AS DOUBLE PRECISION) ELSE NULL END, finished_at = CASE "
                    "WHEN ? = 'system_error' AND attempts < max_attempts THEN NULL ELSE ? END "
                    "WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING attempts"
                ),
                (status, status, json.dumps(result) if result is not None else None, error, status,
                 not_before, status, now, evaluation_id, worker),
            )  # fmt: skip
            row = cursor.fetchone()
            if row is None:
                return False
            self._close_attempt(cursor, evaluation_id, row[0], status, error, now)
            return True

    def release(self, evaluation_id: str, worker: str) -> bool:
        """Hand a lease back unfinished (a worker stopping): queued again, the attempt not counted."""
        with self._transaction() as cursor:
            cursor.execute(
                self._sql(
                    "UPDATE evaluations SET status = 'queued', attempts = attempts - 1, "
                    "lease_owner = NULL, lease_until = NULL "
                    "WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING attempts"
                ),
                (evaluation_id, worker),
            )
            row = cursor.fetchone()
            if row is None:
                return False
            cursor.execute(
                self._sql("DELETE FROM attempts WHERE evaluation_id = ? AND number = ?"),
                (evaluation_id, row[0] + 1),
            )
            return True

    @again_if_lost
    def expire_leases(self) -> list[str]:
        """Running evaluations whose lease ran out (their worker died or hung): a system error,
        queued again while attempts remain. Returns their ids."""
        now = time.time()
        detail = "the worker's lease ran out (it died, hung or lost the database)"
        with self._transaction() as cursor:
            cursor.execute(
                self._sql(
                    "UPDATE evaluations SET status = CASE WHEN attempts < max_attempts THEN 'queued' "
                    "ELSE 'system_error' END, error = ?, lease_owner = NULL, lease_until = NULL, "
                    "finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE ? END "
                    "WHERE status = 'running' AND lease_until < ? RETURNING id, attempts"
                ),
                (detail, now, now),
            )
            expired = cursor.fetchall()
            for evaluation_id, attempts in expired:
                self._close_attempt(cursor, evaluation_id, attempts, "system_error", detail, now)
            return [evaluation_id for evaluation_id, _ in expired]

    def cancel(self, evaluation_id: str) -> bool:
        if "\0" in evaluation_id:
            return False
        with self._transaction() as cursor:
            cursor.execute(
                self._sql(
                    "UPDATE evaluations SET status = 'canceled', finished_at = ? WHERE id = ? "
                    "AND status = 'queued'"
                ),
                (time.time(), evaluation_id),
            )
            return cursor.rowcount == 1

    def _close_attempt(
        self, cursor: Any, evaluation_id: str, number: int, outcome: str, detail: str | None, now: float
    ) -> None:
        cursor.execute(
            self._sql(
                "UPDATE attempts SET finished_at = ?, outcome = ?, detail = ? WHERE evaluation_id = ? "
                "AND number = ? AND finished_at IS NULL"
            ),
            (now, outcome, detail, evaluation_id, number),
        )

    # -- reading ------------------------------------------------------------------------------

    @again_if_lost
    def get(self, evaluation_id: str) -> Evaluation | None:
        if "\0" in evaluation_id:  # no row holds one (Postgres text cannot), and it would be an error
            return None
        with self._transaction() as cursor:
            cursor.execute(self._sql(f"SELECT {COLUMNS} FROM evaluations WHERE id = ?"), (evaluation_id,))
            row = cursor.fetchone()
            return Evaluation.from_row(row) if row else None

    @again_if_lost
    def attempts(self, evaluation_id: str) -> list[Attempt]:
        if "\0" in evaluation_id:
            return []
        with self._transaction() as cursor:
            cursor.execute(
                self._sql(
                    "SELECT number, worker, started_at, finished_at, outcome, detail FROM attempts "
                    "WHERE evaluation_id = ? ORDER BY number"
                ),
                (evaluation_id,),
            )
            return [Attempt(*row) for row in cursor.fetchall()]

    @again_if_lost
    def list(
        self,
        status: str | None = None,
        policy_uri: str | None = None,
        limit: int = 100,
        suite: str | None = None,
    ) -> list[Evaluation]:
        if any("\0" in text for text in (status, policy_uri, suite) if text is not None):
            return []  # no stored text holds a NUL
        where, values = [], []
        if suite is not None:  # stored as ",a,b,": a whole name matches, never a part of one
            where.append("suites LIKE ? ESCAPE '!'")
            escaped = suite.replace("!", "!!").replace("%", "!%").replace("_", "!_")
            values.append(f"%,{escaped},%")
        if status is not None:
            where.append("status = ?")
            values.append(status)
        if policy_uri is not None:
            where.append("policy_uri = ?")
            values.append(policy_uri)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._transaction() as cursor:
            cursor.execute(
                self._sql(f"SELECT {COLUMNS} FROM evaluations{clause} ORDER BY created_at DESC, id LIMIT ?"),
                (*values, max(1, min(limit, 1000))),
            )
            return [Evaluation.from_row(row) for row in cursor.fetchall()]


def _operational(exc: BaseException) -> bool:
    """The DB-API's OperationalError (sqlite3's and psycopg's alike): the database, not the query."""
    return any(cls.__name__ == "OperationalError" for cls in type(exc).__mro__)


def open_store(url: str) -> Store:
    """`postgresql://USER:PASSWORD@HOST/DB` (psycopg), or `sqlite:///PATH` (one process)."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "a postgresql:// queue needs psycopg: pip install 'pytest-policyeval[serve]'"
            ) from None
        return Store(lambda: psycopg.connect(url, connect_timeout=10), sqlite=False, url=url)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return Store(
            lambda: sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False),
            sqlite=True,
            url=url,
        )
    raise StoreError(
        f"{safe_url(url)[:200]}: the queue's database must be postgresql://... or sqlite:///PATH"
    )
