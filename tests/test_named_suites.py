"""The shipped suites run by name from any folder (`pytest --eval-suite NAME`), as installed."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
from helpers import MINI_SUITE, task_details, write_suite

from pytest_policyeval.collection.lookup import SUITES_DIR_VAR, find_suite, packaged_suites_dir

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [
    "cartpole",
    "full_eval",
    "gymnasium_classic",
    "laser_tag",
    "navigation",
    "navigation_single",
    "pettingzoo_mpe",
]
# Kills the xdist worker (no cleanup, no report) as soon as it starts a task.
KILLER = """
import os, signal

def pytest_runtest_call(item):
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def empty_folder(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding only the user's Metta checkpoint: no suites/, no ini file."""
    monkeypatch.delenv(SUITES_DIR_VAR, raising=False)
    shutil.copy(REPO / "examples/policies/navigation.pt", pytester.path / "navigation.pt")
    return pytester.path


def test_the_package_ships_the_repository_suites() -> None:
    packaged = packaged_suites_dir()
    assert packaged is not None
    assert sorted(path.stem for path in packaged.glob("*.yaml")) == SHIPPED
    for name in SHIPPED:
        assert (
            find_suite(name, Path("/nonexistent")).read_text()
            == (REPO / "suites" / f"{name}.yaml").read_text()
        )


def test_every_package_of_the_tree_is_listed_in_pyproject() -> None:
    """pyproject.toml lists packages by hand (for the suites mapping): a new subpackage must be added."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tree = {
        ".".join(folder.relative_to(REPO).parts)
        for folder in (REPO / "pytest_policyeval").rglob("*")
        if folder.is_dir() and any(folder.glob("*.py"))
    }
    assert tree | {"pytest_policyeval"} <= listed


def test_shipped_suites_collect_by_name_with_their_includes_and_maps(
    pytester: pytest.Pytester, empty_folder: Path
) -> None:
    result = pytester.runpytest_subprocess(
        "--eval-suite",
        "laser_tag",
        "--eval-suite",
        "full_eval",
        "--policy-uri",
        "random://",
        "--collect-only",
        "-q",
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "suites/laser_tag.yaml::laser_tag/duel[[]random[]]",
            "suites/full_eval.yaml::navigation/wall_with_gap[[]random[]]",
            "suites/full_eval.yaml::laser_tag/duel[[]random[]]",
        ]
    )


def test_the_seed_command_as_pytest_runs_a_metta_checkpoint_from_an_empty_folder(
    pytester: pytest.Pytester, empty_folder: Path
) -> None:
    result = pytester.runpytest_subprocess(
        "--eval-suite",
        "navigation_single",
        "--policy-uri",
        "./navigation.pt",
        "--save-replays",
        "--num-episodes",
        "1",
        "--eval-json",
        "results.json",
    )
    result.stdout.fnmatch_lines(["suites/navigation_single.yaml *", "1 replays written under replays"])
    (detail,) = task_details(empty_folder / "results.json").values()
    assert detail["error"] is None and len(detail["episode_rewards"]) == 1
    (checkpoint,) = json.loads((empty_folder / "results.json").read_text())["policies"][0]["checkpoints"]
    assert checkpoint["policy_info"]["kind"] == "metta-external"  # a bare state dict, read by content
    assert len(list((empty_folder / "replays").rglob("*.json.z"))) == 1


def test_named_suites_add_to_given_paths_and_run_on_xdist_workers(
    pytester: pytest.Pytester, empty_folder: Path
) -> None:
    write_suite(empty_folder, MINI_SUITE, name="evals/mini.yaml")
    args = ("--policy-uri", "random://", "--num-episodes", "1", "-p", "no:cacheprovider")
    result = pytester.runpytest_subprocess(
        "evals/mini.yaml", "--eval-suite", "navigation_single", *args, "-n", "2"
    )
    result.assert_outcomes(passed=2, failed=1)  # mini's two tasks; random never clears wall_with_gap
    result.stdout.fnmatch_lines(["*suites/navigation_single.yaml::navigation/wall_with_gap[[]random[]]*"])


def test_a_killed_worker_on_a_shipped_suite_still_reports_its_task(
    pytester: pytest.Pytester, empty_folder: Path
) -> None:
    # The xdist controller collects nothing: it finds the packaged suite from the task's node id.
    # A plugin, not a conftest.py: a conftest's hooks reach only the files below its folder.
    pytester.makepyfile(killer=KILLER)
    result = pytester.runpytest_subprocess(
        "-p",
        "killer",
        "--eval-suite",
        "navigation_single",
        "--policy-uri",
        "random://",
        "-n",
        "2",
        "--eval-json",
        "k.json",
    )
    result.assert_outcomes(failed=1)
    (lost,) = task_details(empty_folder / "k.json").values()
    assert lost["error"].startswith("the test process died while running this task")
    assert lost["threshold"] == 0.6


def test_the_ini_names_suites_too(pytester: pytest.Pytester, empty_folder: Path) -> None:
    pytester.makeini("[pytest]\npolicyeval_suites = navigation_single\n")
    result = pytester.runpytest_subprocess("--policy-uri", "random://", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["suites/navigation_single.yaml::navigation/wall_with_gap[[]random[]]"])


def test_an_unknown_name_is_one_usage_error_listing_the_known_names(
    pytester: pytest.Pytester, empty_folder: Path
) -> None:
    result = pytester.runpytest_subprocess("--eval-suite", "lazer_tag", "--policy-uri", "random://")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: no simulation suite 'lazer_tag': not a file, and not a suite name; "
            "known names: cartpole, full_eval, gymnasium_classic, laser_tag, navigation, navigation_single, "
            "pettingzoo_mpe (looked in *)"
        ]
    )
