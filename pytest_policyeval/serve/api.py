"""`policyeval serve`: the HTTP API over the evaluation queue (FastAPI, served by uvicorn).

    POST /evaluations          bearer token; an EvaluationRequest; `Idempotency-Key` optional
    POST /webhooks/wandb       a W&B Automation's payload, with its bearer token
    POST /webhooks/generic     any CI system, signed as GitHub signs (X-Hub-Signature-256)
    GET  /evaluations/{id}     status, attempts, timings, results
    GET  /evaluations/{id}/report   the HTML report its worker kept
    GET  /evaluations          ?status=&policy_uri=&suite=&limit=
    DELETE /evaluations/{id}   cancel a queued evaluation (409 once it runs)
    GET  /healthz, /readyz     liveness; readiness (the database takes a write, an embedded worker runs)
    GET  /                     the status page

A request that is not authenticated, or not signed with the secret, gets 401 and nothing is
stored. Every accepted request is answered 202 with its id at once; a duplicate (the same signed
body, W&B event or Idempotency-Key) gets the id it got the first time, and an Idempotency-Key
reused with a different request gets 409.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from pytest_policyeval.serve.requests import EvaluationRequest, disallowed_uri
from pytest_policyeval.serve.settings import ServeSettings
from pytest_policyeval.serve.store import STATUSES, Evaluation, Store, StoreError, open_store
from pytest_policyeval.serve.webhooks import (
    MAX_BODY_BYTES,
    Refused,
    bearer_ok,
    evaluation_request,
    generic_delivery,
    read_json,
    token_scope,
    wandb_delivery,
)


def create_app(
    settings: ServeSettings,
    store: Store | None = None,
    on_shutdown: Callable[[], None] | None = None,
    worker_health: Callable[[], dict[str, Any] | None] | None = None,
) -> FastAPI:
    """The API; `on_shutdown` runs when the server stops gracefully (an embedded worker's end);
    `worker_health` says how an embedded worker is (None: its thread has ended), for /readyz."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await run_in_threadpool(on_shutdown)

    app = FastAPI(
        title="pytest-policyeval", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    queue = store or open_store(settings.database_url)

    async def body_of(request: Request) -> bytes:
        """The raw body, read no further than the limit (before any check or parse)."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise Refused(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        return bytes(body)

    def require_token(request: Request, tokens: tuple[str, ...]) -> None:
        if not bearer_ok(request.headers.get("authorization"), tokens):
            raise Refused(401, "a valid bearer token is needed (Authorization: Bearer TOKEN)")

    async def accept(request_: EvaluationRequest, key: str, source: str, keyed: bool = False) -> JSONResponse:
        refused = disallowed_uri(request_, settings.allowed_schemes)
        if refused is not None:
            raise Refused(422, refused)
        evaluation_id, created = await run_in_threadpool(
            queue.enqueue, request_, key, source, settings.max_attempts
        )
        if keyed and not created:  # a client's key: answering the first id would drop this request
            first = await run_in_threadpool(queue.get, evaluation_id)
            if first is not None and first.request != request_:
                raise Refused(409, "Idempotency-Key reused with a different request")
        body = {"id": evaluation_id, "duplicate": not created, "url": f"/evaluations/{evaluation_id}"}
        return JSONResponse(body, status_code=202)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(StoreError)
    async def unavailable(request: Request, exc: StoreError) -> JSONResponse:
        # The database is down or was restarted: the next request connects again. Retry-After
        # tells clients (and webhook senders) to come back rather than give up.
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.post("/evaluations")
    async def post_evaluation(request: Request) -> JSONResponse:
        require_token(request, settings.api_tokens)
        asked = evaluation_request(read_json(await body_of(request)), "evaluation")
        given = request.headers.get("idempotency-key")
        if given is not None and not (0 < len(given) <= 128 and given.isprintable()):
            raise Refused(422, "Idempotency-Key must be 1-128 printable characters")
        if not given:
            return await accept(asked, f"api:{uuid.uuid4().hex}", "api")
        # Each token's holder has keys of their own: no one can take (or learn of) another's.
        scope = token_scope(request.headers.get("authorization"))
        return await accept(asked, f"api:{scope}:{given}", "api", keyed=True)

    @app.post("/webhooks/wandb")
    async def post_wandb(request: Request) -> JSONResponse:
        require_token(request, (settings.wandb_token,) if settings.wandb_token else ())
        asked, key = wandb_delivery(await body_of(request), settings.webhook_defaults)
        return await accept(asked, key, "wandb")

    @app.post("/webhooks/generic")
    async def post_generic(request: Request) -> JSONResponse:
        body = await body_of(request)
        delivery = request.headers.get("x-github-delivery") or request.headers.get("x-delivery-id")
        signature = request.headers.get("x-hub-signature-256")
        secret = settings.webhook_secret or ""
        asked, key = generic_delivery(body, signature, delivery, secret, settings.webhook_defaults)
        return await accept(asked, key, "generic")

    @app.get("/evaluations/{evaluation_id}")
    async def get_evaluation(evaluation_id: str, request: Request) -> dict[str, Any]:
        require_token(request, settings.api_tokens)
        found = await run_in_threadpool(queue.get, evaluation_id[:64])
        if found is None:
            raise HTTPException(404, "no such evaluation")
        attempts = await run_in_threadpool(queue.attempts, found.id)
        return {**describe(found), "attempts": [vars(a) for a in attempts]}

    @app.get("/evaluations/{evaluation_id}/report", response_class=HTMLResponse)
    async def report(evaluation_id: str) -> FileResponse:
        # The id is the folder's name: only the hex ids this service makes are looked up.
        if not re.fullmatch(r"[0-9a-f]{32}", evaluation_id):
            raise HTTPException(404, "no such evaluation")
        path = settings.reports_dir / evaluation_id / "report.html"
        if not path.is_file():
            raise HTTPException(404, "no report (yet) for this evaluation")
        return FileResponse(path, media_type="text/html")

    @app.get("/evaluations")
    async def list_evaluations(
        request: Request,
        status: str | None = None,
        policy_uri: str | None = None,
        suite: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        require_token(request, settings.api_tokens)
        if status is not None and status not in STATUSES:
            raise Refused(422, f"status must be one of {', '.join(STATUSES)}")
        found = await run_in_threadpool(queue.list, status, policy_uri, limit, suite)
        return {"evaluations": [describe(e) for e in found]}

    @app.delete("/evaluations/{evaluation_id}")
    async def cancel(evaluation_id: str, request: Request) -> dict[str, Any]:
        require_token(request, settings.api_tokens)
        if not await run_in_threadpool(queue.cancel, evaluation_id[:64]):
            found = await run_in_threadpool(queue.get, evaluation_id[:64])
            if found is None:
                raise HTTPException(404, "no such evaluation")
            raise Refused(409, f"only a queued evaluation can be canceled; this one is {found.status}")
        return {"id": evaluation_id, "status": "canceled"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            await run_in_threadpool(queue.ping)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)[:300]}, status_code=503)
        if worker_health is None:
            return JSONResponse({"status": "ready"})
        # Laptop mode: requests are accepted only to be run here, so a dead worker is not ready.
        health = worker_health()
        if health is None:
            return JSONResponse(
                {"status": "unavailable", "error": "the embedded worker has stopped"}, status_code=503
            )
        ready = health["state"] == "ok"
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "worker": health},
            status_code=200 if ready else 503,
        )

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        from pytest_policyeval.serve.page import status_page

        return status_page(await run_in_threadpool(queue.list, None, None, 200))

    return app


def describe(evaluation: Evaluation) -> dict[str, Any]:
    """An evaluation as the API shows it (URIs without their passwords or signatures)."""
    from pytest_policyeval.redact import redact_uri

    request = evaluation.request.model_dump()
    for name in ("policy_uri", "baseline_uri", "output_uri"):
        if request.get(name):
            request[name] = redact_uri(request[name])
    return {
        "id": evaluation.id,
        "status": evaluation.status,
        "source": evaluation.source,
        "request": request,
        "attempts_made": evaluation.attempts,
        "max_attempts": evaluation.max_attempts,
        "created_at": evaluation.created_at,
        "started_at": evaluation.started_at,
        "finished_at": evaluation.finished_at,
        # A queued evaluation retried after its source was down waits until then.
        "retry_at": evaluation.lease_until if evaluation.status == "queued" else None,
        "error": evaluation.error,
        "result": evaluation.result,
        "links": {
            "self": f"/evaluations/{evaluation.id}",
            "report": (evaluation.result or {}).get("report_url"),
            "published": request.get("output_uri"),  # the results and replays, where they were published
        },
    }
