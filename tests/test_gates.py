"""Thresholds become assertions: exit code 1 below a threshold, 0 above, with a full message.

These pin the fixed-episode gates (`mean`, Metta's rule, and `ci`); the sequential gate, the
default, is pinned in test_gate_boundaries.py and test_sequential.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_suite

from pytest_policyeval.gates.decide import judge
from pytest_policyeval.gates.design import GateDesign

SUITE = """
name: gates
seed: 0
defaults:
  gate: mean
  num_episodes: 6
  max_steps: 20
tasks:
  - name: nav/easy
    map: maps/easy.map
    threshold: {threshold}
    {extra}
"""


def run(pytester: pytest.Pytester, threshold: float, extra: str = "", *args: str) -> pytest.RunResult:
    write_suite(pytester.path, SUITE.format(threshold=threshold, extra=extra))
    return pytester.runpytest("--policy-uri", "random://", *args)


def test_passing_gate_exits_zero(pytester: pytest.Pytester) -> None:
    result = run(pytester, 0.8)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_failing_gate_exits_one_with_score_interval_threshold_episodes(pytester: pytest.Pytester) -> None:
    result = run(pytester, 1.5)
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*gate failed: nav/easy [[]random[]]: FAIL, score 1.000 [[]0.*, 1.000[]] (wilson, 95%*), "
            "threshold >= 1.5 (mean gate)*"
        ]
    )


def test_lower_is_better_reverses_the_gate(pytester: pytest.Pytester) -> None:
    failing = run(pytester, 0.5, "higher_is_better: false")
    failing.assert_outcomes(failed=1)
    failing.stdout.fnmatch_lines(["*threshold <= 0.5*"])


def test_ci_gate_fails_where_the_mean_would_pass(pytester: pytest.Pytester) -> None:
    body = """
    name: gates
    defaults: {num_episodes: 8, max_steps: 10, gate: mean}
    tasks:
      - name: nav/coin
        map: maps/coin.map
        threshold: 0.2
    """
    # A goal two cells west of the start: a fair share of 10-step random walks reach it.
    write_suite(pytester.path, body, maps={"coin": "#######\n#_.@..#\n#######"})
    mean_gate = pytester.runpytest("--policy-uri", "random://", "--eval-json", "mean.json")
    ci_gate = pytester.runpytest("--policy-uri", "random://", "--eval-gate", "ci")
    import json

    task = json.loads((pytester.path / "mean.json").read_text())["policies"][0]["checkpoints"][0]["metrics"]
    detail = task["tasks"]["nav/coin"]
    assert detail["ci_low"] < 0.2 <= detail["score"], detail  # the premise of this test
    mean_gate.assert_outcomes(passed=1)
    ci_gate.assert_outcomes(failed=1)
    ci_gate.stdout.fnmatch_lines(["*(clopper-pearson, 90% two-sided)*(ci gate)*the one-sided 95% bound*"])


@pytest.mark.parametrize("n", [5, 10, 20, 40])
def test_the_ci_gate_passes_a_success_rate_at_its_threshold_at_most_alpha_of_the_time(n: int) -> None:
    # Exactly, over every count of successes: Wilson's bound passed up to 3 times alpha here.
    from scipy.stats import binom

    for threshold in np.linspace(0.05, 0.95, 37):
        design = GateDesign("ci", float(threshold), True, 0.0, 1.0, 0.1)
        passes = [judge(design, np.r_[np.ones(k), np.zeros(n - k)]).outcome == "pass" for k in range(n + 1)]
        chance = float(binom.pmf(np.arange(n + 1), n, threshold) @ np.array(passes, dtype=float))
        assert chance <= design.alpha + 1e-12, (threshold, chance)


def test_the_ci_gate_on_skewed_scores_keeps_its_false_pass_rate() -> None:
    # Mean 0.8722, below 0.88 = threshold - margin; a bootstrap bound passed it 20-30% of the time
    # at ten episodes.
    rng = np.random.default_rng(7)
    design = GateDesign("ci", 0.98, True, 0.0, 1.0, 0.1)
    runs = 300
    passed = sum(
        judge(design, rng.choice([0.0, 0.99, 1.0], p=[0.12, 0.78, 0.10], size=10)).outcome == "pass"
        for _ in range(runs)
    )
    assert passed / runs <= design.alpha + 3 * (design.alpha * (1 - design.alpha) / runs) ** 0.5
    # And it is a real test: a policy well above the threshold passes.
    good = judge(GateDesign("ci", 0.5, True, 0.0, 1.0, 0.1), rng.beta(8, 1, 30))
    assert good.outcome == "pass" and good.interval_method.startswith("betting")


def test_task_without_threshold_passes_and_is_reported(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, "name: s\ntasks:\n  - {name: nav/hard, map: maps/hard.map, max_steps: 8}\n")
    result = pytester.runpytest("--policy-uri", "random://")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*policy evaluation*", "*nav/hard*0.000*"])


def test_policy_that_cannot_load_fails_every_task_with_one_clear_message(pytester: pytest.Pytester) -> None:
    result = run(pytester, 0.5, "", "--policy-uri", "nope://x")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*policy could not be loaded: nope://x: unknown policy URI scheme 'nope://'*"]
    )
