"""`policyeval run` (Metta's eval_external_policy.py flags) runs pytest with the plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import MINI_SUITE, run_policyeval, task_details, write_suite


def test_metta_flags_run_the_same_evaluation_as_pytest(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, MINI_SUITE)
    cli = run_policyeval(
        pytester,
        "--policy-path",
        "random://",
        "--simulation-suite",
        "mini",
        "--num-episodes",
        "3",
        "--save-replays",
        "--eval-json",
        "cli.json",
    )
    assert cli.ret == 0
    cli.stdout.fnmatch_lines(
        [
            "pytest suites/mini.yaml -p no:cacheprovider --policy-uri random:// --num-episodes 3 "
            "--eval-json cli.json --save-replays=replays --eval-progress",
            "*nav/easy ?random?: */3 episodes done, step */30*",
        ]
    )
    direct = pytester.runpytest_subprocess(
        "suites/mini.yaml",
        "-p",
        "no:importnb",
        "--policy-uri",
        "random://",
        "--num-episodes",
        "3",
        "--eval-json",
        "direct.json",
    )
    direct.assert_outcomes(passed=2)
    keys = ("seeds", "episode_rewards", "score", "passed")
    ours, theirs = task_details(pytester.path / "cli.json"), task_details(pytester.path / "direct.json")
    assert {k: {f: d[f] for f in keys} for k, d in ours.items()} == {
        k: {f: d[f] for f in keys} for k, d in theirs.items()
    }
    assert len(list((pytester.path / "replays").rglob("*.json.z"))) == 2


def test_pytest_arguments_pass_through_and_workers_turn_progress_off(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, MINI_SUITE)
    result = run_policyeval(
        pytester,
        "run",
        "--policy-path",
        "random://",
        "--simulation-suite",
        "mini",
        "-n",
        "2",
        "--",
        "-k",
        "easy",
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["pytest suites/mini.yaml * -n 2 -k easy", "*= 1 passed in *"])
    assert "episodes done" not in result.stdout.str()


def test_an_unknown_suite_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run_policyeval(pytester, "--policy-path", "random://", "--simulation-suite", "nav_missing")
    assert result.ret == 2
    result.stderr.fnmatch_lines(
        [
            "policyeval: error: no simulation suite 'nav_missing': not a file, "
            "and not found as */suites/nav_missing.yaml"
        ]
    )


def test_the_progress_line_leaves_results_unchanged(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, MINI_SUITE)
    args = ("-p", "no:importnb", "--policy-uri", "random://")
    plain = pytester.runpytest_subprocess(*args, "--eval-json", "a.json")
    shown = pytester.runpytest_subprocess(*args, "--eval-json", "b.json", "--eval-progress")
    shown.stdout.fnmatch_lines(["*nav/hard ?random?: 0/4 episodes done, step 1/30*"])
    assert "episodes done" not in plain.stdout.str()

    def timeless(path: Path) -> dict:
        return {key: {**detail, "wall_time_s": None} for key, detail in task_details(path).items()}

    assert timeless(pytester.path / "a.json") == timeless(pytester.path / "b.json")
