"""The built-in result sinks, registered as hook implementations."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl
def pytest_policyeval_sinks() -> dict[str, Any]:
    return {
        "file": "pytest_policyeval.reporting.sinks:LocalSink",
        "s3": "pytest_policyeval.reporting.sinks:S3Sink",
        "wandb": "pytest_policyeval.reporting.sinks:WandbSink",
    }
