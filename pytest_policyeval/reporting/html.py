"""The HTML report: pytest-html hooks, registered only when pytest-html writes a report.

- Workers (or the only process) attach each task's extras to its call report: its episode scores
  and the recorded episodes as films the embedded player animates. They travel to the xdist
  controller with the report, like the task's result.
- The controller adds result-table columns, the summary section (averages, category scores, a plot
  of scores against thresholds) with the player's script and style, and the environment table.

Everything is inline, so `--self-contained-html` (or the plain report) opens with no network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from importlib import resources
from typing import TYPE_CHECKING, Any

import pytest

from pytest_policyeval.plugin import FILMS_KEY, RESULT_KEY
from pytest_policyeval.redact import redact_data, redact_uri
from pytest_policyeval.reporting.documents import by_policy, scored
from pytest_policyeval.reporting.plot import score_plot_svg
from pytest_policyeval.reporting.replays import mettascope_url
from pytest_policyeval.results import TaskResult
from pytest_policyeval.scoring import averages, category_scores

if TYPE_CHECKING:
    from pytest_policyeval.reporting.film import Film
    from pytest_policyeval.session import EvalSession

COLUMNS = ("Policy", "Score", "95% CI", "Threshold", "Episodes")


def _asset(name: str) -> str:
    return resources.files("pytest_policyeval.reporting").joinpath("assets", name).read_text("utf-8")


def _num(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _verdict(result: TaskResult) -> str:
    if result.error is not None:
        return '<span class="pe-fail">ERROR</span>'
    return {True: '<span class="pe-pass">PASS</span>', False: '<span class="pe-fail">FAIL</span>'}.get(
        result.passed, "-"
    )


# -- per task (worker side) --------------------------------------------------------------------


def task_html(result: TaskResult, films: Sequence[Film]) -> str:
    """A task's details under its row: the verdict, episode scores and the replay players."""
    episodes = ", ".join(
        f"{score:.3g} (seed {seed})" for score, seed in zip(result.episode_scores, result.seeds, strict=False)
    )
    lines = [
        f"<p>{_verdict(result)} {escape(result.task)} [{escape(result.policy_label)}]: "
        f"score {_num(result.score)}, 95% CI [{_num(result.ci_low)}, {_num(result.ci_high)}], "
        f"threshold {escape(result.threshold_text)} (gate on {escape(result.gate)})</p>",
    ]
    if result.error:
        lines.append(f"<p class='pe-fail'>{escape(result.error)}</p>")
    if episodes:
        lines.append(f'<p class="pe-task__episodes">episode scores: {escape(episodes)}</p>')
    if films:
        players = "".join(
            f'<div class="pe-replay" data-film="{film.encode()}">{escape(film.title)}</div>' for film in films
        )
        lines.append(f'<div class="pe-replays">{players}</div>')
    return f'<div class="pe-task">{"".join(lines)}</div>'


def task_extras(result: TaskResult, films: Sequence[Film]) -> list[dict[str, Any]]:
    from pytest_html import extras

    items = [extras.html(task_html(result, films))]
    for index, url in enumerate(result.replay_urls):
        items.append(extras.url(url, name=f"replay {index}"))
        items.append(extras.url(mettascope_url(url), name=f"MettaScope {index}"))
    return items


# -- summary (controller) ----------------------------------------------------------------------


