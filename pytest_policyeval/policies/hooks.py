"""The built-in policy schemes and remote sources, registered as hook implementations."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(trylast=True)  # a plugin's own may replace a built-in
def pytest_policyeval_policy_schemes() -> dict[str, Any]:
    return {
        "random": "pytest_policyeval.policies.uri:load_random",
        "file": "pytest_policyeval.policies.uri:load_file",
        "pytorch": "pytest_policyeval.policies.uri:load_pytorch",
        "sb3": "pytest_policyeval.policies.sb3.loader:load_sb3",
    }


@pytest.hookimpl(trylast=True)  # a plugin's own may replace a built-in
def pytest_policyeval_policy_sources() -> dict[str, Any]:
    return {
        "http": "pytest_policyeval.policies.sources.http:HttpSource",
        "https": "pytest_policyeval.policies.sources.http:HttpSource",
        "s3": "pytest_policyeval.policies.sources.s3:S3Source",
        "wandb": "pytest_policyeval.policies.sources.wandb:WandbSource",
    }
