"""The suite verdict over task outcomes (gates/aggregate.py), and the bound it states."""

from __future__ import annotations

import pytest

from pytest_policyeval.gates.aggregate import suite_verdict


@pytest.mark.parametrize(
    ("outcomes", "passed", "expected"),
    [
        (["pass", "pass"], [True, True], "pass"),
        (["pass", "fail"], [True, False], "fail"),
        (["pass", "error"], [True, False], "error"),
        (["fail", "error"], [False, False], "fail"),
        (["pass", "inconclusive"], [True, False], "fail"),  # counted as a fail (the default)
        (["pass", "inconclusive"], [True, None], "inconclusive"),  # counted as neither (skip)
        (["pass", "inconclusive"], [True, True], "pass"),  # counted as a pass by the suite's choice
        ([None, "pass"], [None, True], "pass"),  # an ungated task does not count
    ],
)
def test_the_verdict_over_outcomes(outcomes, passed, expected) -> None:
    verdict = suite_verdict(
        outcomes, passed, "bonferroni", [0.005] * sum(o not in (None, "error") for o in outcomes)
    )
    assert verdict["outcome"] == expected
    assert verdict["gated_tasks"] == sum(o is not None for o in outcomes)


def test_the_bound_is_the_sum_of_the_tasks_beta_capped_at_one() -> None:
    verdict = suite_verdict(["pass"] * 3, [True] * 3, "bonferroni", [0.01 / 3] * 3)
    assert verdict["false_fail_bound"] == pytest.approx(0.01)
    assert "each beta / K" in verdict["guarantee"]
    assert suite_verdict(["pass"] * 3, [True] * 3, "none", [0.5] * 3)["false_fail_bound"] == 1.0


def test_no_gated_task_and_no_verdict_reached_say_so() -> None:
    assert suite_verdict([None], [None], "bonferroni") == {"outcome": None, "gated_tasks": 0}
    errored = suite_verdict(["error"], [False], "none")
    assert errored["outcome"] == "error" and errored["false_fail_bound"] is None
    assert errored["guarantee"].startswith("none: no gated task reached a verdict")


