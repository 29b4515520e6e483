"""The built-in gates, registered as hook implementations."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(trylast=True)  # a plugin's own may replace a built-in
def pytest_policyeval_gates() -> dict[str, Any]:
    from pytest_policyeval.gates.decide import FixedGate, SequentialGate

    return {"sequential": SequentialGate(), "mean": FixedGate("mean"), "ci": FixedGate("ci")}
