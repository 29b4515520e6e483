"""The queue's database connections: the errors a store raises, a lost connection noticed and
dropped, and messages that never quote the database's password."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class StoreError(RuntimeError):
    """The queue's database cannot be reached or used; the message names it."""


class LostConnection(StoreError):
    """The connection broke (the server restarted or cut it); the next call connects again."""


def again_if_lost(method: Callable[..., T]) -> Callable[..., T]:
    """Runs a call that may safely run twice (a read, or a write its key or condition makes
    idempotent) once more on a fresh connection when the old one turns out to be lost: after a
    database restart, callers see no error at all."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except LostConnection:
            return method(self, *args, **kwargs)

    return call


def lost(connection: Any) -> bool:
    """Whether a connection can no longer be used (psycopg marks one closed or broken)."""
    return bool(getattr(connection, "closed", False) or getattr(connection, "broken", False))


def redacted(text: str, url: str) -> str:
    """A driver's message may quote the URL it was given, password and all (libpq does)."""
    from pytest_policyeval.redact import redact_text

    return redact_text(text, [url])


def safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    from pytest_policyeval.redact import redact_uri

    return redact_uri(url)
