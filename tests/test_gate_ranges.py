"""Every gate holds scores to the declared range, a baseline gate included, and a baseline gate on
a task with no range says what it needs instead of crashing.

Premises are certain: scripted://navigator scores exactly 1.0 on a map it always solves, and a
random policy never reaches a goal behind walls in a few steps (0.0).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import run_certain, task_details, write_suite

from pytest_policyeval.gates.decide import judge
from pytest_policyeval.gates.design import GateDesign, RangeError, paired
from pytest_policyeval.rounds import Episode, judge_pair


@pytest.mark.parametrize("kind", ["mean", "ci"])
def test_a_fixed_gate_refuses_a_score_outside_the_range_naming_the_episode(kind: str) -> None:
    design = GateDesign(kind, 0.5, True, 0.0, 1.0, 0.1)
    with pytest.raises(
        RangeError, match=r"episode 2: score 1\.5 is outside the declared score range \[0, 1\]"
    ):
        judge(design, [0.2, 0.9, 1.5, 0.4])
    with pytest.raises(RangeError, match=r"episode 1: score is nan, not a finite number"):
        judge(GateDesign(kind, 0.5, True, None, None, 0.1), [0.2, math.nan])
    assert judge(design, [0.0, 1.0, 1.0]).outcome is not None  # the range's ends are inside it


def test_an_ungated_task_is_held_to_its_range_too() -> None:
    # Its interval is drawn within the range: a score of 1.0 on [0, 0.9] would sit outside it.
    design = GateDesign("sequential", None, True, 0.0, 0.9, 0.09)
    with pytest.raises(RangeError, match=r"episode 0: score 1 is outside the declared score range"):
        judge(design, [1.0, 1.0])
    with pytest.raises(RangeError, match=r"episode 1: score is inf, not a finite number"):
        judge(GateDesign("sequential", None, True, None, None, None), [0.5, math.inf])
    kept = judge(design, [0.9, 0.0])
    assert kept.outcome is None and 0.0 <= kept.low <= kept.estimate <= kept.high <= 0.9


@pytest.mark.parametrize("gate", ["mean", "ci"])
def test_a_fixed_gate_run_errs_on_a_score_above_the_declared_range(
    pytester: pytest.Pytester, gate: str
) -> None:
    result, detail = run_certain(
        pytester,
        f"threshold: 0.25\n        score_range: [0, 0.5]\n        gate: {gate}",
        "scripted://navigator",
    )
    assert "episode 0: score 1 is outside the declared score range [0, 0.5]" in detail["error"]
    result.assert_outcomes(failed=1)
    assert json.loads((pytester.path / "out.json").read_text())["passed"] is False


def test_a_baseline_gate_against_itself_still_checks_the_scores(pytester: pytest.Pytester) -> None:
    """Every difference is 0, well inside [-0.5, 0.5]: only the scores themselves show the range is
    wrong. Both policies score 1 from episode 0; the candidate's is named."""
    result, detail = run_certain(
        pytester,
        "threshold: 0.25\n        score_range: [0, 0.5]",
        "scripted://navigator",
        "--baseline-uri",
        "scripted://navigator",
    )
    assert (
        "episode 0: the candidate's score 1 is outside the declared score range [0, 0.5]" in detail["error"]
    )
    result.assert_outcomes(failed=1)


def _episodes(scores: list[float]) -> list[Episode]:
    return [Episode(i, i, [s], 1, [0], False) for i, s in enumerate(scores)]


def test_a_baseline_score_outside_the_range_is_named_unless_the_gate_decided_before_it() -> None:
    design = GateDesign("sequential", 0.5, True, 0.0, 1.0, 0.1)
    good, bad = [0.6] * 40, [0.6] * 3 + [1.4] + [0.6] * 36
    with pytest.raises(RangeError, match=r"episode 3: the baseline's score 1\.4 is outside .*\[0, 1\]"):
        judge_pair(design, paired(design), _episodes(good), _episodes(bad))
    with pytest.raises(RangeError, match=r"episode 3: the candidate's score -0\.2 is outside"):
        judge_pair(design, paired(design), _episodes([*good[:3], -0.2, *good[4:]]), _episodes(bad))
    # The earlier episode is named, whichever policy scored it.
    with pytest.raises(RangeError, match=r"episode 3: the baseline's"):
        judge_pair(design, paired(design), _episodes([*good[:5], -0.2, *good[6:]]), _episodes(bad))
    # Equal scores pass the paired gate after 20 episodes; a bad baseline score later changes nothing.
    late = [0.6] * 30 + [1.4] + [0.6] * 9
    decided = judge_pair(design, paired(design), _episodes(good), _episodes(late))
    assert decided.outcome == "pass" and decided.episodes <= 30
    fixed = GateDesign("mean", 0.5, True, 0.0, 1.0, 0.1)  # a fixed gate uses every episode
    with pytest.raises(RangeError, match="episode 30: the baseline's"):
        judge_pair(fixed, paired(fixed), _episodes(good), _episodes(late))


