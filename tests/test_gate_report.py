"""The gate's evidence in the HTML report: the trace and differences plots, the detail, the row.

The plots are checked as SVG (parsed, so escaping holds) against decisions the real gate made;
two tiny pytester runs check that the report shows them for a sequential task and for a run
gated against a baseline.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict

import pytest
from helpers import read_html_report, write_suite

from pytest_policyeval.gates.decide import judge
from pytest_policyeval.gates.design import GUARANTEES, GateDesign, paired
from pytest_policyeval.reporting.gate_plot import (
    HEIGHT,
    LEFT,
    MAX_POINTS,
    PLOT_HEIGHT,
    PLOT_WIDTH,
    TOP,
    differences_svg,
    episode_x,
    trace_svg,
)
from pytest_policyeval.results import TaskResult

SVG = "{http://www.w3.org/2000/svg}"


def _design(higher_is_better: bool = True, kind: str = "sequential", **changes) -> GateDesign:
    settings = dict(
        kind=kind, threshold=0.5, higher_is_better=higher_is_better, low=0.0, high=1.0, margin=0.1,
        alpha=0.05, beta=0.01, max_episodes=12, min_episodes=4,
    )  # fmt: skip
    return GateDesign(**{**settings, **changes})


def _result(design: GateDesign, scores: list[float], run_extra: int = 0, **extra) -> TaskResult:
    """A task's result as fill_result writes it, from the real gate's decision on `scores`."""
    decision = judge(design, scores, trace=design.kind == "sequential")
    used = scores[: decision.episodes]
    return TaskResult(
        suite="s", task="nav/t", policy_uri="random://", policy_label="random", order=(0, 0, 0),
        threshold=design.threshold, higher_is_better=design.higher_is_better, gate=design.kind,
        num_episodes=decision.episodes, seed=0, score=sum(used) / len(used), ci_low=decision.low,
        ci_high=decision.high, passed=decision.outcome == "pass", outcome=decision.outcome,
        design={**asdict(design), "multiplicity": "bonferroni", "gated_tasks": 1, "suite_beta": design.beta},
        guarantee=GUARANTEES[design.kind], reason=decision.reason,
        evidence={"pass": decision.evidence_pass, "fail": decision.evidence_fail},
        interval_method=decision.interval_method, interval_level=decision.interval_level,
        trace=decision.trace, estimate=decision.estimate, episodes_run=decision.episodes + run_extra,
        episode_scores=list(used), seeds=list(range(len(used))), episode_cached=[False] * len(used),
        **extra,
    )  # fmt: skip


def _parse(svg: str) -> ET.Element:
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    return ET.fromstring(svg)


def _lines(root: ET.Element, css: str) -> list[ET.Element]:
    return [line for line in root.iter(f"{SVG}line") if css in (line.get("class") or "").split()]


def _y(line: ET.Element) -> float:
    assert line.get("y1") == line.get("y2")
    return float(line.get("y1"))


def test_the_stop_marker_sits_at_the_deciding_episode_with_the_unused_ones_shaded() -> None:
    result = _result(_design(), [1.0] * 30, run_extra=2)
    assert result.outcome == "pass" and result.num_episodes == 6
    root = _parse(trace_svg(result))
    (stop,) = [line for line in _lines(root, "stop") if line.get("data-episode")]
    assert stop.get("data-episode") == "6"
    expected = LEFT + PLOT_WIDTH * (6 - 0.5) / 8  # 8 episodes on the axis: 6 used, 2 played past
    assert float(stop.get("x1")) == float(stop.get("x2")) == round(expected, 1) == round(episode_x(6, 8), 1)
    assert "PASS at episode 6" in "".join(root.itertext())
    (unused,) = [rect for rect in root.iter(f"{SVG}rect") if rect.get("class") == "unused"]
    assert float(unused.get("x")) == round(episode_x(6.5, 8), 1)
    # One point per episode of the trace: the running estimate ends on the stop.
    (estimate,) = [p for p in root.iter(f"{SVG}polyline") if p.get("class") == "estimate"]
    points = estimate.get("points").split()
    assert len(points) == 6 and float(points[-1].split(",")[0]) == round(expected, 1)


def test_the_threshold_and_the_band_edges_are_drawn_where_the_interval_crossed_one() -> None:
    result = _result(_design(), [1.0] * 30)
    root = _parse(trace_svg(result))
    (threshold,) = _lines(root, "threshold")
    (pass_edge,) = _lines(root, "pass-edge")
    (fail_edge,) = _lines(root, "fail-edge")
    # Higher is better: t - margin (pass) lies below the threshold, t + margin (fail) above it.
    assert _y(fail_edge) < _y(threshold) < _y(pass_edge)
    assert pass_edge.find(f"{SVG}title").text == "pass: lower end above 0.4"
    assert fail_edge.find(f"{SVG}title").text == "fail: upper end below 0.6"
    (band,) = [rect for rect in root.iter(f"{SVG}rect") if rect.get("class") == "band"]
    assert float(band.get("y")) == pytest.approx(_y(fail_edge), abs=0.11)
    assert float(band.get("y")) + float(band.get("height")) == pytest.approx(_y(pass_edge), abs=0.11)
    # Why it stopped there: the interval's lower end crossed threshold - margin at the last episode.
    lows = result.trace["low"]
    assert lows[-1] >= 0.4 > lows[-2]
    ticks = [line for line in _lines(root, "stop") if not line.get("data-episode")]
    low_tick = max(ticks, key=_y)  # the interval's lower end at the stop (larger y is lower)
    assert _y(low_tick) <= _y(pass_edge) + 0.1
    assert all(TOP - 5 <= float(line.get("y2")) <= TOP + PLOT_HEIGHT + 5 for line in root.iter(f"{SVG}line"))
    assert all(0 < float(text.get("y")) <= HEIGHT for text in root.iter(f"{SVG}text"))  # labels fit


def test_lower_is_better_swaps_the_edges() -> None:
    result = _result(_design(higher_is_better=False), [1.0] * 30)
    assert result.outcome == "fail"
    root = _parse(trace_svg(result))
    (pass_edge,) = _lines(root, "pass-edge")
    (fail_edge,) = _lines(root, "fail-edge")
    (threshold,) = _lines(root, "threshold")
    assert pass_edge.find(f"{SVG}title").text == "pass: upper end below 0.6"
    assert fail_edge.find(f"{SVG}title").text == "fail: lower end above 0.4"
    assert _y(pass_edge) < _y(threshold) < _y(fail_edge)
    assert result.trace["low"][-1] >= 0.4 > result.trace["low"][-2]  # failed on crossing t - margin
    (stop,) = [line for line in _lines(root, "stop") if line.get("data-episode")]
    assert stop.get("data-episode") == str(result.num_episodes)
    text = "".join(root.itertext())
    assert f"FAIL at episode {result.num_episodes}" in text
    assert not re.search(r"-0\.0(?!\d)", trace_svg(result))  # the trace's -0.0 is drawn as 0


def test_an_inconclusive_gate_is_marked_at_its_cap() -> None:
    result = _result(_design(), [0.0, 1.0] * 20)
    assert result.outcome == "inconclusive" and result.num_episodes == 12
    root = _parse(trace_svg(result))
    (stop,) = [line for line in _lines(root, "stop") if line.get("data-episode")]
    assert float(stop.get("x1")) == round(episode_x(12, 12), 1)
    assert "INCONCLUSIVE at episode 12" in "".join(root.itertext())


def test_nothing_to_draw_gives_no_plot_and_nan_never_reaches_the_svg() -> None:
    fixed = _result(_design(kind="mean"), [1.0, 0.0, 1.0, 1.0])
    assert fixed.trace == {} and trace_svg(fixed) == "" and differences_svg(fixed) == ""
    errored = TaskResult(
        suite="s", task="nav/t", policy_uri="random://", policy_label="random", order=(0, 0, 0),
        threshold=0.5, higher_is_better=True, gate="sequential", num_episodes=4, seed=0, error="boom",
    )  # fmt: skip
    assert trace_svg(errored) == "" and differences_svg(errored) == ""
    broken = _result(_design(), [1.0] * 30)
    broken.trace = {"estimate": [math.nan, 1.0, None, 1.0], "low": [0.0, math.nan], "high": [1.0, math.inf]}
    broken.design = {"threshold": math.nan, "margin": None}
    broken.estimate = math.nan
    root = _parse(trace_svg(broken))
    assert _lines(root, "threshold") == []
    (stop,) = [line for line in _lines(root, "stop") if line.get("data-episode")]
    assert stop.get("data-episode") == "4"


def _paired_result(
    candidate: list[float], baseline: list[float], higher_is_better: bool = True
) -> TaskResult:
    design = paired(_design(higher_is_better=higher_is_better, max_episodes=1000))
    sign = 1.0 if higher_is_better else -1.0
    diffs = [sign * (c - b) for c, b in zip(candidate, baseline, strict=True)]
    result = _result(design, diffs, baseline_uri="random://", baseline_episode_scores=baseline[: len(diffs)])
    result.higher_is_better = higher_is_better  # the task's direction; the paired design's is always up
    result.episode_scores = candidate[: result.num_episodes]
    result.baseline_episode_scores = baseline[: result.num_episodes]
    return result


def test_differences_are_drawn_per_episode_against_the_difference_threshold() -> None:
    candidate = [1.0, 0.0, 1.0, 1.0] * 10
    baseline = [0.0, 0.0, 1.0, 0.0] * 10
    result = _paired_result(candidate, baseline)
    assert result.outcome == "pass"
    root = _parse(differences_svg(result))
    circles = list(root.iter(f"{SVG}circle"))
    assert len(circles) == result.num_episodes
    # In episode order: +1, 0, 0, +1, ...
    assert [c.get("class") for c in circles[:4]] == ["better", "same", "same", "better"]
    assert [float(c.get("cx")) for c in circles] == sorted(float(c.get("cx")) for c in circles)
    assert circles[1].find(f"{SVG}title").text == "episode 2: 0"
    (threshold,) = _lines(root, "threshold")
    (zero,) = _lines(root, "zero")
    assert threshold.find(f"{SVG}title").text == "difference threshold -0.1"
    assert _y(zero) < _y(threshold)  # the threshold (-margin) lies below zero
    assert float(circles[0].get("cy")) < _y(zero) and float(circles[1].get("cy")) == pytest.approx(
        _y(zero), abs=0.11
    )


def test_lower_is_better_differences_are_negated_so_better_is_up() -> None:
    candidate = [0.0, 1.0, 0.0, 0.0] * 10  # fewer steps or tags is better: the candidate wins
    baseline = [1.0, 1.0, 1.0, 0.0] * 10
    result = _paired_result(candidate, baseline, higher_is_better=False)
    root = _parse(differences_svg(result))
    circles = list(root.iter(f"{SVG}circle"))
    assert [c.get("class") for c in circles[:4]] == ["better", "same", "better", "same"]
    assert circles[0].find(f"{SVG}title").text == "episode 1: 1"


def test_long_series_are_thinned() -> None:
    result = _paired_result([1.0] * 1500, [0.0, 1.0] * 750)
    result.episode_scores, result.baseline_episode_scores = [1.0] * 1500, [0.0, 1.0] * 750
    root = _parse(differences_svg(result))
    circles = list(root.iter(f"{SVG}circle"))
    assert len(circles) <= MAX_POINTS + 1
    assert circles[-1].find(f"{SVG}title").text.startswith("episode 1500:")


def test_row_and_detail_show_outcome_evidence_and_escape_user_text() -> None:
    from pytest_policyeval.reporting.html import row_cells, task_html

    result = _result(_design(), [0.0, 1.0] * 20)
    result.inconclusive = "skip"
    result.passed = None
    result.episode_cached = [True, True] + [False] * (result.num_episodes - 2)
    cells = row_cells(result)
    assert (
        cells[-1] == '<td class="col-verdict"><span class="pe-inconclusive">INCONCLUSIVE (skip)</span></td>'
    )
    assert "(2 cached)" in cells[4]
    assert re.search(r"\(to (pass|fail)\)</small></td>$", cells[5])  # undecided: the larger e-value
    assert "betting confidence sequence" in cells[2]
    detail = task_html(result, [])
    assert "reached the cap of 12 episodes" in detail and 'class="pe-gate-plot pe-trace"' in detail
    assert "cap 12 episodes (at least 4)" in detail and "12 used" in detail

    fixed = _result(_design(kind="mean"), [1.0, 0.0, 1.0, 1.0])
    cells = row_cells(fixed)
    assert cells[5].endswith(">-</td>") and ">PASS<" in cells[6]
    assert "pe-gate-plot" not in task_html(fixed, []) and "episode scores: 1 (seed 0)" in task_html(fixed, [])

    hostile = _paired_result([1.0] * 40, [0.0] * 40)
    hostile.baseline_uri = "file://<img src=x onerror=alert(1)>.pt"
    hostile.reason = "<script>alert(2)</script>"
    html = task_html(hostile, []) + "".join(row_cells(hostile))
    assert "<img" not in html and "<script" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;" in html
    ET.fromstring(differences_svg(hostile))  # titles and labels stay well-formed


def test_an_errored_task_has_a_detail_without_plots() -> None:
    from pytest_policyeval.reporting.html import row_cells, summary_html, task_html

    errored = TaskResult(
        suite="s", task="nav/t", policy_uri="random://", policy_label="random", order=(0, 0, 0),
        threshold=0.5, higher_is_better=True, gate="sequential", num_episodes=4, seed=0, error="boom <b>",
    )  # fmt: skip
    detail = task_html(errored, [])
    assert ">ERROR<" in detail and "boom &lt;b&gt;" in detail and "pe-gate-plot" not in detail
    assert "nan" not in detail.lower()
    assert row_cells(errored)[1] == '<td class="col-score">n/a</td>'
    assert ">ERROR<" in summary_html([errored])  # no gate failed, but the suite cannot pass


def test_the_summary_counts_each_task_in_one_column() -> None:
    from pytest_policyeval.reporting.html import summary_html

    def task(name: str, passed: bool | None, outcome: str | None, error: str | None = None) -> TaskResult:
        return TaskResult(
            suite="s", task=f"nav/{name}", policy_uri="random://", policy_label="random", order=(0, 0, 0),
            threshold=0.5, higher_is_better=True, gate="sequential", num_episodes=4, seed=0,
            passed=passed, outcome=outcome, error=error, score=0.5, episode_scores=[0.5] * 4,
        )  # fmt: skip

    results = [
        task("pass", True, "pass"),
        task("fail", False, "fail"),
        task("stuck", False, "inconclusive"),  # counted as fail: still only inconclusive here
        task("lenient", True, "inconclusive"),  # counted as pass
        task("ungated", None, None),
        task("broken", None, None, error="boom"),
    ]
    row = summary_html(results).split("<tbody>", 1)[1].split("</tr>", 1)[0]
    counts = [int(cell) for cell in re.findall(r'<td class="pe-num">(\d+)</td>', row)]
    # pass, fail, inconclusive, errors, not gated: 6 tasks, each once, as the verdict's tally has them
    assert counts == [1, 1, 2, 1, 1]
    assert "1 pass, 1 fail, 2 inconclusive, 1 with errors of 5 gated" in summary_html(results)


# -- the report of real runs ---------------------------------------------------------------------

SUITE = """
name: gates
seed: 5
defaults: {num_episodes: 4, max_steps: 12, max_episodes: 40}
tasks:
  - {name: nav/easy, map: maps/easy.map, threshold: 0.5}
  - {name: nav/hard, map: maps/hard.map, threshold: 0.5}
