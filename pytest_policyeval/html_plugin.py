"""The HTML report's pytest-html hooks: registered by the plugin, on the controller, when `--html`
is given and pytest-html is installed. What the report shows is rendered by reporting/html.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import pytest

from pytest_policyeval.controller import Controller
from pytest_policyeval.evaluation import EvalOptions
from pytest_policyeval.keys import FILMS_KEY, RESULT_KEY
from pytest_policyeval.redact import redact_data, redact_uri
from pytest_policyeval.reporting.documents import by_policy
from pytest_policyeval.reporting.html import COLUMNS, asset, row_cells, summary_html, task_extras
from pytest_policyeval.results import TaskResult


def environment(options: EvalOptions, rootpath: Path, results: Sequence[TaskResult]) -> dict[str, Any]:
    """Rows for the report's environment table (pytest-metadata's dict)."""
    from pytest_policyeval.provenance import git_revision, package_versions

    groups = by_policy(results)
    table: dict[str, Any] = {
        "Policies": {group[0].policy_label: uri for uri, group in groups.items()}
        or dict.fromkeys(map(redact_uri, options.policy_uris), ""),
        "Checkpoint digests": {
            group[0].policy_label: next((r.policy.get("digest") for r in group if r.policy), None) or "-"
            for group in groups.values()
        },
        "Suites": {},
        "Device": options.device,
        "Git SHA": git_revision(rootpath) or "not a git checkout",
        "Evaluation packages": package_versions(),
    }
    seeds: dict[str, set[int]] = {}
    for result in sorted(results, key=lambda r: r.order):
        seeds.setdefault(result.suite, set()).add(result.seed)
    table["Suites"] = {suite: "seed " + ", ".join(map(str, sorted(s))) for suite, s in seeds.items()}
    # pytest-html inserts these values as HTML.
    return {key: _escaped(value) for key, value in table.items()}


def _escaped(value: Any) -> Any:
    if isinstance(value, dict):
        return {escape(str(k)): escape(str(v)) for k, v in value.items()}
    return escape(str(value))


class HtmlExtras:
    """Every evaluating process (xdist workers too): each task's report carries its report extras."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        data = item.stash.get(RESULT_KEY, None)
        if call.when == "call" and data is not None:
            films = item.stash.get(FILMS_KEY, [])
            # Read only: the plugin's own wrapper reads the same films for W&B, in either order.
            report.extras = [*getattr(report, "extras", []), *task_extras(TaskResult.from_dict(data), films)]
        return report


class HtmlReport:
    """pytest-html hooks; registered by the plugin when `--html` is given and pytest-html is installed."""

    def __init__(self, controller: Controller, options: EvalOptions, rootpath: Path):
        self.controller, self.options, self.rootpath = controller, options, rootpath

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells[2:2] = [
            '<th class="sortable" data-column-type="policy">Policy</th>',
            *(f"<th>{name}</th>" for name in COLUMNS[1:]),
        ]

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        # pytest-html writes the test id unescaped, and a suite file's name is part of it: a file
        # named `<img onerror=...>.yaml` would run script in the report.
        test_id = report.nodeid + ("" if report.when == "call" else f"::{report.when}")
        if len(cells) > 1 and cells[1] == f'<td class="col-testId">{test_id}</td>':
            cells[1] = f'<td class="col-testId">{escape(test_id)}</td>'
        data = getattr(report, "policyeval", None)
        if data is None:
            cells[2:2] = ['<td class="col-policy"></td>', *("<td></td>" for _ in COLUMNS[1:])]
            return
        cells[2:2] = row_cells(TaskResult.from_dict(data))

    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        prefix.append(f"<style>{asset('report.css')}</style>")
        prefix.append(f"<script>{asset('replay_player.js')}</script>")
        if self.controller.results:
            prefix.append(summary_html(self.controller.results, self.controller.run_status()))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # pytest-html renders the environment table from this dict at its own sessionfinish (trylast).
        from pytest_metadata.plugin import metadata_key

        metadata = session.config.stash[metadata_key]
        metadata.update(environment(self.options, self.rootpath, self.controller.results))
        # pytest-metadata also shows CI variables (GIT_URL, ...): no credentials in a report.
        for key, value in list(metadata.items()):
            metadata[key] = redact_data(value, list(self.options.policy_uris))
