"""The paired gate: a candidate against a baseline on the same seeds, judged on per-seed differences."""

from __future__ import annotations

import pytest
from helpers import task_details, write_suite

# The goal two cells away: the navigator always reaches it, random play only sometimes.
SUITE = """
name: paired
seed: 2
defaults: {num_episodes: 8, max_steps: 8}
tasks:
  - name: nav/near
    map: maps/near.map
    threshold: 0.2
"""
NEAR = "#######\n#_.@..#\n#######"


def run(pytester: pytest.Pytester, policy: str, baseline: str, *args: str):
    write_suite(pytester.path, SUITE, maps={"near": NEAR})
    result = pytester.runpytest(
        "--policy-uri", policy, "--baseline-uri", baseline, "--eval-json", "o.json", *args
    )
    (detail,) = task_details(pytester.path / "o.json").values()
    return result, detail


def test_a_policy_against_itself_passes_on_zero_differences(pytester: pytest.Pytester) -> None:
    result, detail = run(pytester, "random://", "random://")
    assert detail["episode_scores"] == detail["baseline_episode_scores"]  # the same seeds, the same play
    assert detail["outcome"] == "pass" and detail["estimate"] == 0.0
    assert detail["design"]["threshold"] == pytest.approx(-detail["design"]["margin"])
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*gated against baseline random://*"])


def test_a_clearly_better_baseline_fails_the_candidate(pytester: pytest.Pytester) -> None:
    result, detail = run(pytester, "random://", "scripted://navigator")
    assert set(detail["baseline_episode_scores"]) == {1.0}  # the premise: the baseline always scores
    assert detail["outcome"] == "fail" and detail["estimate"] < -0.2
    assert detail["ci_high"] < detail["design"]["threshold"] + detail["design"]["margin"]
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL*per-seed difference*"])


def test_a_clearly_worse_baseline_passes_the_candidate(pytester: pytest.Pytester) -> None:
    _, detail = run(pytester, "scripted://navigator", "random://")
    assert detail["outcome"] == "pass" and detail["estimate"] > 0


def test_the_suite_can_name_the_baseline(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE + "    baseline_uri: scripted://navigator\n", maps={"near": NEAR})
    result = pytester.runpytest("--policy-uri", "random://", "--eval-json", "o.json")
    (detail,) = task_details(pytester.path / "o.json").values()
    assert detail["baseline_uri"] == "scripted://navigator" and detail["outcome"] == "fail"
    result.assert_outcomes(failed=1)


def test_an_unloadable_baseline_is_the_task_error(pytester: pytest.Pytester) -> None:
    result, detail = run(pytester, "random://", "scripted://nobody")
    assert detail["error"].startswith("baseline policy could not be loaded")
    result.assert_outcomes(failed=1)


def test_the_service_gates_against_its_baseline_variable(pytester: pytest.Pytester, monkeypatch) -> None:
    import json
    import sys

    write_suite(pytester.path, SUITE.replace("name: paired", "name: mini"), maps={"near": NEAR})
    for key, value in {
        "POLICY_URI": "random://",
        "SIMULATION_SUITE": "mini",
        "BASELINE_URI": "random://",
    }.items():
        monkeypatch.setenv(key, value)
    result = pytester.run(sys.executable, "-m", "pytest_policyeval.service")
    document = json.loads(result.stdout.str())
    (detail,) = document["policies"][0]["checkpoints"][0]["metrics"]["tasks"].values()
    assert detail["baseline_uri"] == "random://" and detail["outcome"] == "pass"
    assert result.ret == 0 and document["passed"] is True


def test_a_merged_paired_result_says_what_one_run_says(pytester: pytest.Pytester) -> None:
    from pytest_policyeval.merge import merge_shards

    _, detail = run(pytester, "random://", "scripted://navigator", "--shard-id=0", "--num-shards=1")
    assert "the mean per-seed difference to the baseline is below 0" in detail["reason"], detail["reason"]
    (merged,) = merge_shards([pytester.path / "o.json"]).results
    assert (merged.outcome, merged.reason) == (detail["outcome"], detail["reason"])


