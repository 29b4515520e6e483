"""The sequential gate (gates/sequential.py) and the gate design (gates/design.py), without pytest runs.

Cross-checks against independent computations (Wald's likelihood ratio from scipy's pmfs, N* from
tabled normal quantiles), Monte Carlo checks of the promised error rates, and the boundary
properties a user relies on: one episode, zero variance, lower-is-better, out-of-range scores,
the interval agreeing with the verdict, verdicts not depending on later episodes, paired gates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import bernoulli, binom

from pytest_policyeval.gates import sequential
from pytest_policyeval.gates.design import GateDesign, RangeError, default_margin, fixed_n, paired
from pytest_policyeval.gates.sequential import decide

TAU, DELTA = 0.5, 0.1
P0, P1 = TAU - DELTA, TAU + DELTA
UNIT = GateDesign("sequential", TAU, True, 0.0, 1.0, DELTA)
LASER = GateDesign("sequential", 5.0, True, 0.0, 20.0, 2.0)  # counts: range 20, margin 10% of it
ODD = GateDesign("sequential", 1.3, True, -3.0, 7.0, 0.7)  # a range and threshold with no exact floats
DESIGNS = [UNIT, LASER, ODD]


def _mirror(design: GateDesign) -> GateDesign:
    """The same gate stated for negated scores: lower is better, range and threshold negated."""
    assert design.low is not None and design.high is not None
    return GateDesign(
        design.kind, -design.threshold, not design.higher_is_better, -design.high, -design.low,
        design.margin, design.alpha, design.beta, design.max_episodes, design.min_episodes,
        design.cap_factor,
    )  # fmt: skip


def _scores(rng: np.random.Generator, design: GateDesign, kind: str, position: float, n: int) -> np.ndarray:
    """n scores in the design's range whose mean is threshold + position * margin."""
    assert design.low is not None and design.high is not None
    width = design.high - design.low
    mu = min(max((design.threshold + position * design.margin - design.low) / width, 0.02), 0.98)
    z = (rng.random(n) < mu).astype(np.float64) if kind == "bernoulli" else rng.beta(2 * mu, 2 * (1 - mu), n)
    return design.low + z * width


# --- Cross-check: Wald's SPRT for 0/1 scores ---------------------------------------------------


def _betting_log_wealth(x: np.ndarray, lam: float, m: float) -> np.ndarray:
    """An independent bettor: log of prod (1 + lam (x - m)) after each episode."""
    return np.cumsum(np.log1p(lam * (x - m)))


def test_betting_wealth_at_the_sprt_bet_is_walds_likelihood_ratio() -> None:
    rng = np.random.default_rng(1)
    x = (rng.random(300) < 0.55).astype(np.float64)
    k, n = np.cumsum(x), np.arange(1, x.size + 1)
    sprt_pass = np.cumsum(bernoulli.logpmf(x, P1) - bernoulli.logpmf(x, P0))  # evidence for p1 over p0
    np.testing.assert_allclose(sprt_pass, binom.logpmf(k, n, P1) - binom.logpmf(k, n, P0), atol=1e-9)

    lam_pass = (P1 - P0) / (P0 * (1 - P0))
    np.testing.assert_allclose(_betting_log_wealth(x, lam_pass, P0), sprt_pass, rtol=1e-12, atol=1e-12)
    # The module's own wealth arithmetic, with its bets fixed at the SPRT value (below its cap).
    assert lam_pass < sequential.BET_CAP / P0
    module_pass = sequential._log_wealth_up(x, np.full(x.size, lam_pass), P0, P0)
    np.testing.assert_allclose(module_pass, sprt_pass, rtol=1e-12, atol=1e-12)

    # The fail bettor bets against p1 in favour of p0: 1 - lam (x - p1) is L(p0) / L(p1).
    lam_fail = (P1 - P0) / (P1 * (1 - P1))
    assert lam_fail < sequential.BET_CAP / (1 - P1)
    module_fail = sequential._log_wealth_down(x, np.full(x.size, lam_fail), P1, P1)
    np.testing.assert_allclose(module_fail, -sprt_pass, rtol=1e-12, atol=1e-12)