"""


def _cell(row: list[str], column: str) -> str:
    """A result-table cell by its column's name (pytest-html's Result and Test come first)."""
    from pytest_policyeval.reporting.html import COLUMNS

    return row[2 + COLUMNS.index(column)]


def _used(row: list[str]) -> int:
    return int(re.search(r'<td class="col-episodes"[^>]*>(\d+)', _cell(row, "Episodes")).group(1))


def _details(path) -> dict[str, tuple[list[str], str]]:
    """Each task's result-table row and its detail (the html extra), by task name."""
    data = read_html_report(path)
    out = {}
    for test_id, (entry,) in data["tests"].items():
        task = re.search(r"::(.+)\[", test_id).group(1)
        html = "".join(e["content"] for e in entry["extras"] if e["format_type"] == "html")
        out[task] = (entry["resultsTableRow"], html)
    return out


def test_a_sequential_task_shows_its_outcome_reason_and_plot(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    write_suite(pytester.path, SUITE)
    args = ("--policy-uri", "random://", "--html", "report.html", "--eval-json", "r.json")
    pytester.runpytest(*args).assert_outcomes(passed=1, failed=1)
    details = _details(pytester.path / "report.html")
    for task, outcome in (("nav/easy", "PASS"), ("nav/hard", "FAIL")):
        row, detail = details[task]
        verdict = f'<td class="col-verdict"><span class="pe-{outcome.lower()}">{outcome}</span></td>'
        assert _cell(row, "Verdict") == verdict
        used = _used(row)
        assert f"{'passed' if outcome == 'PASS' else 'failed'} after {used} episodes: evidence" in detail
        assert "anytime-valid: false pass" in detail  # the guarantee
        svg = re.search(r'<svg class="pe-gate-plot pe-trace".*?</svg>', detail, re.S).group(0)
        root = _parse(svg)
        (stop,) = [line for line in _lines(root, "stop") if line.get("data-episode")]
        assert stop.get("data-episode") == str(used)
        assert f"{outcome} at episode {used}" in "".join(root.itertext())
        assert "pe-differences" not in detail
    text = (pytester.path / "report.html").read_text()
    summary = re.search(r'<section id="policyeval-summary".*?</section>', text, re.S).group(0)
    assert '<span class="pe-fail">FAIL</span><br><small class="pe-small">1 pass, 1 fail' in summary
    assert "IQM of normalised scores" in summary and "pe-iqm" in summary

    # Again: the used episodes now come from the episode cache, and the row says so; all but the
    # first, which is played again to record its film for the report.
    pytester.runpytest(*args).assert_outcomes(passed=1, failed=1)
    for task, (row, _) in _details(pytester.path / "report.html").items():
        assert f"({_used(row) - 1} cached)" in _cell(row, "Episodes"), task


TO_BASELINE = "per-seed difference to the baseline random://"


def test_a_baseline_run_shows_the_per_seed_differences(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    write_suite(pytester.path, SUITE)
    result = pytester.runpytest(
        "--policy-uri", "random://", "--baseline-uri", "random://", "--html", "report.html",
    )  # fmt: skip
    result.assert_outcomes(passed=2)  # the same policy on the same seeds: no worse than itself
    for task, (row, detail) in _details(pytester.path / "report.html").items():
        threshold = _cell(row, "Threshold")
        assert threshold == f'<td class="col-threshold" title="{TO_BASELINE}">d &gt;= -0.1</td>'
        assert "per-seed difference d = 0.000" in detail, task
        svg = re.search(r'<svg class="pe-gate-plot pe-differences".*?</svg>', detail, re.S).group(0)
        root = _parse(svg)
        circles = list(root.iter(f"{SVG}circle"))
        assert len(circles) == _used(row) and {c.get("class") for c in circles} == {"same"}
        assert _lines(root, "threshold")[0].find(f"{SVG}title").text == "difference threshold -0.1"
        assert 'class="pe-gate-plot pe-trace"' in detail  # the sequential trace too, on the differences
    summary = (pytester.path / "report.html").read_text()
    assert "against baseline random://" in summary


MIXED = """
name: mixed
seed: 3
defaults: {num_episodes: 4, max_steps: 10, score_range: [0, 1]}
tasks:
  - {name: nav/lower, map: maps/certain.map, threshold: 0.5, higher_is_better: false}
  - {name: nav/plain, map: maps/certain.map}
  - {name: nav/outside, map: maps/certain.map, threshold: 0.25, score_range: [0, 0.5], gate: mean}
"""


def test_guarantees_junit_and_verdict_say_what_each_task_is(pytester: pytest.Pytester) -> None:
    """Lower is better: the bad side is above the threshold. No threshold: no guarantee. An errored
    task: outcome `error` in junitxml and counted in the suite verdict's tally."""
    import xml.etree.ElementTree as ET

    from helpers import CERTAIN_MAP, task_details, write_suite

    write_suite(pytester.path, MIXED, maps={"certain": CERTAIN_MAP})
    run = pytester.runpytest(
        "--policy-uri", "scripted://navigator", "--eval-json", "out.json", "--junitxml", "j.xml",
        "--html", "r.html", "--self-contained-html",
    )  # fmt: skip
    details = {task: d for (task, _), d in task_details(pytester.path / "out.json").items()}
    assert "false pass <= alpha at threshold + margin" in details["nav/lower"]["guarantee"]
    assert details["nav/plain"]["guarantee"].startswith("none: no threshold")
    assert "outside the declared score range" in details["nav/outside"]["error"]
    properties = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(pytester.path / "j.xml").getroot().iter("testcase")
    }
    outside = next(v for k, v in properties.items() if "outside" in k)
    assert outside["policyeval_outcome"] == "error" and "outside" in outside["policyeval_error"]
    assert "policyeval_interval" not in outside  # nothing measured is claimed
    run.stdout.fnmatch_lines(["*Suite verdict: *, 1 with errors of 2 gated*"])
    # The suite's verdict belongs to no test case: it is the test suite's property, per policy.
    (suite,) = ET.parse(pytester.path / "j.xml").getroot().iter("testsuite")
    suite_properties = {p.get("name"): p.get("value") for p in suite.find("properties").iter("property")}
    assert suite_properties["policyeval_run_complete"] == "true"
    assert suite_properties["policyeval_suite_verdict[navigator]"] == "fail"  # an errored task fails it
    assert suite_properties["policyeval_suite_tally[navigator]"].endswith(", 1 with errors of 2 gated")
    assert "policyeval_iqm[navigator]" in suite_properties
    report = (pytester.path / "r.html").read_text()
    assert ", 1 with errors of 2 gated" in report


def test_an_errored_paired_task_still_reads_as_paired(pytester: pytest.Pytester, tmp_path) -> None:
    from helpers import run_certain

    missing = tmp_path / "missing.pt"
    run, detail = run_certain(
        pytester, "threshold: 0.5", "scripted://navigator", "--baseline-uri", str(missing)
    )
    assert detail["error"].startswith("baseline policy could not be loaded")
    assert detail["baseline_uri"]
    run.stdout.fnmatch_lines(["*nav/certain*d vs baseline*"])


def test_an_interval_end_next_to_a_band_edge_prints_apart_from_it() -> None:
    result = TaskResult(
        suite="s", task="nav/t", policy_uri="random://", policy_label="random", order=(0, 0, 0),
        threshold=0.6, higher_is_better=True, gate="sequential", num_episodes=66, seed=0,
        ci_low=0.3141, ci_high=0.69996, design={"threshold": 0.6, "margin": 0.1},
    )  # fmt: skip
    assert result.interval_ends == "[0.314, 0.69996]"  # the edge is 0.7: 0.700 would hide the gap
    result.ci_low, result.ci_high = 0.5, 0.7
    assert result.interval_ends == "[0.500, 0.700]"  # on the edge (the threshold's own band) it says so
    result.design = {}
    result.ci_high = 0.69996
    assert result.interval_ends == "[0.500, 0.700]"  # no band: nothing to tell apart


def test_a_fixed_gates_design_claims_no_band_or_rate_it_does_not_use() -> None:
    from pytest_policyeval.reporting.html import design_text

    def text(kind: str) -> str:
        result = TaskResult(
            suite="s", task="nav/t", policy_uri="random://", policy_label="random", order=(0, 0, 0),
            threshold=0.5, higher_is_better=True, gate=kind, num_episodes=4, seed=0,
            design={"kind": kind, "threshold": 0.5, "margin": 0.1, "alpha": 0.05, "beta": 0.01},
        )  # fmt: skip
        return design_text(result)

    assert "band [0.4, 0.6]" in text("sequential") and "beta 0.01 (false fail)" in text("sequential")
    assert "band" not in text("ci") and "beta" not in text("ci") and "false fail not controlled" in text("ci")
    assert "band" not in text("mean") and "alpha" not in text("mean") and "no error rates" in text("mean")


def test_a_large_interval_end_next_to_a_band_edge_also_prints_apart_from_it() -> None:
    result = TaskResult(
        suite="s", task="nav/t", policy_uri="random://", policy_label="random", order=(0, 0, 0),
        threshold=1.5e6, higher_is_better=True, gate="sequential", num_episodes=66, seed=0,
        ci_low=1_234_100.0, ci_high=1_509_998.0, design={"threshold": 1.5e6, "margin": 1e4},
    )  # fmt: skip
    assert result.interval_ends == "[1.234e+06, 1509998]"


def test_an_end_a_hair_past_its_edge_prints_as_many_decimals_as_that_takes() -> None:
    # A margin of 0.01 and a long gate: the lower end clears -0.02 by two parts in ten million.
    result = TaskResult(
        suite="s", task="nav/t", policy_uri="random://", policy_label="random", order=(0, 0, 0),
        threshold=-0.01, higher_is_better=True, gate="sequential", num_episodes=60000, seed=0,
        ci_low=-0.0199997819, ci_high=0.036, design={"threshold": -0.01, "margin": 0.01},
    )  # fmt: skip
    assert result.interval_ends == "[-0.0199998, 0.036]"
    result.ci_low = math.nextafter(-0.02, 0.0)  # closer than any decimals: the value itself
    assert result.interval_ends == f"[{math.nextafter(-0.02, 0.0)!r}, 0.036]"