def test_a_suite_whose_every_task_erred_names_no_multiplicity_and_no_guarantee(
    pytester: pytest.Pytester,
) -> None:
    import json

    from helpers import MINI_SUITE, write_suite

    write_suite(pytester.path, MINI_SUITE.replace("gate: mean", "gate: sequential"))
    result = pytester.runpytest("--policy-uri", "file://missing.pt", "--eval-json", "out.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    document = json.loads((pytester.path / "out.json").read_text())
    verdict = document["policies"][0]["checkpoints"][0]["metrics"]["suite_verdict"]
    assert verdict["outcome"] == "error" and verdict["multiplicity"] == "n/a", verdict
    assert verdict["guarantee"].startswith("none"), verdict
    result.stdout.fnmatch_lines(["*Suite verdict: ERROR*multiplicity: n/a)*"])


def test_a_one_episode_task_beside_others_keeps_the_headline_interval() -> None:
    from pytest_policyeval.gates.aggregate import iqm_interval

    # scipy's bootstrap refuses a sample of one; the task's one episode is its mean every time.
    headline = iqm_interval([[0.5], [0.1, 0.9, 0.3, 0.7], [0.2, 0.4]])
    assert headline["low"] is not None and headline["low"] <= headline["iqm"] <= headline["high"]


def _result(task: str, suite: str = "s", **fields):
    from pytest_policyeval.results import TaskResult

    base = dict(
        suite=suite, task=task, policy_uri="random://", policy_label="random", order=(0, 0, 0),
        threshold=None, higher_is_better=True, gate="sequential", num_episodes=2, seed=0,
    )  # fmt: skip
    return TaskResult(**{**base, **fields})


def test_an_ungated_task_that_erred_is_not_counted_among_the_gated() -> None:
    from pytest_policyeval.reporting.documents import suite_summary

    results = [
        _result("nav/gated", threshold=0.5, outcome="pass", passed=True, score=0.9),
        _result("nav/free", error="TaskTimeout: too slow"),
        _result("nav/own_baseline", gated=True, error="baseline policy could not be loaded"),
    ]
    verdict = suite_summary(results)["suite_verdict"]
    assert (verdict["gated_tasks"], verdict["error_tasks"], verdict["outcome"]) == (2, 1, "error")


def test_the_terminal_shows_the_evidence_that_decided() -> None:
    from pytest_policyeval.reporting.terminal import summary_lines

    # Passed at 3.36 >= 1/alpha while the fail side's evidence had grown larger.
    result = _result(
        "nav/t", threshold=1.1, outcome="pass", passed=True, score=1.4, evidence={"pass": 3.36, "fail": 59.4}
    )
    assert result.deciding_evidence == (3.36, "pass")
    (row,) = [line for line in summary_lines([result]) if "nav/t" in line and "PASS" in line]
    assert "3.36" in row and "59.4" not in row


def test_a_task_named_alike_in_two_suites_keeps_both_results() -> None:
    from pytest_policyeval.reporting.documents import (
        evaluation_yaml,
        evaluator_json,
        results_from_evaluator_json,
    )

    results = [
        _result("nav/shared", "a", order=(0, 0, 0), score=0.0, threshold=0.5, outcome="fail", passed=False),
        _result("nav/only_a", "a", order=(0, 1, 0), score=0.29),
        _result("nav/shared", "b", order=(1, 0, 0), score=0.145, threshold=0.2, outcome="pass", passed=True),
    ]
    run = {"complete": True}
    document = evaluator_json(results, run)
    tasks = document["policies"][0]["checkpoints"][0]["metrics"]["tasks"]
    assert sorted(tasks) == ["nav/only_a", "nav/shared@a", "nav/shared@b"]
    back = results_from_evaluator_json(document)
    assert sorted((r.suite, r.task) for r in back) == [
        ("a", "nav/only_a"),
        ("a", "nav/shared"),
        ("b", "nav/shared"),
    ]
    metta = evaluation_yaml(results, run)
    assert metta["results"]["avg_simulation_score"] == pytest.approx((0.0 + 0.29 + 0.145) / 3)
    assert set(metta["gates"]) == {"nav/only_a", "nav/shared@a", "nav/shared@b"}


def test_the_headline_says_which_tasks_it_covers() -> None:
    from pytest_policyeval.reporting.documents import suite_summary

    ranged = dict(threshold=0.5, outcome="pass", passed=True, design={"low": 0.0, "high": 1.0})
    results = [
        _result("nav/a", score=0.5, episode_scores=[0.4, 0.6], **ranged),
        _result("nav/b", score=0.9, episode_scores=[0.9, 0.9], **ranged),
        _result("nav/free", score=7.0, episode_scores=[6.0, 8.0]),  # no range: not normalised
    ]
    headline = suite_summary(results)["iqm_normalised_score"]
    assert headline["tasks_covered"] == 2 and "over 2 of 3 tasks" in headline["method"]


@pytest.mark.parametrize("tasks", [3, 4, 13, 40])
def test_the_iqm_and_its_interval_match_scipys_trim_mean_and_percentile_bootstrap(tasks: int) -> None:
    """Computed with numpy alone (importing scipy.stats costs a second of every run), checked
    against scipy's own trim_mean and stratified percentile bootstrap on the same draws."""
    import numpy as np
    from scipy.stats import bootstrap, trim_mean

    from pytest_policyeval.gates.aggregate import RESAMPLES, SEED, _iqm, iqm_interval

    rng = np.random.default_rng(tasks)
    samples = [rng.beta(2, 3, int(rng.integers(2, 30))) for _ in range(tasks)]
    matrix = rng.random((7, tasks))
    assert np.array_equal(_iqm(matrix, axis=1), trim_mean(matrix, 0.25, axis=1))

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        return trim_mean(np.stack([r.mean(axis=axis) for r in resampled], axis=-1), 0.25, axis=-1)

    reference = bootstrap(
        samples, statistic, n_resamples=RESAMPLES, method="percentile", vectorized=True,
        random_state=np.random.default_rng(SEED),
    ).confidence_interval  # fmt: skip
    headline = iqm_interval(samples)
    assert headline["low"] == pytest.approx(reference.low, abs=1e-12)
    assert headline["high"] == pytest.approx(reference.high, abs=1e-12)
    assert headline["iqm"] == trim_mean([s.mean() for s in samples], 0.25)


def _gated(task: str, gate: str, multiplicity: str = "bonferroni", **fields):
    design = {"beta": 0.005, "multiplicity": multiplicity, "sequential": gate == "sequential"}
    return _result(
        task, threshold=0.5, outcome="pass", passed=True, score=0.9, gate=gate, design=design, **fields
    )


def test_the_suite_guarantee_counts_only_gates_that_control_a_false_fail() -> None:
    from pytest_policyeval.reporting.documents import suite_summary

    mixed = suite_summary([_gated("nav/a", "sequential"), _gated("nav/b", "mean"), _gated("nav/c", "ci")])
    verdict = mixed["suite_verdict"]
    assert verdict["false_fail_bound"] == pytest.approx(0.005)  # the sequential task's beta alone
    assert "2 task(s) with a fixed gate (mean, ci) are not covered" in verdict["guarantee"]
    fixed = suite_summary([_gated("nav/b", "mean"), _gated("nav/c", "ci")])["suite_verdict"]
    assert fixed["false_fail_bound"] is None and fixed["guarantee"].startswith(
        "none: its 2 gated task(s) use fixed"
    )
    # Neutral to direction and baseline: no "above"/"below" that lower-is-better would turn around.
    assert (
        "on the good side of every threshold" in verdict["guarantee"] and "above" not in verdict["guarantee"]
    )
    lenient = suite_summary([_gated("nav/a", "sequential", inconclusive="pass")])["suite_verdict"]
    assert "counting inconclusive as pass passes without its false-pass bound" in lenient["guarantee"]
    # A cap that the hardest scores a margin on the good side reached undecided (a fail) adds to it.
    short = _gated("nav/s", "sequential")
    short.design["cap_risk"] = 0.02
    capped = suite_summary([_gated("nav/a", "sequential"), short])["suite_verdict"]
    assert capped["false_fail_bound"] == pytest.approx(0.005 + 0.005 + 0.02)
    assert "plus 0.02 for 1 cap(s) that the hardest scores" in capped["guarantee"]
    # Caps that decide nothing leave no bound, said as such rather than summed past 1.
    hopeless = []
    for name in ("nav/x", "nav/y"):
        task = _gated(name, "sequential")
        task.design["cap_risk"] = 1.0
        hopeless.append(task)
    none = suite_summary(hopeless)["suite_verdict"]
    assert none["false_fail_bound"] == 1.0 and none["guarantee"].startswith("none: 2 cap(s) are reached")
    assert "plus 2" not in none["guarantee"]


def test_suites_sharing_beta_differently_are_both_named() -> None:
    from pytest_policyeval.reporting.documents import suite_summary

    verdict = suite_summary([_gated("nav/a", "sequential"), _gated("nav/b", "sequential", "none", suite="t")])
    assert verdict["suite_verdict"]["multiplicity"] == "bonferroni, none"
    assert "each beta / K" not in verdict["suite_verdict"]["guarantee"]  # not every task's beta was split


def test_a_verdict_over_part_of_a_suite_says_how_much_was_left_out(pytester: pytest.Pytester) -> None:
    import json

    from helpers import MINI_SUITE, write_suite

    write_suite(
        pytester.path, MINI_SUITE.replace("map: maps/hard.map", "map: maps/hard.map\n    threshold: 0.1")
    )
    result = pytester.runpytest(
        "--policy-uri", "scripted://navigator", "--eval-json", "out.json", "-k", "easy"
    )
    document = json.loads((pytester.path / "out.json").read_text())
    verdict = document["policies"][0]["checkpoints"][0]["metrics"]["suite_verdict"]
    assert verdict["gated_tasks"] == 1 and verdict["unselected_tasks"] == 1
    result.stdout.fnmatch_lines(
        ["*Suite verdict: * of 1 gated; 1 more of the suite not selected (-k, -m, --lf)*"]
    )
    pytester.runpytest("--policy-uri", "scripted://navigator", "--eval-json", "all.json")
    whole = json.loads((pytester.path / "all.json").read_text())
    assert whole["policies"][0]["checkpoints"][0]["metrics"]["suite_verdict"]["unselected_tasks"] == 0
