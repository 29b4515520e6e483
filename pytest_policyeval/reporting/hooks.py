"""The built-in result sinks and publishers, registered as hook implementations."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(trylast=True)  # a plugin's own may replace a built-in
def pytest_policyeval_sinks() -> dict[str, Any]:
    return {
        "file": "pytest_policyeval.reporting.sinks:LocalSink",
        "s3": "pytest_policyeval.reporting.sinks:S3Sink",
        "wandb": "pytest_policyeval.reporting.sinks:WandbSink",
    }


@pytest.hookimpl(tryfirst=True)
def pytest_policyeval_publish(document: dict[str, Any], results: list[Any], publishing: Any) -> None:
    """--wandb: one W&B run with the metrics, the table and the films; then --eval-output-uri:
    replays, YAML and JSON uploaded (a wandb:// destination's artifact joins the same run)."""
    from pytest_policyeval.reporting.publishing import PublishError
    from pytest_policyeval.reporting.sinks import SinkError, publish

    if publishing.wandb:
        from pytest_policyeval.reporting.wandb_log import log_results, open_run

        try:
            run = open_run(
                publishing.wandb_run_name, publishing.wandb_entity, publishing.wandb_project, publishing.run
            )
            publishing.wandb_run = run
            publishing.wandb_url = getattr(run, "url", None) or getattr(run, "dir", None)
            log_results(run, results, publishing.films)
        except Exception as exc:  # the W&B client's own errors: said, and the output URI still gets its files
            said = " ".join(str(exc).split())[:300]  # pydantic's and the client's run to many lines
            publishing.errors.append(f"W&B logging failed: {type(exc).__name__}: {said}")
    if publishing.output_uri:
        try:
            publishing.published += publish(
                publishing.output_uri, results, publishing.run, publishing.replay_dir, publishing.wandb_run
            )
        except SinkError as exc:
            raise PublishError(str(exc)) from None
