"""The queue's tables and the records read from them (store.py writes and claims them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pytest_policyeval.serve.requests import EvaluationRequest

STATUSES = ("queued", "running", "done", "error", "system_error", "canceled")
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_LEASE_S = 60.0

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS evaluations (
        id TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        request TEXT NOT NULL,
        policy_uri TEXT NOT NULL,
        suites TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        result TEXT,
        error TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS evaluations_queue ON evaluations (status, created_at)",
    """CREATE TABLE IF NOT EXISTS attempts (
        evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
        number INTEGER NOT NULL,
        worker TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        outcome TEXT,
        detail TEXT,
        PRIMARY KEY (evaluation_id, number)
    )""",
    # Written and emptied by /readyz: a queue that can be read but not written is not ready.
    "CREATE TABLE IF NOT EXISTS readiness (probe INTEGER)",
]
COLUMNS = (
    "id, idempotency_key, source, request, policy_uri, suites, status, attempts, max_attempts, lease_owner, "
    "lease_until, created_at, started_at, finished_at, result, error"
)


@dataclass(frozen=True)
class Evaluation:
    id: str
    idempotency_key: str
    source: str
    request: EvaluationRequest
    status: str
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_until: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    result: dict[str, Any] | None
    error: str | None

    @classmethod
    def from_row(cls, row: tuple) -> Evaluation:
        (id_, key, source, request, _policy, _suites, status, attempts, max_attempts, owner, until,
         created, started, finished, result, error) = row  # fmt: skip
        return cls(
            id_, key, source, EvaluationRequest.model_validate_json(request), status, attempts,
            max_attempts, owner, until, created, started, finished,
            json.loads(result) if result else None, error,
        )  # fmt: skip


@dataclass(frozen=True)
class Attempt:
    number: int
    worker: str
    started_at: float
    finished_at: float | None
    outcome: str | None
    detail: str | None
