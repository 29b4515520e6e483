"""`policyeval run` (Metta's eval_external_policy.py flags) runs pytest with the plugin."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from helpers import MINI_SUITE, run_policyeval, task_details, write_suite

from pytest_policyeval.cli import SUITES_DIR_VAR, default_results_path

REPO = Path(__file__).resolve().parents[1]


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
            "--eval-json cli.json --eval-yaml eval_results/eval_random_mini/evaluation_results.yaml "
            "--save-replays=replays --eval-progress",
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
        "--eval-yaml",
        "out.yaml",
        "-n",
        "2",
        "--",
        "-k",
        "easy",
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "pytest suites/mini.yaml * -n 2 -k easy",
            "*= 1 passed in *",
            "policyeval: results written to out.yaml",
        ]
    )
    assert "episodes done" not in result.stdout.str()
    assert (pytester.path / "out.yaml").is_file() and not (pytester.path / "eval_results").exists()


def test_an_unknown_suite_is_a_usage_error_listing_the_known_names(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, MINI_SUITE)
    result = run_policyeval(pytester, "--policy-path", "random://", "--simulation-suite", "nav_missing")
    assert result.ret == 2
    result.stderr.fnmatch_lines(
        [
            "policyeval: error: no simulation suite 'nav_missing': not a file, and not a suite name; "
            "known names: cartpole, full_eval, gymnasium_classic, laser_tag, mini, navigation, "
            "navigation_single, pettingzoo_mpe (looked in */suites, *)"
        ]
    )
    assert "eval_results" not in result.stdout.str()


def test_the_seed_command_runs_a_metta_checkpoint_from_an_empty_folder(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Metta user's folder: their checkpoint (a bare state dict) and nothing else.
    monkeypatch.delenv(SUITES_DIR_VAR, raising=False)
    shutil.copy(REPO / "examples/policies/navigation.pt", pytester.path / "navigation.pt")
    result = run_policyeval(
        pytester,
        "--policy-path",
        "navigation.pt",
        "--simulation-suite",
        "navigation_single",
        "--num-episodes",
        "1",
        "--save-replays",
    )
    default = "eval_results/eval_navigation_navigation_single/evaluation_results.yaml"
    result.stdout.fnmatch_lines(
        [
            "pytest --eval-suite navigation_single -p no:cacheprovider --policy-uri navigation.pt "
            f"--num-episodes 1 --eval-yaml {default} --save-replays=replays --eval-progress",
            "suites/navigation_single.yaml *",
        ]
    )
    assert result.stdout.lines[-2:] == [
        f"policyeval: results written to {default}",
        "policyeval: replays written under replays",
    ]
    document = yaml.safe_load((pytester.path / default).read_text())
    assert document["suite"] == "navigation_single" and document["policy"] == "navigation.pt"
    assert list(document["results"]["detailed_scores"]["navigation"]) == ["wall_with_gap"]
    assert len(list((pytester.path / "replays").rglob("*.json.z"))) == 1


def test_the_default_results_folder_names_policies_and_suites() -> None:
    assert default_results_path(["ckpts/laser_tag.pt"], ["laser_tag"]) == Path(
        "eval_results/eval_laser_tag_laser_tag/evaluation_results.yaml"
    )
    # Several policies or suites: joined with '+', in the order given; paths name a suite by stem.
    assert default_results_path(["a.pt", "random://", "b/a.pt"], ["suites/nav.yaml", "full_eval"]) == Path(
        "eval_results/eval_a+random_nav+full_eval/evaluation_results.yaml"
    )
    assert default_results_path(["wandb://team/proj/model/nav:v3"], ["navigation"]).parent.name == (
        "eval_nav_v3_navigation"
    )


def test_the_progress_line_leaves_results_unchanged(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, MINI_SUITE)
    # Both runs play their episodes (kept ones would show no progress: there is nothing to play).
    args = ("-p", "no:importnb", "--policy-uri", "random://", "--no-eval-cache")
    plain = pytester.runpytest_subprocess(*args, "--eval-json", "a.json")
    shown = pytester.runpytest_subprocess(*args, "--eval-json", "b.json", "--eval-progress")
    shown.stdout.fnmatch_lines(["*nav/hard ?random?: 0/4 episodes done, step 1/30*"])
    assert "episodes done" not in plain.stdout.str()

    def timeless(path: Path) -> dict:
        return {key: {**detail, "wall_time_s": None} for key, detail in task_details(path).items()}

    assert timeless(pytester.path / "a.json") == timeless(pytester.path / "b.json")