FROZEN = """
name: frozen
seed: 0
defaults: {{engine: gymnasium, num_episodes: 8, max_steps: 50}}
tasks:
  - name: toy/frozen
    env: FrozenLake-v1
    {settings}
"""


def run_frozen(pytester: pytest.Pytester, settings: str):
    write_suite(pytester.path, FROZEN.format(settings=settings), maps={})
    result = pytester.runpytest(
        "--policy-uri",
        "random://",
        "--baseline-uri",
        "random://",
        "--eval-json",
        "out.json",
        "--eval-yaml",
        "out.yaml",
    )
    return result, task_details(pytester.path / "out.json")[("toy/frozen", "random")]


@pytest.mark.parametrize(
    ("settings", "key"),
    [("gate: sequential", "score_range"), ("gate: mean", "margin"), ("gate: ci", "margin")],
)
def test_a_baseline_gate_without_a_range_names_what_it_needs(
    pytester: pytest.Pytester, settings, key
) -> None:
    result, detail = run_frozen(pytester, settings)
    assert f"key '{key}'" in detail["error"], detail["error"]
    assert "Traceback" not in detail["error"]
    result.assert_outcomes(failed=1)


@pytest.mark.parametrize("gate", ["sequential", "ci", "mean"])
def test_a_baseline_gates_margin_of_half_the_range_or_more_is_refused(
    pytester: pytest.Pytester, gate
) -> None:
    # Trailing by 0.5 on [0, 1]: a candidate that never succeeds against one that always does
    # would still pass.
    result, detail = run_frozen(pytester, f"gate: {gate}\n    score_range: [0, 1]\n    margin: 0.5")
    assert "key 'margin': 0.5 is half the score range [0, 1] or more" in detail["error"], detail["error"]
    result.assert_outcomes(failed=1)
    result, detail = run_frozen(pytester, f"gate: {gate}\n    score_range: [0, 1]\n    margin: 0.49")
    assert detail["error"] is None, detail["error"]


@pytest.mark.parametrize("gate", ["ci", "mean"])
def test_a_baseline_gate_without_a_range_but_with_a_margin_runs_and_writes_finite_files(
    pytester: pytest.Pytester, gate: str
) -> None:
    result, detail = run_frozen(pytester, f"gate: {gate}\n    margin: 0.1")
    # The same policy on the same seeds: every difference is 0, and nothing bounds a next one.
    assert detail["error"] is None and detail["outcome"] == "pass", detail
    assert set(detail["episode_scores"]) <= {0.0, 1.0}
    result.assert_outcomes(passed=1)
    text = (pytester.path / "out.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert ".nan" not in (pytester.path / "out.yaml").read_text().lower()
    assert np.isfinite(detail["ci_low"]) and np.isfinite(detail["ci_high"])


def test_a_plugins_gate_gets_the_same_range_check(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_policyeval.gates.sequential import Decision

        class Always:
            sequential, needs_range, guarantee = False, False, "none"

            def decide(self, design, scores, trace=False):
                return Decision("pass", len(scores), 0.0, 0.0, 0.0, None, None, "always")

        def pytest_policyeval_gates():
            return {"always": Always()}
        """
    )
    result, detail = run_certain(
        pytester,
        "threshold: 0.25\n        score_range: [0, 0.5]\n        gate: always",
        "scripted://navigator",
    )
    assert "episode 0: score 1 is outside the declared score range [0, 0.5]" in detail["error"]
    result.assert_outcomes(failed=1)


def test_a_sequential_gate_that_decided_before_a_bad_score_keeps_its_decision() -> None:
    design = GateDesign("sequential", 0.5, True, 0.0, 1.0, 0.1)
    scores = [1.0] * 30 + [7.0]  # passes within 30 episodes; episode 30 is out of range
    decided = judge(design, scores)
    assert decided.outcome == "pass" and decided.episodes < 30
    with pytest.raises(RangeError, match="episode 2: score 7"):
        judge(design, [1.0, 1.0, 7.0])  # undecided by then: the range error stands
