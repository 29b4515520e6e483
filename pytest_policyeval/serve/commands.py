"""`policyeval serve`: the command line of the evaluation service."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="the evaluation service: an HTTP API and webhooks over a durable queue",
        description="Serve the evaluation API (pytest_policyeval/serve/api.py). Tokens and secrets come "
        "from POLICYEVAL_API_TOKENS, POLICYEVAL_WANDB_TOKEN and POLICYEVAL_WEBHOOK_SECRET; the queue "
        "from --database or POLICYEVAL_DATABASE_URL (default: a SQLite file in the data dir).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    serve.add_argument("--database", metavar="URL", help="postgresql://... or sqlite:///PATH")
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from pytest_policyeval.serve.api import create_app
    except ImportError as exc:
        print(f"policyeval serve needs its extra: pip install 'pytest-policyeval[serve]' ({exc})")
        return 2
    from pytest_policyeval.serve.settings import ServeSettings
    from pytest_policyeval.serve.store import StoreError

    settings = ServeSettings.from_env(database_url=args.database)
    if not settings.api_tokens:
        print("policyeval serve: set POLICYEVAL_API_TOKENS (comma-separated bearer tokens) first")
        return 2
    try:
        app = create_app(settings)
    except StoreError as exc:
        print(f"policyeval serve: {exc}")
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0
