"""Outputs are checked before a run, and one that cannot be written loses only itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import MINI_SUITE, write_suite

# Puts a directory where the JSON is to go once the run has started: its write fails at the end.
BLOCKER = """
import os
def pytest_sessionstart(session):
    os.makedirs("out/r.json", exist_ok=True)
"""


def test_an_output_path_that_cannot_be_written_is_a_usage_error_before_anything_runs(
    pytester: pytest.Pytester,
) -> None:
    suite = write_suite(pytester.path, MINI_SUITE)
    (pytester.path / "afile").write_text("x")
    result = pytester.runpytest(str(suite), "--policy-uri=random://", "--eval-json=afile/r.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--eval-json: cannot write afile/r.json: afile is not a directory*"])
    result = pytester.runpytest(str(suite), "--policy-uri=random://", f"--eval-yaml={pytester.path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--eval-yaml*is a directory; name a file*"])
    assert "nav/easy" not in result.stdout.str()


def test_a_read_only_place_is_refused_before_the_run(pytester: pytest.Pytester) -> None:
    if not Path("/sys").is_dir():
        pytest.skip("no sysfs here")
    suite = write_suite(pytester.path, MINI_SUITE)
    # sysfs refuses new files to everyone, root included: a real read-only place.
    result = pytester.runpytest(str(suite), "--policy-uri=random://", "--eval-json=/sys/policyeval/r.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--eval-json: cannot write /sys/policyeval/r.json: *"])


def test_one_output_failing_still_writes_the_others_and_the_summary(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path, MINI_SUITE.replace("threshold: 0.9", "threshold: 0"))
    pytester.makeconftest(BLOCKER)
    result = pytester.runpytest(
        str(suite), "--policy-uri=random://", "--eval-json=out/r.json", "--eval-yaml=out/r.yaml", "-k", "easy"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the task passed; the lost output fails the run
    result.stdout.fnmatch_lines(
        ["*policy evaluation*", "*results written to out/r.yaml*", "*results NOT written to out/r.json: *"]
    )
    assert (pytester.path / "out/r.yaml").read_text().startswith("policy: random://")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_threshold_that_is_not_a_finite_number_is_refused_when_the_suite_is_read(
    pytester: pytest.Pytester, value: str
) -> None:
    suite = write_suite(pytester.path, MINI_SUITE.replace("threshold: 0.9", f"threshold: {value}"))
    result = pytester.runpytest(str(suite), "--policy-uri=random://", "--eval-json=r.json")
    result.stdout.fnmatch_lines(["*mini.yaml*nav/easy*threshold*finite*"])
    assert not (pytester.path / "r.json").exists()


def test_the_episode_cap_holds_on_the_command_line_too(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path, MINI_SUITE)
    result = pytester.runpytest(str(suite), "--policy-uri=random://", "--num-episodes=1000000000")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--num-episodes: must be at most 100000, got 1000000000*"])