def test_each_bet_is_fixed_before_its_episode() -> None:
    """What makes the wealth a supermartingale, read off decide()'s evidence alone: after the same
    earlier episodes, the wealth moves by a factor 1 + lam (x - m0) (pass) and 1 - lam' (x - m1)
    (fail) whatever the new score x is, with lam, lam' >= 0 fixed beforehand and small enough that
    no score in the range loses more than BET_CAP of the wealth."""
    rng = np.random.default_rng(2)
    for i in range(30):
        design = DESIGNS[i % len(DESIGNS)]
        assert design.low is not None and design.high is not None
        width = design.high - design.low
        m0 = (design.threshold - design.margin - design.low) / width
        m1 = (design.threshold + design.margin - design.low) / width
        before = _scores(rng, design, "beta", rng.uniform(-0.5, 0.5), int(rng.integers(0, 6)))
        start = decide(design, before)
        assert start.outcome is None
        slopes_pass, slopes_fail = [], []
        for z in (0.0, 0.1, 0.3, 0.7, 0.95, 1.0):
            d = decide(design, np.append(before, design.low + z * width))
            assert d.episodes == before.size + 1
            slopes_pass.append((d.evidence_pass / start.evidence_pass - 1) / (z - m0))
            slopes_fail.append((1 - d.evidence_fail / start.evidence_fail) / (z - m1))
        for slopes, largest in ((slopes_pass, m0), (slopes_fail, 1 - m1)):
            np.testing.assert_allclose(slopes, slopes[0], rtol=1e-9)
            assert 0 <= slopes[0] <= sequential.BET_CAP / largest * (1 + 1e-9)


def test_sprt_bet_differs_from_any_other_bet() -> None:
    """The identity pins the bet: a bet 10% off the SPRT value no longer gives the likelihood ratio."""
    x = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    sprt = np.cumsum(bernoulli.logpmf(x, P1) - bernoulli.logpmf(x, P0))
    lam = (P1 - P0) / (P0 * (1 - P0))
    assert not np.allclose(_betting_log_wealth(x, 1.1 * lam, P0), sprt)
    assert not np.allclose(sequential._log_wealth_up(x, np.full(x.size, 0.9 * lam), P0, P0), sprt)


# --- Monte Carlo: the promised error rates ------------------------------------------------------

DECISIONS = 400


def _outcomes(design: GateDesign, kind: str, position: float, seed: int) -> list[str | None]:
    rng = np.random.default_rng(seed)
    return [decide(design, _scores(rng, design, kind, position, 1000)).outcome for _ in range(DECISIONS)]


