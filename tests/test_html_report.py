"""The HTML report's content (pytest-html): columns, task details with films, summary, environment."""

from __future__ import annotations

import json
import re

import pytest
from helpers import films_of, read_html_report, task_details, write_suite

pytest.importorskip("pytest_html")

SUITE = """
name: rep
seed: 7
defaults: {num_episodes: 4, max_steps: 20}
tasks:
  - {name: nav/easy, map: maps/easy.map, threshold: 0.5}
  - {name: nav/hard, map: maps/hard.map, threshold: 0.5}
  - {name: other/easy, map: maps/easy.map}
"""
REPORT_ARGS = (
    "--policy-uri",
    "random://",
    "--html",
    "report.html",
    "--self-contained-html",
    "--eval-json",
    "r.json",
)


@pytest.fixture
def report(pytester: pytest.Pytester) -> tuple[dict, dict, str]:
    write_suite(pytester.path, SUITE)
    result = pytester.runpytest(*REPORT_ARGS, "--replay-episodes", "2")
    result.assert_outcomes(passed=2, failed=1)
    path = pytester.path / "report.html"
    return read_html_report(path), task_details(pytester.path / "r.json"), path.read_text()


def test_each_task_row_shows_policy_score_interval_threshold_episodes_evidence_and_verdict(report) -> None:
    data, results, _ = report
    tests = data["tests"]
    assert sorted(tests) == [
        "suites/mini.yaml::nav/easy[random]",
        "suites/mini.yaml::nav/hard[random]",
        "suites/mini.yaml::other/easy[random]",
    ]
    for test_id, (entry,) in tests.items():
        task = re.search(r"::(.+)\[", test_id).group(1)
        detail = results[(task, "random")]
        row = entry["resultsTableRow"]
        method = f"{detail['interval_method']}, {detail['interval_level']}"
        assert row[2] == '<td class="col-policy" title="random://">random</td>'
        assert row[3] == f'<td class="col-score">{detail["score"]:.3f}</td>'
        assert row[4] == (
            f'<td class="col-ci" title="{method}">[{detail["ci_low"]:.3f}, {detail["ci_high"]:.3f}]'
            f'<br><small class="pe-small">{method}</small></td>'
        )
        threshold = "-" if detail["threshold"] is None else f"&gt;= {detail['threshold']:g}"
        assert row[5] == f'<td class="col-threshold">{threshold}</td>'
        # The gates are sequential: each used the episodes it decided on; the ungated task its four.
        episodes = re.fullmatch(r'<td class="col-episodes" title="([^"]*)">(\d+)</td>', row[6])
        assert int(episodes.group(2)) == detail["num_episodes"] >= 4
        if task == "other/easy":
            assert detail["num_episodes"] == 4 and detail["outcome"] is None
        assert episodes.group(1).startswith(f"{detail['num_episodes']} used")
        outcome = detail["outcome"]
        if outcome is None:
            assert row[7].endswith(">-</td>") and row[8] == '<td class="col-verdict">-</td>'
        else:
            evidence = f"{detail['evidence'][outcome]:.3g} <small class='pe-small'>({outcome})</small></td>"
            assert row[7].startswith('<td class="col-evidence" title="e-values: to pass ')
            assert row[7].endswith(evidence)
            verdict = outcome.upper()
            assert row[8] == f'<td class="col-verdict"><span class="pe-{outcome}">{verdict}</span></td>'
        assert entry["result"] == ("Failed" if task == "nav/hard" else "Passed")


def test_each_task_embeds_its_recorded_episodes(report) -> None:
    data, results, _ = report
    for test_id, (entry,) in data["tests"].items():
        task = re.search(r"::(.+)\[", test_id).group(1)
        detail = results[(task, "random")]
        films = films_of(entry)
        assert len(films) == 2  # --replay-episodes 2
        for index, film in enumerate(films):
            # Each film is that episode: its length, its seed in the title, its agent's reward.
            assert film["steps"] == detail["episode_steps"][index]
            assert f"(seed {detail['seeds'][index]})" in film["title"]
            assert film["agents"][0]["rewards"][-1][1] == detail["episode_rewards"][index][0]


