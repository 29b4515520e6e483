"""The edges of a gate, pinned: a score exactly at the threshold, lower-is-better interval gates, a
single episode, zero variance, and how many agents a share of them is.

Scores here come from policies whose play is certain (scripted://navigator on a map it always
solves, random:// on a map it can never solve), so each premise is checked, never assumed from a
checkpoint happening to score its threshold.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import CERTAIN_MAP, run_certain, run_policyeval, task_details, write_suite

from pytest_policyeval.gates.decide import judge
from pytest_policyeval.gates.design import GateDesign


def test_a_score_exactly_at_the_threshold_passes_the_mean_gate(pytester: pytest.Pytester) -> None:
    result, detail = run_certain(pytester, "threshold: 1.0\n        score_range: [0, 2]\n        gate: mean")
    assert detail["episode_scores"] == [1.0] * 4  # the premise: exactly the threshold, every time
    assert detail["estimate"] == 1.0 and detail["outcome"] == "pass"
    result.assert_outcomes(passed=1)


def test_equal_scores_give_the_ci_gate_a_bound_that_holds_for_any_distribution(
    pytester: pytest.Pytester,
) -> None:
    # Four episodes at exactly 1.0 do not prove the mean is 1.0: the exact bound on [0, 2].
    result, detail = run_certain(pytester, "threshold: 1.0\n        score_range: [0, 2]\n        gate: ci")
    assert detail["episode_scores"] == [1.0] * 4
    assert detail["interval_method"] == "exact for equal scores"
    assert detail["ci_low"] < 1.0 < detail["ci_high"] <= 2.0
    result.assert_outcomes(failed=1)
    settings = "threshold: 0.2\n        score_range: [0, 2]\n        gate: ci\n        num_episodes: 30"
    result, detail = run_certain(pytester, settings)
    assert detail["ci_low"] >= 0.2  # far enough below, with enough episodes: passes
    result.assert_outcomes(passed=1)


def test_a_score_exactly_at_the_threshold_never_fails_the_sequential_gate(pytester: pytest.Pytester) -> None:
    # Inside the margin either verdict is allowed; with no spread the pass bettor gains on every
    # episode (the mean is a margin above threshold - margin), so it passes once its bets allow.
    result, detail = run_certain(pytester, "threshold: 1.0\n        score_range: [0, 2]")
    assert set(detail["episode_scores"]) == {1.0}
    assert detail["outcome"] == "pass" and detail["num_episodes"] > 4
    assert detail["ci_low"] >= 1.0 - detail["design"]["margin"]
    result.assert_outcomes(passed=1)


INSIDE = "threshold: 1.0\n        score_range: [0, 2]\n        max_episodes: 8"  # capped before a pass (19)


def test_inconclusive_counts_as_fail_by_default_and_can_count_as_pass_or_skip(
    pytester: pytest.Pytester,
) -> None:
    result, detail = run_certain(pytester, INSIDE)
    assert detail["outcome"] == "inconclusive" and detail["passed"] is False
    assert "cap of 8 episodes" in detail["reason"]
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*INCONCLUSIVE (fail)*"])
    result, detail = run_certain(pytester, INSIDE + "\n        inconclusive: skip")
    assert detail["outcome"] == "inconclusive" and detail["passed"] is None
    result.assert_outcomes(skipped=1)
    result, detail = run_certain(pytester, INSIDE + "\n        inconclusive: pass")
    assert detail["passed"] is True
    result.assert_outcomes(passed=1)


def test_zero_variance_far_from_the_threshold_decides_without_nan(pytester: pytest.Pytester) -> None:
    result, detail = run_certain(pytester, "threshold: 0.5")
    assert detail["outcome"] == "pass"
    text = (pytester.path / "out.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert 0.5 - 0.1 <= detail["ci_low"] <= 1.0 == detail["ci_high"]
    result.assert_outcomes(passed=1)


def test_lower_is_better_with_an_interval_gate_uses_the_upper_bound() -> None:
    scores = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # mean 0.2
    lower = GateDesign("ci", 0.3, False, 0.0, 1.0, 0.1)
    decision = judge(lower, scores)
    assert decision.estimate == pytest.approx(0.2) and decision.high > 0.3  # the premise
    assert decision.outcome == "fail"  # the mean is below 0.3, but its upper bound is not
    assert judge(GateDesign("mean", 0.3, False, 0.0, 1.0, 0.1), scores).outcome == "pass"
    relaxed = GateDesign("ci", decision.high, False, 0.0, 1.0, 0.1)
    assert judge(relaxed, scores).outcome == "pass"  # exactly at the upper bound: passes
    higher = GateDesign("ci", decision.low, True, 0.0, 1.0, 0.1)
    assert judge(higher, scores).outcome == "pass"  # exactly at the lower bound: passes
    assert judge(GateDesign("ci", decision.low + 1e-9, True, 0.0, 1.0, 0.1), scores).outcome == "fail"


def test_lower_is_better_sequential_mirrors_higher_is_better() -> None:
    rng = np.random.default_rng(5)
    for p in (0.3, 0.45, 0.6, 0.75):
        scores = (rng.random(400) < p).astype(float)
        up = judge(GateDesign("sequential", 0.5, True, 0.0, 1.0, 0.1), scores)
        down = judge(GateDesign("sequential", 0.5, False, 0.0, 1.0, 0.1), 1.0 - scores)
        assert (up.outcome, up.episodes) == (down.outcome, down.episodes)
        assert down.low == pytest.approx(1 - up.high) and down.high == pytest.approx(1 - up.low)


def test_a_single_episode(pytester: pytest.Pytester) -> None:
    result, detail = run_certain(pytester, "threshold: 0.5\n        gate: mean\n        num_episodes: 1")
    assert detail["num_episodes"] == 1
    assert detail["interval_method"] == "one episode: the whole score range"
    assert (detail["ci_low"], detail["ci_high"]) == (0.0, 1.0)
    result.assert_outcomes(passed=1)
    # The sequential gate with a first round of one episode goes on until it can decide.
    result, detail = run_certain(pytester, "threshold: 0.5\n        num_episodes: 1")
    assert detail["outcome"] == "pass" and detail["num_episodes"] > 1
    assert detail["episodes_run"] >= detail["num_episodes"]


# Two teams of two: 0.7 of 4 agents is 2.8, which Metta floors to 2 (rounding would give 3).
FOUR = "#########\n#1.1.2.2#\n#########"


def test_the_share_of_agents_a_policy_plays_is_floored_as_metta_does(pytester: pytest.Pytester) -> None:
    body = """
    name: share
    defaults: {game: laser_tag, num_episodes: 3, max_steps: 5, gate: mean}
    tasks:
      - name: tag/share
        map: maps/four.map
        policy_agents_pct: 0.7
        npc_policy_uri: random://
    """
    write_suite(pytester.path, body, maps={"four": FOUR})
    pytester.runpytest("--policy-uri", "random://", "--eval-json", "out.json").assert_outcomes(passed=1)
    detail = task_details(pytester.path / "out.json")[("tag/share", "random")]
    assert [len(rewards) for rewards in detail["episode_rewards"]] == [2, 2, 2]
    design = json.loads((pytester.path / "out.json").read_text())["policies"][0]["checkpoints"][0]
    # The declared bound follows the same count: ceil(5/10) = 1 tag each, over 4 agents / 2 scored.
    assert design["metrics"]["tasks"]["tag/share"]["design"]["high"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("share", "count", "played"),
    [
        (0.75, 2, 1),  # round() gave 2, halves to even: the npc silently never played
        (0.5, 2, 1),
        (0.7, 4, 2),
        (0.99, 4, 3),  # below 1 leaves the npc an agent
        (0.1, 4, 1),  # at least one
        (0.57, 100, 57),  # 0.57 * 100 is 56.99999999999999 in binary
        (0.29, 100, 29),
        (1.0, 8, 8),
    ],
)
def test_scored_agents_follows_mettas_floor(share: float, count: int, played: int) -> None:
    from pytest_policyeval.task import scored_agents

    assert scored_agents(share, count) == played


def test_a_share_that_leaves_the_npc_no_agent_is_the_tasks_error(pytester: pytest.Pytester) -> None:
    body = """
    name: share
    defaults: {num_episodes: 2, max_steps: 5, gate: mean}
    tasks:
      - name: nav/alone
        map: maps/certain.map
        threshold: 0.5
        policy_agents_pct: 0.5
        npc_policy_uri: random://
    """
    write_suite(pytester.path, body, maps={"certain": CERTAIN_MAP})
    result = pytester.runpytest("--policy-uri", "scripted://navigator", "--eval-json", "out.json")
    result.assert_outcomes(failed=1)
    detail = task_details(pytester.path / "out.json")[("nav/alone", "navigator")]
    assert "leaves the npc policy none" in detail["error"] and detail["passed"] is not True


def test_junitxml_carries_the_gate_evidence(pytester: pytest.Pytester) -> None:
    import xml.etree.ElementTree as ET

    run_certain(pytester, "threshold: 0.5", "scripted://navigator", "--junitxml", "junit.xml")
    (case,) = ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["policyeval_outcome"] == "pass"
    assert int(properties["policyeval_episodes"]) >= 1
    assert float(properties["policyeval_evidence_pass"]) >= 20  # 1/alpha: what decided it
    assert properties["policyeval_reason"].startswith("passed after")
    assert "betting" in properties["policyeval_interval_method"]


def test_an_inconclusive_task_counted_as_skip_is_not_a_pass_in_the_results(pytester: pytest.Pytester) -> None:
    shard = ("--shard-id", "0", "--num-shards", "1")
    result, _ = run_certain(pytester, INSIDE + "\n        inconclusive: skip", "scripted://navigator", *shard)
    result.assert_outcomes(skipped=1)
    assert result.ret == 0  # skip: the run does not fail...
    document = json.loads((pytester.path / "out.json").read_text())
    assert document["passed"] is False  # ...but its files never call it passed
    merged = run_policyeval(pytester, "merge", "out.json")  # nor does a merge of its shards
    merged.stdout.fnmatch_lines(["0 passed, 0 failed, 1 skipped (merged from 1 shards)"])


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ("score_range: [-1.0e308, 1.0e308]\n        threshold: 0.5", "score_range"),
        # Finite, but a baseline gate's differences would span twice it, which is not.
        ("score_range: [-8.0e307, 8.0e307]\n        threshold: 0.5", "score_range"),
        ("score_range: [1, 0]\n        threshold: 0.5", "score_range"),
        ("threshold: 1.0", "threshold"),  # the top of the range [0, 1]: nothing can clear it
        ("threshold: 0.5\n        margin: 0.6", "margin"),
        ("threshold: 0.5\n        alpha: 0.7", "alpha"),
        ("threshold: 0.5\n        beta: 0", "beta"),
        ("threshold: 0.5\n        max_episodes: 0", "max_episodes"),
        ("threshold: 0.5\n        max_episodes: 3", "max_episodes"),  # below num_episodes (10)
        ("threshold: 0.5\n        threshold: 0.9", "threshold"),  # said twice: which one was meant?
        ("threshold: 0.5\n        inconclusive: maybe", "inconclusive"),
        ('threshold: 0.5\n        baseline_uri: ""', "baseline_uri"),
        ('threshold: "0.5"', "threshold"),  # taken as written: a quoted number is a string
        ("threshold: 0.5\n        num_episodes: true", "num_episodes"),
        ("threshold: 0.5\n        higher_is_better: 'no'", "higher_is_better"),
        ('threshold: 0.5\n        alpha: "0.05"', "alpha"),
    ],
)
def test_bad_gate_settings_are_suite_errors_naming_the_key(pytester: pytest.Pytester, settings, key) -> None:
    body = f"""
    name: edges
    tasks:
      - name: nav/certain
        map: maps/certain.map
        {settings}
    """
    write_suite(pytester.path, body, maps={"certain": CERTAIN_MAP})
    result = pytester.runpytest("--policy-uri", "random://")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*key '{key}'*"])
    assert "Traceback" not in result.stdout.str()


def test_a_gate_override_meeting_a_range_it_cannot_gate_is_the_task_error(pytester: pytest.Pytester) -> None:
    # Valid as a mean gate (threshold at the top of the range), not as a sequential one.
    result, detail = run_certain(
        pytester, "threshold: 1.0\n        gate: mean", "scripted://navigator", "--eval-gate", "sequential"
    )
    assert "key 'threshold'" in detail["error"] and "score range" in detail["error"]
    result.assert_outcomes(failed=1)


@pytest.mark.parametrize("n", [2, 10, 29, 400])
def test_equal_scores_get_clopper_pearsons_zero_event_bound_scaled_to_the_range(n: int) -> None:
    from scipy.stats import binomtest

    from pytest_policyeval.gates.intervals import interval

    # Every episode scored 0 on [-1, 1]: the chance of a score off 0 is at most Clopper-Pearson's
    # bound for zero events, and the mean is then at worst that chance times the distance to an end.
    shown = interval(np.zeros(n), -1.0, 1.0, level=0.9)
    chance = binomtest(0, n).proportion_ci(confidence_level=0.9, method="exact").high
    assert shown.method == "exact for equal scores"
    assert shown.low == pytest.approx(-chance, rel=1e-9) and shown.high == pytest.approx(chance, rel=1e-9)
    # Off-centre, each end scales by its own distance.
    shown = interval(np.full(n, 0.5), -1.0, 1.0, level=0.9)
    assert shown.low == pytest.approx(0.5 - 1.5 * chance) and shown.high == pytest.approx(0.5 + 0.5 * chance)


def test_the_equal_scores_bound_is_not_beaten_by_a_distribution_that_hides_a_lower_score() -> None:
    from pytest_policyeval.gates.intervals import interval

    # A two-point law: 0 with chance 1 - q, -1 with chance q, its mean just below the bound. It shows
    # n equal scores (and so an interval missing its mean) with probability at most 5%.
    n = 10
    low = interval(np.zeros(n), -1.0, 1.0, level=0.9).low
    q = -low * (1 + 1e-9)
    assert (1 - q) ** n <= 0.05
    rng = np.random.default_rng(0)
    shows_all_zero = np.mean(np.all(rng.random((200_000, n)) >= q, axis=1))
    assert shows_all_zero <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200_000)
    assert shows_all_zero > 0.045  # and the bound is tight: a wider one would waste episodes


def test_a_policy_equal_to_its_baseline_passes_a_paired_ci_gate_once_the_episodes_allow() -> None:
    from pytest_policyeval.gates.design import paired

    design = paired(GateDesign("ci", 0.5, True, 0.0, 1.0, 0.1))
    # Zero differences on [-1, 1] against threshold -0.1: a score off 0 must be ruled out at 10%.
    short = judge(design, np.zeros(28))
    assert short.outcome == "fail" and "clears the threshold after 29 equal episodes" in short.reason
    assert judge(design, np.zeros(29)).outcome == "pass"
    # Lower is better: the same count, measured toward the range's upper end.
    lower = GateDesign("ci", 0.5, False, 0.0, 1.0, 0.1)
    short = judge(lower, np.full(10, 0.4))
    assert short.outcome == "fail"
    needed = int(short.reason.split("after ")[-1].split()[0])
    assert judge(lower, np.full(needed, 0.4)).outcome == "pass"
    assert judge(lower, np.full(needed - 1, 0.4)).outcome == "fail"  # and no fewer
    # Equal scores on the bad side: no count helps, and none is offered.
    assert "equal episodes" not in judge(lower, np.full(100, 0.6)).reason
    # A paired lower-is-better gate sees its differences negated: a 0 is printed as 0, not -0.
    same = judge(paired(lower), np.full(10, -0.0))
    assert "every episode scored 0," in same.reason and "scored -0" not in same.reason


def test_a_mean_at_the_threshold_but_for_rounding_passes_the_mean_gate() -> None:
    # 12 tags over 20 episodes of 3 scored agents: exactly 0.2 a tag, yet the mean of the
    # episodes' k/3 comes out one bit below 0.2.
    tags = np.array([2, 1, 0, 0, 1, 1, 1, 1, 0, 2, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0])
    scores = tags / 3
    assert tags.sum() / 60 == 0.2 and np.mean(scores) < 0.2  # the premise
    assert judge(GateDesign("mean", 0.2, True, 0.0, 4.0), scores).outcome == "pass"
    assert judge(GateDesign("mean", 0.2, False, 0.0, 4.0), scores).outcome == "pass"
    # A real difference, however small against the scores, still decides.
    assert judge(GateDesign("mean", 0.2 + 1e-9, True, 0.0, 4.0), scores).outcome == "fail"
    assert judge(GateDesign("mean", 0.2 - 1e-9, False, 0.0, 4.0), scores).outcome == "fail"
    # Large scores of both signs do not widen the tie: their mean 0 is not 1e-7.
    far = judge(GateDesign("mean", 1e-7, True, -1e6, 1e6), np.array([1e6, -1e6]))
    assert far.outcome == "fail" and "the mean 0 < threshold 1e-07" in far.reason


def _refused_until(
    pytester: pytest.Pytester, body: str, message: str, fix: tuple[str, str], passed: int
) -> None:
    """`body` is refused when the suite is read, with `message`; with `fix` applied (a longer
    cap), its tasks run and the navigator passes them."""
    write_suite(pytester.path, body, maps={"certain": CERTAIN_MAP})
    result = pytester.runpytest("--policy-uri", "scripted://navigator")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error
    result.stdout.fnmatch_lines([message])
    write_suite(pytester.path, body.replace(*fix), maps={"certain": CERTAIN_MAP})
    pytester.runpytest("--policy-uri", "scripted://navigator").assert_outcomes(passed=passed)


def test_a_cap_that_cannot_reach_both_verdicts_is_a_suite_error(pytester: pytest.Pytester) -> None:
    # On [0, 1] at the default rates a pass takes at least 6 episodes and a fail 8, whatever is played.
    body = """
    name: capped
    tasks:
      - {name: nav/capped, map: maps/certain.map, threshold: 0.5, num_episodes: 3, max_episodes: 7}
    """
    message = (
        "*key 'max_episodes': 7 episodes cannot reach both verdicts*a fail at least 8, so no fail can come*"
    )
    _refused_until(pytester, body, message, ("max_episodes: 7", "max_episodes: 8"), passed=1)


def test_a_cap_is_checked_at_the_suites_beta_over_k(pytester: pytest.Pytester) -> None:
    # Alone, a task fails in 8 episodes at the earliest; with three gated tasks each runs at
    # beta / 3 and needs more, so a cap of 9 reaches no fail for any of them.
    body = """
    name: capped
    defaults: {num_episodes: 3, max_episodes: 9, threshold: 0.5}
    tasks:
      - {name: nav/a, map: maps/certain.map}
      - {name: nav/b, map: maps/certain.map}
      - {name: nav/c, map: maps/certain.map}
    """
    message = "*task 'nav/a': key 'max_episodes': 9 episodes cannot reach*beta / 3*"
    _refused_until(pytester, body, message, ("max_episodes: 9", "max_episodes: 20"), passed=3)


def test_a_cap_is_checked_for_the_paired_gate_a_baseline_brings(pytester: pytest.Pytester) -> None:
    # At threshold 0.5 on [0, 1] the task alone can pass in 6 episodes and fail in 8, within a
    # cap of 9; its differences to a baseline lie on [-1, 1], where a fail takes at least 10.
    body = """
    name: capped
    tasks:
      - {name: nav/capped, map: maps/certain.map, threshold: 0.5, num_episodes: 3, max_episodes: 9}
    """
    write_suite(pytester.path, body, maps={"certain": CERTAIN_MAP})
    pytester.runpytest("--policy-uri", "scripted://navigator").assert_outcomes(passed=1)
    # --baseline-uri: known only when the task runs, where it is the task's error, before any episode.
    result = pytester.runpytest("--policy-uri", "scripted://navigator", "--baseline-uri", "random://")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*key 'max_episodes': 9 episodes cannot reach both verdicts on the per-seed differences to the "
         "baseline*a fail at least 10*"]
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*nav/capped*d=n/a*d vs baseline*0*ERROR*"])  # no episode played
    # Asked for exactly 9 episodes, a run plays them and says inconclusive, as without a baseline.
    result = pytester.runpytest(
        "--policy-uri", "scripted://navigator", "--baseline-uri", "random://", "--num-episodes", "9"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*nav/capped*d=*9*INCONCLUSIVE*"])
    # The suite's own baseline is known at load: the suite is refused.
    keyed = body.replace("max_episodes: 9}", "max_episodes: 9, baseline_uri: 'random://'}")
    message = "*task 'nav/capped'*key 'max_episodes': 9 episodes*differences to the baseline*"
    _refused_until(pytester, keyed, message, ("max_episodes: 9", "max_episodes: 40"), passed=1)


def test_a_cap_too_short_for_a_policy_at_the_margin_is_said_in_the_guarantee(
    pytester: pytest.Pytester,
) -> None:
    # A margin of 0.03 on [0, 1]: 0/1 scores at 0.53 need over a thousand episodes to pass now and
    # then; a cap of 1000 stops about one run in eight undecided, which counts as a fail.
    _, detail = run_certain(pytester, "threshold: 0.5\n        margin: 0.03", "scripted://navigator")
    assert "but its cap of 1000 episodes can come first" in detail["guarantee"], detail["guarantee"]
    assert "undecided in 128 of 1000 simulated runs (12.8%)" in detail["guarantee"]
    assert "false fail can exceed beta" in detail["guarantee"]
    # Counted as skip, such a run is no fail, but its suite has no verdict: said too.
    _, skipped = run_certain(
        pytester, "threshold: 0.5\n        margin: 0.03\n        inconclusive: skip", "scripted://navigator"
    )
    assert "reached it undecided in 128 of 1000 simulated runs; such a run is skipped" in skipped["guarantee"]
    # The default margin leaves room: nothing is said.
    _, plain = run_certain(pytester, "threshold: 0.5", "scripted://navigator")
    assert "can come first" not in plain["guarantee"]


def test_the_cap_check_matches_what_the_gate_does() -> None:
    from pytest_policyeval.gates.sequential import cap_reached, undecided

    # Path by path, the simulation's rule is the gate's: on caps of 60 at beta / 13, many paths
    # at the good side's margin are still undecided, and exactly those.
    design = GateDesign("sequential", 0.5, True, 0.0, 1.0, 0.1, 0.05, 0.01 / 13, max_episodes=60)
    rng = np.random.default_rng(1)
    paths = (rng.random((300, 60)) < 0.6).astype(float)
    by_gate = np.array([judge(design, row).outcome == "inconclusive" for row in paths])
    assert by_gate.sum() > 30 and np.array_equal(undecided(design, paths), by_gate)
    reached, runs = cap_reached(design, "good")
    assert runs == 1000 and abs(reached / runs - by_gate.mean()) < 0.1
    # Lower is better: the good side is below the threshold, and the same cap is as short.
    lower = GateDesign("sequential", 0.5, False, 0.0, 1.0, 0.1, 0.05, 0.01 / 13, max_episodes=60)
    assert cap_reached(lower, "good") == (reached, runs)
    # A cap far beyond what the gate needs is not simulated at all.
    assert cap_reached(GateDesign("sequential", 0.5, True, 0.0, 1.0, 0.1), "good") == (0, 0)


def test_the_fewest_episodes_to_a_verdict_are_found_beyond_ten_thousand_when_the_cap_allows() -> None:
    from pytest_policyeval.gates.sequential import least_episodes

    # A pass a hair's breadth from the top of the range takes tens of thousands of perfect episodes.
    design = GateDesign("sequential", 0.9999, True, 0.0, 1.0, 5e-5, max_episodes=100_000)
    to_pass, to_fail = least_episodes(design)
    assert to_pass is not None and 10_000 < to_pass <= 100_000 and to_fail is not None
    assert judge(design, np.ones(to_pass)).outcome == "pass"
    assert judge(design, np.ones(to_pass - 1)).outcome is None  # and no fewer


def test_what_a_cap_or_inconclusive_pass_takes_from_the_guarantee_is_said(pytester: pytest.Pytester) -> None:
    # --num-episodes 3 plays exactly 3 (as Metta did): no verdict can come in them.
    result, detail = run_certain(
        pytester, "threshold: 0.5\n        score_range: [0, 1]", "random://", "--num-episodes", "3"
    )
    assert detail["outcome"] == "inconclusive"
    result.assert_outcomes(failed=1)
    assert (
        "but not in 3 episodes: no verdict can come in them (a pass takes at least 6, a fail 8)"
        in detail["guarantee"]
    )
    result, detail = run_certain(
        pytester, "threshold: 0.5\n        score_range: [0, 1]\n        inconclusive: pass"
    )
    result.assert_outcomes(passed=1)
    assert detail["guarantee"].endswith(
        "inconclusive counts as pass here, so a policy the cap stops passes without that bound"
    )
    # A ci gate with no range to declare (an unbounded return) says its bound is only approximate.
    from pytest_policyeval.gates.decide import gate_for
    from pytest_policyeval.gates.guarantee import guarantee_text

    unbounded = guarantee_text(gate_for("ci"), GateDesign("ci", 0.5), paired=False)
    assert "approximate (false pass above alpha at a few episodes)" in unbounded
    assert "approximate" not in guarantee_text(gate_for("ci"), GateDesign("ci", 0.5, True, 0.0, 1.0), False)


def test_levels_are_printed_with_the_digits_they_have() -> None:
    # alpha 0.025 is a 97.5% bound, not 98%; alpha 0.001 a 99.9% one, not 100%.
    scores = np.array([0.0, 1.0] * 10)
    for alpha, bound, interval in ((0.025, "97.5%", "95%"), (0.001, "99.9%", "99.8%"), (0.05, "95%", "90%")):
        decision = judge(GateDesign("ci", 0.9, True, 0.0, 1.0, 0.1, alpha), scores)
        assert f"the one-sided {bound} bound" in decision.reason
        assert decision.interval_level == f"{interval} two-sided"
    tiny = judge(GateDesign("sequential", 0.5, True, 0.0, 1.0, 0.1, 1e-12, 0.01 / 13), scores)
    assert tiny.interval_level == "lower 0.999999999999, upper 0.9992"