def test_a_tasks_own_baseline_shares_beta_among_the_gated_tasks_only(pytester: pytest.Pytester) -> None:
    # K counts tasks gated by a threshold or their own baseline; --baseline-uri alone gates all.
    body = """
    name: mixed
    defaults: {num_episodes: 4, max_steps: 8, map: maps/near.map}
    tasks:
      - {name: nav/threshold, threshold: 0.5}
      - {name: nav/own_baseline, baseline_uri: "random://"}
      - {name: nav/free}
      - {name: nav/also_free}
    """
    write_suite(pytester.path, body, maps={"near": NEAR})
    pytester.runpytest("--policy-uri", "scripted://navigator", "--eval-json", "out.json")
    details = {task: d for (task, _), d in task_details(pytester.path / "out.json").items()}
    for task in ("nav/threshold", "nav/own_baseline"):
        assert details[task]["design"]["gated_tasks"] == 2, task
        assert details[task]["design"]["beta"] == pytest.approx(0.01 / 2)
    pytester.runpytest(
        "--policy-uri", "scripted://navigator", "--baseline-uri", "random://", "--eval-json", "all.json"
    )
    everything = task_details(pytester.path / "all.json").values()
    assert {d["design"]["gated_tasks"] for d in everything} == {4}


def test_a_threshold_the_paired_gate_does_not_use_is_not_held_against_it(pytester: pytest.Pytester) -> None:
    # A threshold outside the range could gate nothing on its own (gate: mean tolerates it); a
    # baseline gate replaces it by -margin on the differences, so the task runs.
    body = SUITE.replace("threshold: 0.2", "threshold: 1.5\n    gate: mean")
    write_suite(pytester.path, body, maps={"near": NEAR})
    args = ("--policy-uri", "random://", "--eval-gate", "sequential")
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*key 'threshold': 1.5 is not inside the score range*"])
    result = pytester.runpytest(*args, "--baseline-uri", "random://", "--eval-json", "o.json")
    result.assert_outcomes(passed=1)
    (detail,) = task_details(pytester.path / "o.json").values()
    assert detail["outcome"] == "pass" and detail["design"]["threshold"] == -detail["design"]["margin"]
    # The suite's own baseline likewise, at load.
    write_suite(pytester.path, body + "    baseline_uri: random://\n", maps={"near": NEAR})
    pytester.runpytest("--policy-uri", "random://", "--eval-gate", "sequential").assert_outcomes(passed=1)


def test_a_baseline_that_plays_actions_the_engine_lacks_is_its_error_not_a_pass(
    pytester: pytest.Pytester,
) -> None:
    # mettagrid reads an unknown action id as no action: such a baseline would idle, score 0 and
    # pass every candidate. The action is refused, and the error says it was the baseline's.
    from helpers import random_scheme

    pytester.makeconftest(
        random_scheme(
            "broken", "return np.full(len(slots), 9999, dtype=np.int32)", imports="import numpy as np"
        )
    )
    result, detail = run(
        pytester, "scripted://navigator", "broken://", "--eval-yaml", "e.yaml", "--junitxml", "j.xml"
    )
    assert detail["outcome"] is None and detail["passed"] is None
    assert detail["error"].startswith("while the baseline (broken://) played: ValueError: task nav/near: ")
    assert "action 9999 of agent 0 is outside the action space" in detail["error"]
    result.assert_outcomes(failed=1)
    # Every document says why, and against what.
    import yaml

    (gate,) = yaml.safe_load((pytester.path / "e.yaml").read_text())["gates"].values()
    assert gate["error"] == detail["error"] and gate["baseline_uri"] == "broken://"
    junit = (pytester.path / "j.xml").read_text()
    assert 'name="policyeval_baseline_uri" value="broken://"' in junit
    # As the candidate, the same policy's error is its own.
    result, detail = run(pytester, "broken://", "random://")
    assert detail["error"].startswith("ValueError: task nav/near: action 9999 of agent 0 is outside")


def test_a_time_budget_spent_during_the_baseline_is_not_called_the_baselines_error(
    pytester: pytest.Pytester,
) -> None:
    # max_time_s is the task's, both players' rounds together: a slow baseline may be the one
    # playing when it runs out, but the error is the task's timeout, not a fault of the baseline.
    from helpers import random_scheme

    pytester.makeconftest(random_scheme("slow", "time.sleep(0.1)", imports="import time"))
    write_suite(
        pytester.path, SUITE.replace("max_steps: 8}", "max_steps: 8, max_time_s: 0.3}"), maps={"near": NEAR}
    )
    pytester.runpytest(
        "--policy-uri", "scripted://navigator", "--baseline-uri", "slow://", "--eval-json", "o.json"
    )
    (detail,) = task_details(pytester.path / "o.json").values()
    assert detail["error"].startswith("TaskTimeout: "), detail["error"]
