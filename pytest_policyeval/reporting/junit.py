"""Suite-level results in a junitxml report: what CI dashboards read beside the per-test ones.

Each task's evidence is a test case property (collection/items.py). The suite verdict and the
headline belong to no test case, so they are written as the test suite's properties, one set per
policy, named with the policy's label (URIs may carry credentials; labels do not).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from pytest_policyeval.reporting.documents import by_policy, suite_summary, verdict_counts
from pytest_policyeval.results import TaskResult


def suite_properties(results: Sequence[TaskResult], run: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) pairs: whether the run is whole, then each policy's verdict and headline."""
    properties = [
        ("policyeval_run_complete", str(run.get("complete") is True and not run.get("interrupted")).lower())
    ]
    for group in by_policy(results).values():
        label = group[0].policy_label
        summary = suite_summary(group, run)
        verdict, iqm = summary["suite_verdict"], summary["iqm_normalised_score"]
        if verdict.get("outcome"):
            properties += [
                (f"policyeval_suite_verdict[{label}]", verdict["outcome"]),
                (f"policyeval_suite_tally[{label}]", verdict_counts(verdict)),
                (f"policyeval_suite_guarantee[{label}]", str(verdict.get("guarantee", ""))),
            ]
        if iqm.get("iqm") is not None:
            interval = f" [{iqm['low']:.6g}, {iqm['high']:.6g}]" if iqm.get("low") is not None else ""
            properties.append((f"policyeval_iqm[{label}]", f"{iqm['iqm']:.6g}{interval} ({iqm['method']})"))
    return properties


def add_suite_properties(config: pytest.Config, results: Sequence[TaskResult], run: dict[str, Any]) -> None:
    """Adds them to this run's junitxml report, if it writes one (only the process that writes it
    has one: not an xdist worker)."""
    try:
        from _pytest.junitxml import xml_key  # where record_testsuite_property finds the report too
    except ImportError:  # a pytest that moved it: the per-test properties are still written
        return
    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    for name, value in suite_properties(results, run):
        xml.add_global_property(name, value)
