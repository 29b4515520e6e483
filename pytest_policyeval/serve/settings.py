"""The service's settings, from its environment (Kubernetes Secrets and ConfigMaps set these)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_policyeval.serve.store import DEFAULT_MAX_ATTEMPTS

DATABASE_VAR = "POLICYEVAL_DATABASE_URL"  # postgresql://... ; default: a SQLite file (one process)
API_TOKENS_VAR = "POLICYEVAL_API_TOKENS"  # comma-separated bearer tokens for /evaluations
WANDB_TOKEN_VAR = "POLICYEVAL_WANDB_TOKEN"  # the bearer token a W&B Automation sends
WEBHOOK_SECRET_VAR = "POLICYEVAL_WEBHOOK_SECRET"  # the HMAC secret of /webhooks/generic
DEFAULT_SUITES_VAR = "POLICYEVAL_DEFAULT_SUITES"  # suites of webhook evaluations (default navigation)
DEFAULT_OUTPUT_VAR = "POLICYEVAL_DEFAULT_OUTPUT_URI"  # where webhook evaluations publish
DEFAULT_BASELINE_VAR = "POLICYEVAL_DEFAULT_BASELINE_URI"  # what webhook evaluations gate against
REPORTS_VAR = "POLICYEVAL_REPORTS_DIR"  # results and reports the workers keep and the API serves
# Comma-separated URI schemes a request may name (its policy, baseline and output); unset: any.
# A service others can reach should leave out the local ones (file, pytorch, sb3 and bare paths).
ALLOWED_SCHEMES_VAR = "POLICYEVAL_ALLOWED_SCHEMES"


@dataclass(frozen=True)
class ServeSettings:
    database_url: str
    api_tokens: tuple[str, ...] = ()
    wandb_token: str | None = None
    webhook_secret: str | None = None
    webhook_defaults: dict[str, Any] = field(default_factory=dict)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    reports_dir: Path = Path("reports")
    allowed_schemes: frozenset[str] | None = None  # None: any scheme

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, database_url: str | None = None) -> ServeSettings:
        env = dict(os.environ if env is None else env)
        if not database_url:
            database_url = env.get(DATABASE_VAR) or f"sqlite:///{default_database()}"
        defaults: dict[str, Any] = {}
        if env.get(DEFAULT_SUITES_VAR):
            defaults["suites"] = [s.strip() for s in env[DEFAULT_SUITES_VAR].split(",") if s.strip()]
        if env.get(DEFAULT_OUTPUT_VAR):
            defaults["output_uri"] = env[DEFAULT_OUTPUT_VAR]
        if env.get(DEFAULT_BASELINE_VAR):
            defaults["baseline_uri"] = env[DEFAULT_BASELINE_VAR]
        return cls(
            database_url=database_url,
            api_tokens=tuple(t.strip() for t in env.get(API_TOKENS_VAR, "").split(",") if t.strip()),
            wandb_token=env.get(WANDB_TOKEN_VAR) or None,
            webhook_secret=env.get(WEBHOOK_SECRET_VAR) or None,
            webhook_defaults=defaults,
            reports_dir=Path(env.get(REPORTS_VAR) or service_dir() / "reports"),
            allowed_schemes=frozenset(
                scheme.strip().removesuffix("://")
                for scheme in env[ALLOWED_SCHEMES_VAR].split(",")
                if scheme.strip()
            )
            if env.get(ALLOWED_SCHEMES_VAR, "").strip()
            else None,
        )


def service_dir() -> Path:
    from pytest_policyeval.policies.sources.cache import default_data_dir

    folder = default_data_dir() / "service"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def default_database() -> Path:
    return service_dir() / "queue.db"
