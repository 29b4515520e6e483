"""`policyeval serve`: the command line of the evaluation service."""

from __future__ import annotations

import argparse
from pathlib import Path
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
    serve.add_argument(
        "--worker",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run a worker in this process (default: with a SQLite queue, so that one command "
        "serves a laptop; with Postgres, run `policyeval worker` processes)",
    )
    serve.set_defaults(run=_serve)
    worker = commands.add_parser(
        "worker",
        help="claim queued evaluations and run them (each in a child pytest process)",
        description="Run evaluations from the queue (pytest_policyeval/serve/worker.py) until SIGTERM, "
        "which hands the current one back. The queue from --database or POLICYEVAL_DATABASE_URL.",
    )
    worker.add_argument("--database", metavar="URL", help="postgresql://... or sqlite:///PATH")
    worker.add_argument("--work-dir", type=Path, help="where runs happen (default: the data dir)")
    worker.add_argument("--lease", type=float, default=60.0, help="lease in seconds (default 60)")
    worker.add_argument("--heartbeat", type=float, default=15.0, help="lease renewal period (default 15)")
    worker.add_argument("--poll", type=float, default=2.0, help="seconds between looks at an empty queue")
    worker.add_argument("--device", help="--device of every run (cuda on a GPU worker)")
    worker.set_defaults(run=_worker)


def _worker(args: argparse.Namespace) -> int:
    from pytest_policyeval.serve.settings import ServeSettings, service_dir
    from pytest_policyeval.serve.store import StoreError, open_store
    from pytest_policyeval.serve.worker import Worker, WorkerSettings

    settings = ServeSettings.from_env(database_url=args.database)
    if not args.heartbeat < args.lease:
        print("policyeval worker: --heartbeat must be shorter than --lease")
        return 2
    try:
        store = open_store(settings.database_url)
    except StoreError as exc:
        print(f"policyeval worker: {exc}")
        return 2
    work = WorkerSettings(
        work_dir=args.work_dir or service_dir() / "runs",
        reports_dir=settings.reports_dir,
        lease_s=args.lease,
        heartbeat_s=args.heartbeat,
        poll_s=args.poll,
        device=args.device,
    )
    Worker(store, work).run_forever()
    return 0


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
    embedded = None
    if args.worker or (args.worker is None and settings.database_url.startswith("sqlite:")):
        try:
            embedded = _embedded_worker(settings)
        except StoreError as exc:
            print(f"policyeval serve: {exc}")
            return 2

    def stop_worker() -> None:
        if embedded is not None:
            worker, thread = embedded
            worker.stopping.set()  # its evaluation is handed back, to be run again next time
            thread.join(timeout=60)

    def worker_health() -> dict[str, Any] | None:
        assert embedded is not None
        worker, thread = embedded
        return worker.health() if thread.is_alive() else None

    try:
        app = create_app(settings, on_shutdown=stop_worker, worker_health=worker_health if embedded else None)
    except StoreError as exc:
        stop_worker()
        print(f"policyeval serve: {exc}")
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0


def _embedded_worker(settings: Any) -> tuple[Any, Any]:
    """A worker thread beside the API, on the same queue (laptop mode)."""
    import threading

    from pytest_policyeval.serve.settings import service_dir
    from pytest_policyeval.serve.store import open_store
    from pytest_policyeval.serve.worker import Worker, WorkerSettings

    work = WorkerSettings(work_dir=service_dir() / "runs", reports_dir=settings.reports_dir, poll_s=1.0)
    worker = Worker(open_store(settings.database_url), work)
    thread = threading.Thread(target=worker.run_forever, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    return worker, thread
