"""Suites collect as one test item per (task, policy) with readable ids, like Python tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MINI_SUITE, write_suite

REPO = Path(__file__).resolve().parents[1]


def test_collects_one_item_per_task_and_policy(pytester: pytest.Pytester, mini_suite: Path) -> None:
    result = pytester.runpytest(
        "--collect-only", "-q", "--policy-uri", "random://", "--policy-uri", "a/b/navigator.pt"
    )
    result.stdout.fnmatch_lines(
        [
            "suites/mini.yaml::nav/easy[[]random[]]",
            "suites/mini.yaml::nav/easy[[]navigator[]]",
            "suites/mini.yaml::nav/hard[[]random[]]",
            "suites/mini.yaml::nav/hard[[]navigator[]]",
        ]
    )
    assert result.ret == pytest.ExitCode.OK


def test_same_label_twice_gets_distinct_ids(pytester: pytest.Pytester, mini_suite: Path) -> None:
    result = pytester.runpytest("--collect-only", "-q", "--policy-uri", "x/p.pt", "--policy-uri", "y/p.pt")
    result.stdout.fnmatch_lines(["*nav/easy[[]p[]]", "*nav/easy[[]p-2[]]"])


def test_missing_policy_uri_is_a_usage_error(pytester: pytest.Pytester, mini_suite: Path) -> None:
    result = pytester.runpytest(str(mini_suite))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mini.yaml*--policy-uri*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_keyword_selection_runs_one_task(pytester: pytest.Pytester, mini_suite: Path) -> None:
    result = pytester.runpytest("--policy-uri", "random://", "-k", "easy")
    result.assert_outcomes(passed=1, deselected=1)


def test_yaml_outside_suites_folder_is_not_collected(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, MINI_SUITE, name="config/mini.yaml")
    result = pytester.runpytest("--collect-only", "-q", "--policy-uri", "random://")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_explicit_yaml_argument_is_collected(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path, MINI_SUITE, name="evals/mini.yaml")
    result = pytester.runpytest("--collect-only", "-q", "--policy-uri", "random://", str(suite))
    result.stdout.fnmatch_lines(["*evals/mini.yaml::nav/easy[[]random[]]"])


def test_ini_suite_patterns_add_locations(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, MINI_SUITE, name="evals/mini.yaml")
    pytester.makeini("[pytest]\npolicyeval_suite_patterns = evals/*.yaml\n")
    result = pytester.runpytest("--collect-only", "-q", "--policy-uri", "random://")
    result.stdout.fnmatch_lines(["*evals/mini.yaml::nav/hard[[]random[]]"])


def test_last_failed_reruns_only_the_failed_task(pytester: pytest.Pytester, mini_suite: Path) -> None:
    first = pytester.runpytest(
        "-p",
        "cacheprovider",
        "--policy-uri",
        "random://",
        "--num-episodes",
        "2",
        "--eval-seed",
        "1",
        "-o",
        "cache_dir=.cache",
    )
    first.assert_outcomes(passed=2)
    mini_suite.write_text(mini_suite.read_text().replace("threshold: 0.9", "threshold: 1.5"))
    second = pytester.runpytest("-p", "cacheprovider", "--policy-uri", "random://", "-o", "cache_dir=.cache")
    second.assert_outcomes(passed=1, failed=1)
    rerun = pytester.runpytest(
        "-p", "cacheprovider", "--policy-uri", "random://", "--lf", "-o", "cache_dir=.cache"
    )
    rerun.assert_outcomes(failed=1)
    rerun.stdout.fnmatch_lines(["*rerun previous 1 failure*", "*FAILED*nav/easy[[]random[]]*"])


def test_junitxml_has_one_testcase_per_item(pytester: pytest.Pytester, mini_suite: Path) -> None:
    pytester.runpytest("--policy-uri", "random://", "--junitxml", "junit.xml")
    xml = (pytester.path / "junit.xml").read_text()
    assert xml.count("<testcase ") == 2
    assert 'name="nav/easy[random]"' in xml
    assert 'name="policyeval_score"' in xml


def test_bare_pytest_in_the_repository_collects_only_its_own_tests() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    items = [line for line in result.stdout.splitlines() if "::" in line]
    assert items and all(line.startswith("tests/") for line in items)


def test_eval_policy_fixture_parametrizes_python_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_policy_is_loaded(eval_policy):
            assert eval_policy.name == "random"
        """
    )
    result = pytester.runpytest("--policy-uri", "random://", "-v")
    result.stdout.fnmatch_lines(["*test_policy_is_loaded[[]random[]] PASSED*"])
