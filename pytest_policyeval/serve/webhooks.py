"""Who may ask for an evaluation, and what each sender's delivery asks for.

Checks come before parsing: a bearer token (the API, W&B Automations) or a GitHub-style signature
(`X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body>`, any CI system) is compared in
constant time on the raw bytes; only then is the body, bounded in size, read as JSON. Each
delivery gets an idempotency key: a signed delivery the digest of its body (the delivery id is not
signed, so it cannot tell a replay from a new event), a W&B one the content that makes it the same
event and the request it makes (W&B sends no id).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from pydantic import ValidationError

from pytest_policyeval.serve.requests import EvaluationRequest, content_key, request_digest

MAX_BODY_BYTES = 64 << 10
DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# What a W&B Automation's template may send (its variables; the template is the user's own).
WANDB_EVENTS = ("ADD_ARTIFACT_ALIAS", "CREATE_ARTIFACT", "LINK_ARTIFACT", "ADD_ARTIFACT_TAG")
ARTIFACT = re.compile(
    r"^(?P<entity>[\w.-]{1,128})/(?P<project>[\w.-]{1,128})/(?P<name>[\w.-]{1,128}):(?P<version>v\d{1,9})$"
)


class Refused(Exception):
    """A delivery refused: `status` is the HTTP answer (401 unauthenticated, 413, 422 unusable)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def bearer_ok(header: str | None, tokens: tuple[str, ...]) -> bool:
    """`Authorization: Bearer TOKEN` with one of `tokens`, compared in constant time."""
    if not header or not tokens or not header.startswith("Bearer "):
        return False
    given = header.removeprefix("Bearer ").strip().encode()
    # Every token is compared, so the time taken says nothing about which one came close.
    return any([hmac.compare_digest(given, token.encode()) for token in tokens])


def token_scope(header: str | None) -> str:
    """A short digest of the bearer token sent, so that one holder's keys are not another's."""
    given = (header or "").removeprefix("Bearer ").strip()
    return hashlib.sha256(given.encode()).hexdigest()[:16]


def signature_ok(body: bytes, header: str | None, secret: str) -> bool:
    """GitHub's `X-Hub-Signature-256: sha256=HEX`, the HMAC-SHA256 of the raw body."""
    if not header or not secret or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.removeprefix("sha256=").strip().lower().encode(), expected.encode())


def read_json(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, f"the body is {len(body)} bytes; at most {MAX_BODY_BYTES} are read")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Refused(422, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise Refused(422, "the body must be a JSON object")
    return data


def evaluation_request(data: dict[str, Any], where: str) -> EvaluationRequest:
    try:
        return EvaluationRequest.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "body"
        raise Refused(422, f"{where}: {field}: {problem['msg']}") from None


def with_defaults(given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A webhook's fields over the service's defaults; a field given as null is not given."""
    return {**defaults, **{name: value for name, value in given.items() if value is not None}}


def generic_delivery(
    body: bytes,
    signature: str | None,
    delivery: str | None,
    secret: str,
    defaults: dict[str, Any] | None = None,
) -> tuple[EvaluationRequest, str]:
    """A signed delivery from any CI system: the request and its key (the signed body's digest)."""
    if not signature_ok(body, signature, secret):
        raise Refused(401, "the X-Hub-Signature-256 signature does not match the body")
    if not delivery or not DELIVERY_ID.match(delivery):
        raise Refused(
            422, "a delivery needs an X-GitHub-Delivery (or X-Delivery-Id) id of 1-128 safe characters"
        )
    request = evaluation_request(with_defaults(read_json(body), defaults or {}), "generic webhook")
    # Keyed on what the signature covers: a captured body replayed under new ids is one evaluation.
    return request, "generic:" + hashlib.sha256(body).hexdigest()


def wandb_delivery(body: bytes, defaults: dict[str, Any]) -> tuple[EvaluationRequest, str]:
    """A W&B Automation's delivery (bearer-checked by the caller) as an evaluation of exactly the
    artifact version it names: `artifact_version_string` (ENTITY/PROJECT/NAME:vN), with
    `artifact_type` (default "model") and optional `suites`, `num_episodes`, `baseline_uri`."""
    data = read_json(body)
    event = str(data.get("event_type", ""))
    if event not in WANDB_EVENTS:
        raise Refused(422, f"W&B webhook: event_type {event[:60]!r} is not one of {', '.join(WANDB_EVENTS)}")
    version = ARTIFACT.match(str(data.get("artifact_version_string", "")))
    if version is None or {version["entity"], version["project"], version["name"]} & {".", ".."}:
        raise Refused(
            422, "W&B webhook: artifact_version_string must be ENTITY/PROJECT/NAME:vN (the template's "
            "${artifact_version_string})"
        )  # fmt: skip
    kind = str(data.get("artifact_type") or "model")
    if not re.fullmatch(r"[\w.-]{1,64}", kind):
        raise Refused(422, "W&B webhook: artifact_type must be a W&B artifact type such as model")
    uri = f"wandb://{version['entity']}/{version['project']}/{kind}/{version['name']}:{version['version']}"
    asked = with_defaults({k: data.get(k) for k in ("suites", "num_episodes", "baseline_uri")}, defaults)
    request = evaluation_request({**asked, "policy_uri": uri}, "W&B webhook")
    # Two automations on one event asking for different evaluations are two evaluations.
    event_of = {"event": event, "version": version.group(0), "alias": data.get("alias")}
    return request, content_key("wandb", {**event_of, "request": request_digest(request)})
