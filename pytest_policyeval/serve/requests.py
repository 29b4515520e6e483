"""What an evaluation request is, whoever sends it, and the key that makes it idempotent."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_URI = 2048


class EvaluationRequest(BaseModel):
    """One evaluation: a policy on suites, optionally gated against a baseline, published."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    policy_uri: str = Field(min_length=1, max_length=MAX_URI)
    suites: tuple[str, ...] = Field(default=("navigation",), min_length=1, max_length=32)
    num_episodes: int | None = Field(default=None, ge=1, le=100_000)
    baseline_uri: str | None = Field(default=None, min_length=1, max_length=MAX_URI)
    output_uri: str | None = Field(default=None, min_length=1, max_length=MAX_URI)

    @field_validator("suites")
    @classmethod
    def _suite_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            # A name the suite lookup resolves, never a path: a request must not name files.
            if not name or len(name) > 64 or not all(c.isalnum() or c in "_-" for c in name):
                raise ValueError(f"{name[:64]!r} is not a suite name (letters, digits, '_' and '-')")
            if not name[0].isalnum():  # never read as an option
                raise ValueError(f"{name[:64]!r} is not a suite name (it must start with a letter or digit)")
        return value

    @field_validator("policy_uri", "baseline_uri", "output_uri")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 for c in value):
            raise ValueError("contains control characters")
        if value is not None and value.startswith("-"):  # an option, not a URI
            raise ValueError("starts with '-': not a URI")
        return value


def disallowed_uri(request: EvaluationRequest, allowed: frozenset[str] | None) -> str | None:
    """Why the request names a URI whose scheme the service does not take, or None."""
    if allowed is None:
        return None
    from pytest_policyeval.policies.naming import split_uri
    from pytest_policyeval.reporting.sinks import sink_scheme

    for field_name in ("policy_uri", "baseline_uri", "output_uri"):
        uri = getattr(request, field_name)
        if uri is None:
            continue
        # Each as its reader parses it: a bare path is file:// (for a sink, even a bare "random").
        scheme = sink_scheme(uri) if field_name == "output_uri" else split_uri(uri)[0]
        if scheme not in allowed:
            return (
                f"{field_name}: this service takes only {', '.join(sorted(allowed))} URIs "
                f"(POLICYEVAL_ALLOWED_SCHEMES), not {scheme}://"
            )
    return None


def content_key(source: str, parts: dict[str, Any]) -> str:
    """An idempotency key from what a delivery says, for senders without a delivery id."""
    text = json.dumps({"source": source, **parts}, sort_keys=True, separators=(",", ":"))
    return f"{source}:" + hashlib.sha256(text.encode()).hexdigest()[:40]


def request_digest(request: EvaluationRequest) -> str:
    """A digest of everything the request asks for (its normalized fields)."""
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()[:40]
