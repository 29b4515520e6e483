"""The gymnasium engine, registered as a hook implementation (named lazily: gymnasium loads on use)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(trylast=True)  # a plugin's own may replace a built-in
def pytest_policyeval_engines() -> dict[str, Any]:
    return {"gymnasium": "pytest_policyeval.engines.gymnasium.engine:GymnasiumEngine"}