def _bound(rate: float) -> float:
    """rate + 3 binomial standard errors over DECISIONS decisions."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / DECISIONS)


@pytest.mark.parametrize("kind", ["bernoulli", "beta"])
def test_error_rates_a_margin_either_side_of_the_threshold(kind: str) -> None:
    """Peeking after every episode, as decide() does: false pass <= alpha at threshold - margin and
    false fail <= beta at threshold + margin (within 3 standard errors), and the right verdict
    mostly comes there (design.py promises 1 - alpha and 1 - beta)."""
    below = _outcomes(UNIT, kind, -1.0, seed=10)
    above = _outcomes(UNIT, kind, +1.0, seed=11)
    false_pass, false_fail = below.count("pass") / DECISIONS, above.count("fail") / DECISIONS
    assert false_pass <= _bound(UNIT.alpha), false_pass
    assert false_fail <= _bound(UNIT.beta), false_fail
    assert below.count("fail") / DECISIONS >= 0.85
    assert above.count("pass") / DECISIONS >= 0.95


def test_two_margins_away_the_right_verdict_comes_almost_always() -> None:
    below = _outcomes(UNIT, "bernoulli", -2.0, seed=12)
    above = _outcomes(UNIT, "bernoulli", +2.0, seed=13)
    assert below.count("fail") / DECISIONS >= 0.97
    assert above.count("pass") / DECISIONS >= 0.97


# --- N* -----------------------------------------------------------------------------------------


def test_fixed_n_known_value_from_tabled_quantiles() -> None:
    z95, z99 = 1.6448536269514722, 2.3263478740408408  # z_{0.95}, z_{0.99}
    by_hand = ((z95 + z99) * 0.5 / (2 * 0.1)) ** 2  # 98.565...
    assert 98 < by_hand < 99
    assert fixed_n(sigma=0.5, margin=0.1, alpha=0.05, beta=0.01) == math.ceil(by_hand) == 99
    assert fixed_n(0.5 / 3**0.5, 0.1, 0.05, 0.01) == 33  # Beta(1, 1) at the threshold
    assert fixed_n(0.5, 0.1, 0.05, 0.05) == math.ceil((2 * z95 * 0.5 / 0.2) ** 2) == 68
    assert fixed_n(0.5, UNIT.margin, UNIT.alpha, UNIT.beta) == 99


def test_fixed_n_edges() -> None:
    assert fixed_n(0.5, 0.0, 0.05, 0.01) == 10**9  # no finite test separates a zero margin
    assert fixed_n(0.5, -0.1, 0.05, 0.01) == 10**9
    assert fixed_n(0.0, 0.0, 0.05, 0.01) == 0  # nothing to separate and no noise
    assert fixed_n(0.0, 0.1, 0.05, 0.01) == 1  # no noise: one episode
    assert fixed_n(1e-6, 0.1, 0.05, 0.01) == 1
    assert fixed_n(0.6, 0.1, 0.05, 0.01) > fixed_n(0.5, 0.1, 0.05, 0.01) > fixed_n(0.5, 0.1, 0.1, 0.01)


def test_design_helpers() -> None:
    assert default_margin(0.0, 20.0, 0.1) == 2.0
    assert default_margin(None, 1.0, 0.1) is None
    lower = _mirror(UNIT)
    assert lower.oriented() == UNIT
    assert UNIT.oriented() is UNIT
    assert (LASER.width, LASER.bounded) == (20.0, True)
    assert math.isnan(GateDesign("sequential", 0.5).width)
    p = paired(LASER)
    assert (p.threshold, p.low, p.high, p.margin, p.higher_is_better) == (-2.0, -20.0, 20.0, 2.0, True)
    assert (p.alpha, p.beta, p.max_episodes, p.min_episodes, p.cap_factor) == (0.05, 0.01, 1000, 10, None)


# --- Boundaries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("design", DESIGNS, ids=["unit", "laser", "odd"])
@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])
def test_one_episode_is_undecided_with_a_finite_interval_inside_the_range(
    design: GateDesign, where: float
) -> None:
    assert design.low is not None and design.high is not None
    score = design.low + where * (design.high - design.low)
    d = decide(design, [score])
    assert d.outcome is None
    assert d.episodes == 1
    assert d.estimate == pytest.approx(score)
    values = [d.estimate, d.low, d.high, d.evidence_pass, d.evidence_fail]
    assert all(v is not None and math.isfinite(v) for v in values)
    assert design.low <= d.low <= d.high <= design.high


def test_no_episodes_is_undecided() -> None:
    d = decide(UNIT, [])
    assert (d.outcome, d.episodes) == (None, 0)


def _constant(design: GateDesign, position: float) -> float:
    assert design.low is not None and design.high is not None
    return min(max(design.threshold + position * design.margin, design.low), design.high)


def _zero_variance(design: GateDesign, value: float, lower_is_better: bool) -> tuple[GateDesign, str | None]:
    """Decide on 1000 equal scores; check nothing is NaN; the design as used and the outcome."""
    scores = np.full(1000, value)
    if lower_is_better:
        design, scores = _mirror(design), -scores
    d = decide(design, scores, trace=True)
    values = [d.estimate, d.low, d.high, d.evidence_pass, d.evidence_fail]
    assert all(v is not None and math.isfinite(v) for v in values), d
    assert all(math.isfinite(v) for series in d.trace.values() for v in series)
    assert d.estimate == pytest.approx(scores[0])
    if d.outcome == "inconclusive":
        assert design.min_episodes <= d.episodes < design.max_episodes
    return design, d.outcome


@pytest.mark.parametrize("design", DESIGNS, ids=["unit", "laser", "odd"])
@pytest.mark.parametrize("lower_is_better", [False, True], ids=["higher", "lower"])
def test_zero_variance_decides_without_nan(design: GateDesign, lower_is_better: bool) -> None:
    """A deterministic policy in a deterministic task: every score equal."""
    outcomes = {
        p: _zero_variance(design, _constant(design, p), lower_is_better)[1] for p in (-5, -3, 1, 2, 5)
    }
    assert outcomes == {-5: "fail", -3: "fail", 1: "pass", 2: "pass", 5: "pass"}
    # Exactly at the threshold "inconclusive" (after min_episodes) and "pass" both keep the promise
    # (the mean is a margin above threshold - margin); sequential.py says inconclusive today because
    # its variance cap fires before the pass bettor reaches 1/alpha.
    assert _zero_variance(design, design.threshold, lower_is_better)[1] in ("inconclusive", "pass")


# Constant scores that sequential.py stops "inconclusive" although they are a margin or more on the
# bad side (its variance cap fires first): exactly threshold - margin, and on the laser range (sd
# far below the range) two margins too.
@pytest.mark.parametrize(
    ("design", "position"),
    [
        pytest.param(UNIT, -1.0, id="unit-1margin"),
        pytest.param(UNIT, -2.0, id="unit-2margins"),
        pytest.param(LASER, -1.0, id="laser-1margin"),
        pytest.param(LASER, -2.0, id="laser-2margins"),
        pytest.param(ODD, -1.0, id="odd-1margin"),
        pytest.param(ODD, -2.0, id="odd-2margins"),
    ],
)
@pytest.mark.parametrize("lower_is_better", [False, True], ids=["higher", "lower"])
def test_zero_variance_a_margin_or_two_below_fails(
    design: GateDesign, position: float, lower_is_better: bool
) -> None:
    assert _zero_variance(design, _constant(design, position), lower_is_better)[1] == "fail"


def test_no_inconclusive_before_min_episodes() -> None:
    """A constant exactly at the threshold is inside the margin: passing it is allowed, stopping it
    undecided is too, but never before min_episodes."""
    for min_episodes in (10, 15, 40):
        design = GateDesign("sequential", TAU, True, 0.0, 1.0, DELTA, min_episodes=min_episodes)
        d = decide(design, np.full(1000, TAU))
        assert d.outcome in ("pass", "inconclusive")
        if d.outcome == "inconclusive":
            assert d.episodes >= min_episodes
    design = GateDesign("sequential", TAU, True, 0.0, 1.0, DELTA, min_episodes=40, cap_factor=0.1)
    d = decide(design, np.tile([0.0, 1.0], 500))
    assert d.outcome == "inconclusive" and d.episodes == 40


def test_episode_cap_ends_a_task_inconclusive() -> None:
    design = GateDesign("sequential", TAU, True, 0.0, 1.0, DELTA, max_episodes=30, cap_factor=1e9)
    scores = np.tile([0.0, 1.0], 500)  # mean exactly at the threshold, the largest variance
    d = decide(design, scores)
    assert (d.outcome, d.episodes) == ("inconclusive", 30)
    assert "cap of 30 episodes" in d.reason


def test_lower_is_better_mirrors_higher_is_better() -> None:
    rng = np.random.default_rng(3)
    seen = set()
    for i in range(120):
        design = DESIGNS[i % len(DESIGNS)]
        kind = "bernoulli" if i % 2 else "beta"
        x = _scores(rng, design, kind, rng.uniform(-3, 3), int(rng.integers(1, 400)))
        high = decide(design, x)
        low = decide(_mirror(design), -x)
        seen.add(high.outcome)
        assert (low.outcome, low.episodes) == (high.outcome, high.episodes)
        assert low.estimate == pytest.approx(-high.estimate)
        assert (low.low, low.high) == pytest.approx((-high.high, -high.low))
        assert (low.evidence_pass, low.evidence_fail) == pytest.approx(
            (high.evidence_pass, high.evidence_fail)
        )
    assert {"pass", "fail", None} <= seen  # the sample covers every kind of decision


@pytest.mark.parametrize(("index", "bad"), [(7, 1.5), (0, -0.25), (3, math.nan), (12, math.inf)])
def test_score_outside_the_range_raises_naming_the_episode(index: int, bad: float) -> None:
    scores = np.full(20, 0.5)
    scores[index] = bad
    # A finite score names the range it left; a NaN or infinite one says it is not a number.
    expected = (
        rf"episode {index}\b.*\[0, 1\]"
        if math.isfinite(bad)
        else rf"episode {index}: score is {bad}, not a finite"
    )
    with pytest.raises(RangeError, match=expected):
        decide(UNIT, scores)


def test_range_error_for_lower_is_better_speaks_in_the_users_units() -> None:
    design = GateDesign("sequential", 0.5, False, 0.0, 1.0, 0.1)
    with pytest.raises(RangeError) as raised:
        decide(design, [0.2, 0.3, 1.5])
    message = str(raised.value)
    assert "episode 2: score 1.5 is outside" in message and "[0, 1]" in message, message


def test_interval_agrees_with_the_decision() -> None:
    """pass => the lower end clears threshold - margin; fail => the upper end is below threshold + margin,
    strictly: the interval shown never touches the edge its gate rejected."""
    rng = np.random.default_rng(4)
    seen = set()
    for i in range(240):
        design = DESIGNS[i % len(DESIGNS)]
        if i % 4 == 3:
            design = _mirror(design)
        oriented = design.oriented()
        kind = "bernoulli" if (i // 3) % 2 else "beta"
        x = _scores(rng, oriented, kind, rng.uniform(-3, 3), int(rng.integers(1, 300)))
        if not design.higher_is_better:
            x = -x
        d = decide(design, x)
        seen.add(d.outcome)
        assert design.low is not None and design.high is not None
        assert design.low <= d.low <= d.high <= design.high
        good, bad = (d.low, d.high) if design.higher_is_better else (-d.high, -d.low)
        if d.outcome == "pass":
            assert good > oriented.threshold - oriented.margin, (design, d)
        if d.outcome == "fail":
            assert bad < oriented.threshold + oriented.margin, (design, d)
    assert {"pass", "fail"} <= seen


@pytest.mark.parametrize("mu", [0.3, 0.45, 0.55, 0.75])
def test_the_reported_interval_covers_the_true_mean_at_its_levels(mu: float) -> None:
    """The ends found between grid points stay on the rejected side: the mean lies below the lower
    end in at most alpha of runs and above the upper end in at most beta (plus simulation error)."""
    rng = np.random.default_rng(int(mu * 100))
    runs = 400
    above = below = 0
    for _ in range(runs):
        d = decide(UNIT, rng.beta(2 * mu, 2 * (1 - mu), 400))
        above += d.low > mu
        below += d.high < mu
    assert above / runs <= UNIT.alpha + 3 * math.sqrt(UNIT.alpha * (1 - UNIT.alpha) / runs)
    assert below / runs <= UNIT.beta + 3 * math.sqrt(UNIT.beta * (1 - UNIT.beta) / runs)


def test_decision_ignores_episodes_after_it() -> None:
    rng = np.random.default_rng(5)
    seen = set()
    for i in range(60):
        design = DESIGNS[i % len(DESIGNS)]
        x = _scores(rng, design, "bernoulli" if i % 2 else "beta", rng.uniform(-2.5, 2.5), 1000)
        d = decide(design, x)
        n = d.episodes
        seen.add(d.outcome)
        assert d.outcome is not None  # 1000 episodes reach the cap at the latest
        if n > 1:
            assert decide(design, x[: n - 1]).outcome is None  # it stopped at the first chance
        later = _scores(rng, design, "bernoulli", rng.uniform(-3, 3), x.size - n)
        for other in (x[:n], x[: n + 1], x[: n + 17], np.concatenate((x[:n], later))):
            e = decide(design, other)
            assert (e.outcome, e.episodes, e.estimate, e.low, e.high) == (
                d.outcome,
                n,
                d.estimate,
                d.low,
                d.high,
            )
            assert (e.evidence_pass, e.evidence_fail) == (d.evidence_pass, d.evidence_fail)
    assert {"pass", "fail"} <= seen


def test_paired_identical_candidate_and_baseline_passes_and_a_clearly_worse_one_fails() -> None:
    rng = np.random.default_rng(6)
    for design in DESIGNS:
        assert design.low is not None and design.high is not None
        baseline = rng.uniform(design.low, design.high, 1000)
        d = decide(paired(design), baseline - baseline)
        assert d.outcome == "pass", d.reason
        assert d.estimate == 0.0
    u = rng.random(1000)  # the same seeds: candidate 0.3 and baseline 0.6 success, coupled
    candidate, baseline = (u < 0.3).astype(float), (u < 0.6).astype(float)
    d = decide(paired(UNIT), candidate - baseline)
    assert d.outcome == "fail", d.reason


def test_paired_two_margins_worse_every_seed_fails() -> None:
    """design.py: one two margins worse than the baseline fails with probability >= 1 - alpha."""
    d = decide(paired(UNIT), np.full(1000, -2 * DELTA))
    assert d.outcome == "fail", d.reason


def test_reasons_name_what_was_judged_the_mean_or_the_difference_to_the_baseline() -> None:
    worse = decide(paired(UNIT), np.full(1000, -2 * DELTA))
    assert "the mean per-seed difference to the baseline is below 0 " in worse.reason, worse.reason
    same = decide(paired(LASER.oriented()), np.zeros(1000))
    assert "the mean per-seed difference to the baseline is above -4 " in same.reason, same.reason
    alone = decide(UNIT, np.ones(1000))
    assert "that the mean is above 0.4 " in alone.reason, alone.reason
    # Lower-is-better keeps the words through orientation (paired designs are already oriented).
    worded = GateDesign("sequential", 0.5, False, 0.0, 1.0, 0.1, subject="the mean difference")
    assert worded.oriented().subject == "the mean difference"
    decided = decide(worded, np.zeros(1000))
    assert decided.outcome == "pass" and "that the mean difference is below 0.6 " in decided.reason
