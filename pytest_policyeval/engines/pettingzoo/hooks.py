"""The pettingzoo engine and its scripted-mpe:// reference players, registered as hook implementations.

Named lazily ("module:attribute"): loading the plugin imports neither pettingzoo nor the engine.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(trylast=True)  # a plugin's own may replace a built-in
def pytest_policyeval_engines() -> dict[str, Any]:
    return {"pettingzoo": "pytest_policyeval.engines.pettingzoo.engine:PettingZooEngine"}


@pytest.hookimpl(trylast=True)  # a plugin's own may replace a built-in
def pytest_policyeval_policy_schemes() -> dict[str, Any]:
    return {"scripted-mpe": "pytest_policyeval.engines.pettingzoo.scripted:load_scripted_mpe"}
