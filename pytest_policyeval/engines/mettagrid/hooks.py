"""The mettagrid engine and its scripted:// reference players, registered as hook implementations."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(trylast=True)  # a plugin's own may replace a built-in
def pytest_policyeval_engines() -> dict[str, Any]:
    return {"mettagrid": "pytest_policyeval.engines.mettagrid.engine:MettagridEngine"}


@pytest.hookimpl(trylast=True)  # a plugin's own may replace a built-in
def pytest_policyeval_policy_schemes() -> dict[str, Any]:
    return {"scripted": "pytest_policyeval.engines.mettagrid.scripted:load_scripted"}