def test_the_summary_has_averages_categories_and_the_plot(report) -> None:
    _, results, text = report
    summary = re.search(r'<section id="policyeval-summary".*?</section>', text, re.S).group(0)
    nav = [results[(t, "random")]["score"] for t in ("nav/easy", "nav/hard")]
    other = results[("other/easy", "random")]["score"]
    average = (sum(nav) + other) / 3
    category_average = (sum(nav) / 2 + other) / 2
    assert f'<td class="pe-num">{average:.3f}</td><td class="pe-num">{category_average:.3f}</td>' in summary
    # Beside the averages: the IQM headline with its interval, and the suite verdict with its counts.
    assert "<th>IQM of normalised scores</th><th>Suite verdict</th>" in summary
    iqm = re.search(
        r'<td class="pe-num pe-iqm" title="([^"]*)">([0-9.]+)<small class="pe-small"> \[', summary
    )
    assert float(iqm.group(2)) == pytest.approx((1 + 0 + 1) / 3, abs=5e-4)  # goal reached, not, reached
    assert iqm.group(1) == "no spread to resample"  # every episode of a task scored the same
    verdict = '<span class="pe-fail">FAIL</span><br><small class="pe-small">1 pass, 1 fail, 0 inconclusive'
    assert verdict + " of 2 gated" in summary
    assert f'<td>nav</td><td class="pe-num">{sum(nav) / 2:.3f}</td>' in summary
    plot = re.search(r'<svg id="policyeval-plot".*?</svg>', summary, re.S).group(0)
    # One bar per task and one threshold line per task with a threshold (two of three).
    assert plot.count("<rect") == 3 + 1  # three bars and the legend's swatch
    assert plot.count('class="threshold"') == 2 + 1  # two thresholds and the legend's
    assert "<script>" in text and "DecompressionStream" in text  # the player ships inside the file


def test_the_environment_names_policy_suite_seed_versions_and_git(report) -> None:
    data, _, _ = report
    env = data["environment"]
    assert env["Policies"] == {"random": "random://"}
    assert env["Suites"] == {"rep": "seed 7"}
    assert env["Device"] == "cpu"
    assert env["Evaluation packages"]["mettagrid"] == "0.26.22"
    assert "pytest_policyeval" in env["Evaluation packages"]
    assert "Git SHA" in env


def test_checkpoint_digest_and_git_sha_are_recorded(pytester: pytest.Pytester) -> None:
    from helpers import make_checkpoint

    write_suite(pytester.path, SUITE)
    make_checkpoint(pytester.path / "p.pt")
    pytester.run("git", "init", "-q")
    pytester.run(
        "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"
    )
    sha = pytester.run("git", "rev-parse", "HEAD").outlines[0]
    result = pytester.runpytest(
        "suites/mini.yaml",
        "--policy-uri",
        "p.pt",
        "--html",
        "report.html",
        "--eval-json",
        "r.json",
        "-k",
        "easy",
    )
    result.assert_outcomes(passed=2)
    env = read_html_report(pytester.path / "report.html")["environment"]
    document = json.loads((pytester.path / "r.json").read_text())
    digest = document["policies"][0]["checkpoints"][0]["digest"]
    assert digest.startswith("sha256:")
    assert env["Checkpoint digests"] == {"p": digest}
    # Untracked files (the suite, the checkpoint) do not make the checkout dirty.
    assert env["Git SHA"] == document["git_sha"] == sha


def test_xdist_report_holds_every_task_with_the_same_films(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE)
    # Each run plays its own episodes (no episode cache), so their rows can be compared whole.
    serial = pytester.runpytest_subprocess("-p", "no:importnb", "--no-eval-cache", *REPORT_ARGS)
    serial.assert_outcomes(passed=2, failed=1)
    serial_data = read_html_report(pytester.path / "report.html")
    parallel = pytester.runpytest_subprocess("-p", "no:importnb", "--no-eval-cache", "-n", "2", *REPORT_ARGS)
    parallel.assert_outcomes(passed=2, failed=1)
    parallel_data = read_html_report(pytester.path / "report.html")
    assert sorted(parallel_data["tests"]) == sorted(serial_data["tests"])
    for test_id, (entry,) in serial_data["tests"].items():
        (other,) = parallel_data["tests"][test_id]
        assert films_of(other) == films_of(entry) and len(films_of(entry)) == 1
        assert other["resultsTableRow"][2:9] == entry["resultsTableRow"][2:9]
    assert 'id="policyeval-summary"' in (pytester.path / "report.html").read_text()


def test_without_pytest_html_the_plugin_runs_and_loads_no_report_code(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE)
    pytester.makeconftest(
        """
        import sys
        def pytest_sessionfinish(session):
            loaded = [m for m in ("pytest_html", "pytest_policyeval.reporting.html") if m in sys.modules]
            open("loaded.txt", "w").write(",".join(loaded))
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:importnb", "-p", "no:html", "-p", "no:html_fixtures", "--policy-uri", "random://",
        "--eval-json", "r.json",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=1)
    assert (pytester.path / "loaded.txt").read_text() == ""
    assert len(task_details(pytester.path / "r.json")) == 3
