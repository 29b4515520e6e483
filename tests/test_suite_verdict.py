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
