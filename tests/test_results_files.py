"""Result files: the evaluator JSON and Metta's evaluation_results.yaml, written atomically."""

from __future__ import annotations

import json

import pytest
import yaml

from pytest_policyeval.scoring import averages, category_scores

SUITE_TWO_CATEGORIES = """
name: mixed
seed: 1
defaults: {num_episodes: 3, max_steps: 12, gate: mean}
tasks:
  - {name: nav/easy, map: maps/easy.map, threshold: 0.9}
  - {name: nav/hard, map: maps/hard.map}
  - {name: nav_memory/easy, map: maps/easy.map}
"""


@pytest.fixture
def run(pytester: pytest.Pytester):
    from helpers import write_suite

    write_suite(pytester.path, SUITE_TWO_CATEGORIES)
    result = pytester.runpytest(
        "--policy-uri",
        "random://",
        "--eval-json",
        "out/results.json",
        "--eval-yaml",
        "out/evaluation_results.yaml",
    )
    return result, pytester.path / "out"


def test_json_has_the_evaluator_shape_and_per_task_detail(run) -> None:
    result, out = run
    result.assert_outcomes(passed=3)
    doc = json.loads((out / "results.json").read_text())
    assert doc["simulation_suite"] == "mixed"
    assert doc["passed"] is True
    (policy,) = doc["policies"]
    assert policy["policy_uri"] == "random://"
    (checkpoint,) = policy["checkpoints"]
    assert set(checkpoint) >= {"name", "uri", "metrics", "replay_url"}
    tasks = checkpoint["metrics"]["tasks"]
    assert list(tasks) == ["nav/easy", "nav/hard", "nav_memory/easy"]
    easy = tasks["nav/easy"]
    assert easy["threshold"] == 0.9 and easy["passed"] is True and easy["num_episodes"] == 3
    assert len(easy["seeds"]) == len(easy["episode_rewards"]) == len(easy["episode_scores"]) == 3
    assert easy["score"] == pytest.approx(sum(easy["episode_scores"]) / 3)
    assert easy["ci_low"] <= easy["score"] <= easy["ci_high"]


def test_yaml_has_metta_layout_with_exact_categories(run) -> None:
    _, out = run
    doc = yaml.safe_load((out / "evaluation_results.yaml").read_text())
    assert doc["policy"] == "random://" and doc["suite"] == "mixed" and doc["num_episodes"] == 3
    assert doc["device"] == "cpu"
    detailed = doc["results"]["detailed_scores"]
    assert set(detailed) == {"nav", "nav_memory"}
    assert set(detailed["nav"]) == {"easy", "hard"}
    nav = (detailed["nav"]["easy"] + detailed["nav"]["hard"]) / 2
    assert doc["results"]["avg_category_score"] == pytest.approx((nav + detailed["nav_memory"]["easy"]) / 2)
    tasks = [detailed["nav"]["easy"], detailed["nav"]["hard"], detailed["nav_memory"]["easy"]]
    assert doc["results"]["avg_simulation_score"] == pytest.approx(sum(tasks) / 3)


def test_no_temporary_files_are_left_behind(run) -> None:
    _, out = run
    assert sorted(p.name for p in out.iterdir()) == ["evaluation_results.yaml", "results.json"]


def test_errors_and_failures_are_kept_in_the_files(pytester: pytest.Pytester) -> None:
    from helpers import write_suite

    write_suite(pytester.path, SUITE_TWO_CATEGORIES)
    result = pytester.runpytest(
        "--policy-uri", "random://", "--policy-uri", "missing.pt", "--eval-json", "r.json"
    )
    result.assert_outcomes(passed=3, failed=3)
    doc = json.loads((pytester.path / "r.json").read_text())
    assert doc["passed"] is False
    broken = doc["policies"][1]["checkpoints"][0]["metrics"]
    assert broken["num_errors"] == 3
    assert "no such file" in broken["tasks"]["nav/easy"]["error"]
    assert doc["policies"][0]["checkpoints"][0]["metrics"]["num_errors"] == 0


def test_categories_match_exactly_not_by_substring() -> None:
    scores = {"memory/a": 1.0, "systematic_exploration_memory/b": 0.0, "memory/c": 0.5}
    assert category_scores(scores) == {"memory": 0.75, "systematic_exploration_memory": 0.0}
    assert averages(scores) == pytest.approx((0.5, 0.375))