def summary_html(results: Sequence[TaskResult]) -> str:
    rows, categories = [], []
    groups = by_policy(results)
    for uri, group in groups.items():
        scores = scored(group)
        avg_sim, avg_cat = averages(scores)
        passed = sum(1 for r in group if r.error is None and r.passed is True)
        failed = sum(1 for r in group if r.error is None and r.passed is False)
        errors = sum(1 for r in group if r.error is not None)
        figures = (_num(avg_sim), _num(avg_cat), passed, failed, errors)
        numbers = "".join(f'<td class="pe-num">{n}</td>' for n in figures)
        rows.append(f"<tr><td>{escape(group[0].policy_label)}</td><td>{escape(uri)}</td>{numbers}</tr>")
        for category, score in category_scores(scores).items():
            categories.append((group[0].policy_label, category, score))
    category_rows = "".join(
        f'<tr><td>{escape(label)}</td><td>{escape(category)}</td><td class="pe-num">{_num(score)}</td></tr>'
        for label, category, score in categories
    )
    return (
        '<section id="policyeval-summary" class="pe-summary"><h2>Policy evaluation</h2>'
        "<table><thead><tr><th>Policy</th><th>URI</th><th>Average simulation score</th>"
        "<th>Average category score</th><th>Passed</th><th>Failed</th><th>Errors</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        "<table><thead><tr><th>Policy</th><th>Category</th><th>Category score</th></tr></thead>"
        f"<tbody>{category_rows}</tbody></table>"
        f"<figure>{score_plot_svg(results)}<figcaption>Each task's score per policy (bars, with 95% "
        "intervals) against its threshold (dashed red). Each row has its own scale.</figcaption></figure>"
        "</section>"
    )


def environment(session: EvalSession, results: Sequence[TaskResult]) -> dict[str, Any]:
    """Rows for the report's environment table (pytest-metadata's dict)."""
    from pytest_policyeval.provenance import git_revision, package_versions

    groups = by_policy(results)
    table: dict[str, Any] = {
        "Policies": {group[0].policy_label: uri for uri, group in groups.items()}
        or dict.fromkeys(map(redact_uri, session.options.policy_uris), ""),
        "Checkpoint digests": {
            group[0].policy_label: next((r.policy.get("digest") for r in group if r.policy), None) or "-"
            for group in groups.values()
        },
        "Suites": {},
        "Device": session.options.device,
        "Git SHA": git_revision(session.rootpath) or "not a git checkout",
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


class HtmlReport:
    """pytest-html hooks; registered by the plugin when `--html` is given and pytest-html is installed."""

    def __init__(self, session: EvalSession):
        self.session = session

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        data = item.stash.get(RESULT_KEY, None)
        if call.when == "call" and data is not None:
            films = item.stash.get(FILMS_KEY, [])
            report.extras = [*getattr(report, "extras", []), *task_extras(TaskResult.from_dict(data), films)]
            item.stash[FILMS_KEY] = []  # drawn into the report; no need to keep them
        return report

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells[2:2] = [
            '<th class="sortable" data-column-type="policy">Policy</th>',
            *(f"<th>{name}</th>" for name in COLUMNS[1:]),
        ]

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        data = getattr(report, "policyeval", None)
        if data is None:
            cells[2:2] = ['<td class="col-policy"></td>', *("<td></td>" for _ in COLUMNS[1:])]
            return
        result = TaskResult.from_dict(data)
        interval = f"[{_num(result.ci_low)}, {_num(result.ci_high)}]"
        cells[2:2] = [
            f'<td class="col-policy" title="{escape(result.policy_uri)}">{escape(result.policy_label)}</td>',
            f'<td class="col-score">{_num(result.score)}</td>',
            f'<td class="col-ci">{interval}</td>',
            f'<td class="col-threshold">{escape(result.threshold_text)}</td>',
            f'<td class="col-episodes">{result.num_episodes}</td>',
        ]

    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        prefix.append(f"<style>{_asset('report.css')}</style>")
        prefix.append(f"<script>{_asset('replay_player.js')}</script>")
        if self.session.results:
            prefix.append(summary_html(self.session.results))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # pytest-html renders the environment table from this dict at its own sessionfinish (trylast).
        from pytest_metadata.plugin import metadata_key

        if self.session.is_controller:
            metadata = session.config.stash[metadata_key]
            metadata.update(environment(self.session, self.session.results))
            # pytest-metadata also shows CI variables (GIT_URL, ...): no credentials in a report.
            for key, value in list(metadata.items()):
                metadata[key] = redact_data(value, list(self.session.options.policy_uris))
