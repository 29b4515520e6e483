"""An anytime-valid sequential gate: two betting e-processes over a task's per-episode scores.

Scores are rescaled to [0, 1] by the declared range. To pass, the gate must reject "the mean is at
most threshold - margin" at level alpha; to fail, "the mean is at least threshold + margin" at
level beta. Each is a bettor's wealth that starts at 1 and is multiplied every episode by
1 + lambda * (score - m) (or 1 - lambda * (score - m)), with the bet lambda chosen from earlier
episodes only. Under its hypothesis the wealth is a nonnegative supermartingale, so by Ville's
inequality it ever reaches 1/alpha with probability at most alpha: the gate may look after every
episode and stop whenever it likes (Waudby-Smith & Ramdas, "Estimating means of bounded random
variables by betting", JRSS-B 2024). For 0/1 scores with the bet at its design value the wealth is
Wald's likelihood ratio for p0 = threshold - margin against p1 = threshold + margin.

Bets are sized for the design effect (two margins) and the running variance, and grow with the
running mean's distance from the hypothesis, so a policy far from its threshold decides in a few
episodes. The episode cap ends a task whose mean sits inside the margin: "inconclusive".

The decision is made episode by episode in the order of episode indices, so it does not depend on
how episodes were grouped into rounds, processes or shards.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from pytest_policyeval.gates.design import GateDesign, Outcome, first_outside, fixed_n, fraction, range_error

BET_CAP = 0.75  # a bet never risks more than three quarters of the wealth on one episode
GRID = 257  # points on which the confidence sequence is evaluated


@dataclass
class Decision:
    """Where a sequential gate stands after the episodes it has seen (scores in original units)."""

    outcome: Outcome | None  # None: undecided, more episodes are needed
    episodes: int  # episodes the decision rests on (the ones after it are not used)
    estimate: float
    low: float  # anytime-valid interval: lower end at level 1 - alpha, upper at 1 - beta
    high: float
    evidence_pass: float | None  # the bettors' final wealth (e-values); 1/alpha and 1/beta decide
    evidence_fail: float | None
    reason: str
    trace: dict[str, list[float]] = field(default_factory=dict)  # per episode, for the report's plot
    interval_method: str = "betting confidence sequence (anytime-valid)"
    interval_level: str = ""  # e.g. "lower 95%, upper 99%"


def _normalised(design: GateDesign, scores: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Scores on [0, 1] by the (oriented) range, and the hypotheses and margin in those units."""
    low, high = design.low, design.high
    assert low is not None and high is not None and high > low
    width = high - low
    z = np.clip((scores - low) / width, 0.0, 1.0)  # only rounding can leave [0, 1] here
    m0 = min(max((design.threshold - design.margin - low) / width, 0.0), 1.0)
    m1 = min(max((design.threshold + design.margin - low) / width, 0.0), 1.0)
    return z, m0, m1, design.margin / width


def _running(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running mean and variance after 0, 1, ..., n episodes, shrunk toward 1/2 and 1/4 (along
    the last axis: rows of a simulation are paths of their own)."""
    t = np.arange(1, z.shape[-1] + 1)
    mean = (0.5 + np.cumsum(z, axis=-1)) / (t + 1)
    var = (0.25 + np.cumsum((z - mean) ** 2, axis=-1)) / (t + 1)
    start = (*z.shape[:-1], 1)
    return (
        np.concatenate((np.full(start, 0.5), mean), axis=-1),
        np.concatenate((np.full(start, 0.25), var), axis=-1),
    )


def _bets(z: np.ndarray, m0: float, m1: float, d: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw bets for the pass and fail bettors, and the variance after each episode."""
    mean, var = _running(z)
    before_mean, before_var = mean[..., :-1], var[..., :-1]  # a bet uses only the episodes before it
    effect_up = np.maximum(2 * d, before_mean - m0)
    effect_down = np.maximum(2 * d, m1 - before_mean)
    up = effect_up / (before_var + effect_up**2)
    down = effect_down / (before_var + effect_down**2)
    return up, down, var[..., 1:]


def _log_wealth_up(z: np.ndarray, bets: np.ndarray, m: float, m0: float) -> np.ndarray:
    lam = np.minimum(bets, BET_CAP / max(m, m0, 1e-12))
    return np.cumsum(np.log1p(lam * (z - m)), axis=-1)


def _log_wealth_down(z: np.ndarray, bets: np.ndarray, m: float, m1: float) -> np.ndarray:
    lam = np.minimum(bets, BET_CAP / max(1 - min(m, m1), 1e-12))
    return np.cumsum(np.log1p(-lam * (z - m)), axis=-1)


def decide(design: GateDesign, scores: np.ndarray | list[float], trace: bool = False) -> Decision:
    """The sequential gate's decision on `scores` (in episode-index order), or None if undecided.

    `design` must be bounded; scores are in original units, lower-is-better handled here. A score
    outside the declared range is an error unless the gate decided before reaching it (so where
    rounds end never changes whether a run errs).
    """
    raw = np.asarray(scores, dtype=np.float64)
    first = first_outside(design, raw)
    if first is not None:
        if first > 0:
            head = decide(design, raw[:first], trace)
            if head.outcome is not None:
                return head
        raise range_error(design, first, float(raw[first]))
    oriented = design.oriented()
    sign = 1.0 if design.higher_is_better else -1.0
    z, m0, m1, d = _normalised(oriented, sign * raw)
    if z.size == 0:
        return _empty(design)
    up, down, var_after = _bets(z, m0, m1, d)
    log_pass = _log_wealth_up(z, up, m0, m0)
    log_fail = _log_wealth_down(z, down, m1, m1)
    t = np.arange(1, z.size + 1)
    passed = np.flatnonzero(log_pass >= math.log(1 / oriented.alpha))
    failed = np.flatnonzero(log_fail >= math.log(1 / oriented.beta))
    stop = t >= oriented.max_episodes
    if oriented.cap_factor is not None and d > 0:
        n_star = (_z(oriented.alpha, oriented.beta) * np.sqrt(var_after) / (2 * d)) ** 2
        # However small the variance, a bettor cannot win faster than its largest bet allows.
        floor = oriented.cap_factor * _fastest(m0, m1, d, oriented.alpha, oriented.beta)
        stop |= (t >= oriented.min_episodes) & (t >= floor) & (t >= oriented.cap_factor * n_star)
    capped = np.flatnonzero(stop)
    stops = {
        "fail": int(failed[0]) if failed.size else z.size,
        "pass": int(passed[0]) if passed.size else z.size,
        "inconclusive": int(capped[0]) if capped.size else z.size,
    }
    # A tie goes to fail, then pass: a cap reached on the episode that decides does not hide it.
    outcome, at = min(stops.items(), key=lambda item: item[1])
    if at >= z.size:
        outcome, at = None, z.size - 1
    n = at + 1
    points = _checkpoints(n) if trace else np.array([n])
    lows, highs = _interval(z[:n], up[:n], down[:n], m0, m1, oriented, points)
    width, base = oriented.high - oriented.low, oriented.low  # type: ignore[operator]
    lows, highs = base + lows * width, base + highs * width
    if sign < 0:
        lows, highs = -highs, -lows
    low, high = lows[-1] + 0.0, highs[-1] + 0.0  # no -0.0
    reason = _reason(outcome, n, design, float(np.exp(log_pass[at])), float(np.exp(log_fail[at])))
    result = Decision(
        outcome=outcome,  # type: ignore[arg-type]
        episodes=n,
        estimate=float(np.mean(raw[:n])),
        low=float(low),
        high=float(high),
        evidence_pass=float(np.exp(min(log_pass[at], 700.0))),
        evidence_fail=float(np.exp(min(log_fail[at], 700.0))),
        reason=reason,
        interval_level=f"lower {fraction(1 - oriented.alpha)}, upper {fraction(1 - oriented.beta)}"
        if design.higher_is_better
        else f"lower {fraction(1 - oriented.beta)}, upper {fraction(1 - oriented.alpha)}",
    )
    if trace:
        estimate = np.cumsum(raw[:n]) / np.arange(1, n + 1)
        result.trace = {
            "episode": points.tolist(),
            "estimate": (estimate[points - 1] + 0.0).tolist(),
            "low": (lows + 0.0).tolist(),
            "high": (highs + 0.0).tolist(),
        }
    return result


def fixed_n_interval(z: np.ndarray, alpha: float, beta: float) -> tuple[float, float]:
    """An interval for the mean of scores on [0, 1], lower end at level 1 - alpha and upper at
    1 - beta, valid for any distribution on [0, 1] at the number of scores given (fixed in advance).

    The same betting construction as the gate's, with bets tuned to that number instead of to a
    margin: Waudby-Smith & Ramdas's predictable plug-in, lambda_t = sqrt(2 log(1 / level) /
    (n sigma^2_{t-1})), capped so no episode can lose three quarters of the wealth."""
    n = z.size
    _, var = _running(z)
    before = var[:-1]  # a bet uses only the episodes before it
    up = np.sqrt(2 * math.log(1 / alpha) / (n * before))
    down = np.sqrt(2 * math.log(1 / beta) / (n * before))
    levels = GateDesign("sequential", 0.5, True, 0.0, 1.0, 0.0, alpha, beta)
    lows, highs = _interval(z, up, down, 0.0, 1.0, levels, np.array([n]))
    return float(lows[-1]), float(highs[-1])


TRACE_POINTS = 400  # a long gate's plot is drawn from this many points, spread evenly
CHUNK = 2048  # episodes per block when the interval is computed: memory stays ~ CHUNK x GRID


def _checkpoints(n: int) -> np.ndarray:
    """Episode counts (1-based, increasing, ending at n) at which the trace is recorded."""
    return np.unique(np.linspace(1, n, min(n, TRACE_POINTS)).round().astype(np.int64))


def _fastest(m0: float, m1: float, d: float, alpha: float, beta: float) -> float:
    """Episodes each bettor needs at its largest bet when every score is two margins its way."""
    up = math.log1p(min(1e6, BET_CAP / max(m0, 1e-12)) * 2 * d)
    down = math.log1p(min(1e6, BET_CAP / max(1 - m1, 1e-12)) * 2 * d)
    if up <= 0 or down <= 0:
        return math.inf
    return max(math.log(1 / alpha) / up, math.log(1 / beta) / down)


@functools.lru_cache(maxsize=256)  # asked at load, per task and again per baseline
def least_episodes(design: GateDesign) -> tuple[int | None, int | None]:
    """The fewest episodes in which the gate can pass, and fail, at all: the gate itself on every
    score at the best (worst) end of the range, the quickest way its bets grow. None: never (the
    bets cannot reach the evidence within the cap, or LEAST_HORIZON if that is longer). A cap
    below both can decide nothing."""
    horizon = max(LEAST_HORIZON, design.max_episodes)
    endless = replace(design, max_episodes=horizon, cap_factor=None)
    assert design.low is not None and design.high is not None
    best, worst = (design.high, design.low) if design.higher_is_better else (design.low, design.high)
    found = []
    for score, outcome in ((best, "pass"), (worst, "fail")):
        decision = decide(endless, np.full(horizon, score))
        found.append(decision.episodes if decision.outcome == outcome else None)
    return found[0], found[1]


LEAST_HORIZON = 10_000
CAP_RUNS = 1000  # simulated runs behind what is said of a cap
CAP_PLAINLY_ENOUGH = 10.0  # a cap this many N* (at the widest spread) is not simulated
CAP_CELLS = 2_000_000  # runs x episodes simulated at once: memory stays ~ 16 MB an array


@functools.lru_cache(maxsize=256)
def cap_reached(design: GateDesign, side: str) -> tuple[int, int]:
    """(runs that reached the cap undecided, runs simulated), for scores a margin on `side`
    ("good" or "bad") of the threshold with the widest spread the range allows: each at one of its
    ends, which is what takes a betting gate longest. A cap reached undecided turns a verdict into
    inconclusive, which counts as the suite counts it, beyond the gate's error rates.
    Deterministic (a fixed seed). (0, 0) without simulating where the cap is CAP_PLAINLY_ENOUGH
    times the fixed-N test's N* at that spread."""
    oriented = design.oriented()
    assert oriented.low is not None and oriented.high is not None
    width = oriented.high - oriented.low
    mean = oriented.threshold + (oriented.margin if side == "good" else -oriented.margin)
    share = min(max((mean - oriented.low) / width, 0.0), 1.0)  # of scores at the top of the range
    n_star = fixed_n(math.sqrt(share * (1 - share)) * width, oriented.margin, oriented.alpha, oriented.beta)
    # A variance cap (cap_factor) can stop earlier than max_episodes: simulated, always.
    if oriented.cap_factor is None and oriented.max_episodes >= CAP_PLAINLY_ENOUGH * n_star:
        return 0, 0
    rng = np.random.default_rng(0)
    cap = oriented.max_episodes
    if oriented.cap_factor is not None:  # the gate itself, run by run
        runs = CAP_RUNS // 5
        scores = np.where(rng.random((runs, cap)) < share, oriented.high, oriented.low)
        return sum(decide(oriented, row).outcome in (None, "inconclusive") for row in scores), runs
    reached = 0
    rows = max(1, CAP_CELLS // cap)
    for start in range(0, CAP_RUNS, rows):
        z = (rng.random((min(rows, CAP_RUNS - start), cap)) < share).astype(np.float64)
        reached += int(np.count_nonzero(undecided(oriented, z)))
    return reached, CAP_RUNS


def undecided(design: GateDesign, z: np.ndarray) -> np.ndarray:
    """For each row of scores on [0, 1] (already oriented and normalised), whether the gate with
    no variance cap is still undecided after all of them: `decide`'s rule, on many paths at once."""
    _, m0, m1, d = _normalised(design, np.array([design.low]))
    up, down, _ = _bets(z, m0, m1, d)
    passed = (_log_wealth_up(z, up, m0, m0) >= math.log(1 / design.alpha)).any(axis=-1)
    failed = (_log_wealth_down(z, down, m1, m1) >= math.log(1 / design.beta)).any(axis=-1)
    return ~(passed | failed)


def _z(alpha: float, beta: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha) + norm.ppf(1 - beta))


def _empty(design: GateDesign) -> Decision:
    low = math.nan if design.low is None else design.low
    high = math.nan if design.high is None else design.high
    return Decision(None, 0, math.nan, low, high, 1.0, 1.0, "no episodes yet")


def _interval(
    z: np.ndarray,
    up: np.ndarray,
    down: np.ndarray,
    m0: float,
    m1: float,
    design: GateDesign,
    points: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The anytime-valid interval after each of `points` episodes: every mean not yet rejected.

    For means below the pass bettor's hypothesis its bets are the same, so its wealth only grows
    as the mean tested falls: a pass (threshold - margin rejected) always shows a lower end above
    threshold - margin, and a fail an upper end below threshold + margin. Returns the lower and
    upper ends in [0, 1]. The wealth over the grid of means is summed in blocks of episodes, so
    memory does not grow with the number of episodes.
    """
    grid = np.unique(np.concatenate((np.linspace(0.0, 1.0, GRID), [m0, m1])))
    cap_up = BET_CAP / np.maximum(np.maximum(grid, m0), 1e-12)
    cap_down = BET_CAP / np.maximum(1 - np.minimum(grid, m1), 1e-12)
    total_up, total_down = np.zeros(grid.size), np.zeros(grid.size)
    at_up, at_down = np.empty((points.size, grid.size)), np.empty((points.size, grid.size))
    k = 0
    for start in range(0, z.size, CHUNK):
        block = slice(start, min(start + CHUNK, z.size))
        gain_up = np.log1p(np.minimum(up[block, None], cap_up) * (z[block, None] - grid))
        gain_down = np.log1p(-np.minimum(down[block, None], cap_down) * (z[block, None] - grid))
        inside = points[(points > start) & (points <= block.stop)]
        if inside.size:
            rows = inside - start - 1
            at_up[k : k + inside.size] = total_up + np.cumsum(gain_up, axis=0)[rows]
            at_down[k : k + inside.size] = total_down + np.cumsum(gain_down, axis=0)[rows]
            k += inside.size
        total_up += gain_up.sum(axis=0)
        total_down += gain_down.sum(axis=0)
    rejected_low = at_up >= math.log(1 / design.alpha)
    rejected_high = at_down >= math.log(1 / design.beta)
    # The lower end: the last mean (from 0 up) before the first one not rejected; the upper end
    # likewise from 1 down.
    first_kept = np.where(rejected_low.all(axis=1), grid.size, np.argmin(rejected_low, axis=1))
    low = np.where(first_kept > 0, grid[np.maximum(first_kept - 1, 0)], 0.0)
    last_kept = np.where(
        rejected_high.all(axis=1), -1, grid.size - 1 - np.argmin(rejected_high[:, ::-1], axis=1)
    )
    high = np.where(last_kept < grid.size - 1, grid[np.minimum(last_kept + 1, grid.size - 1)], 1.0)
    # The ends shown last are the ones reported: find them between their two grid points, so a
    # decision's interval clears the band edge it rejected instead of touching it (the edge is a
    # grid point). Each end stays on the rejected side of the boundary, so coverage is kept.
    if z.size and points[-1] == z.size:
        level_up, level_down = math.log(1 / design.alpha), math.log(1 / design.beta)
        if 0 < first_kept[-1] < grid.size:

            def rejected_up(mean: float) -> bool:
                return bool(_log_wealth_up(z, up, mean, m0)[-1] >= level_up)

            low[-1] = _boundary(rejected_up, float(grid[first_kept[-1] - 1]), float(grid[first_kept[-1]]))
        if -1 < last_kept[-1] < grid.size - 1:

            def rejected_down(mean: float) -> bool:
                return bool(_log_wealth_down(z, down, mean, m1)[-1] >= level_down)

            high[-1] = _boundary(rejected_down, float(grid[last_kept[-1] + 1]), float(grid[last_kept[-1]]))
    return low, np.maximum(high, low)


def _boundary(rejected: Callable[[float], bool], out: float, kept: float, steps: int = 48) -> float:
    """Bisection between a rejected mean and a kept one (either order); returns a rejected mean
    within (kept - out) / 2**steps of the boundary. Rejection is monotone in the mean tested."""
    for _ in range(steps):
        middle = (out + kept) / 2
        if middle in (out, kept):
            break
        if rejected(middle):
            out = middle
        else:
            kept = middle
    return out


def _reason(outcome: Outcome | None, n: int, design: GateDesign, e_pass: float, e_fail: float) -> str:
    """Why the gate stopped, in the task's own terms (`design` as declared, not oriented)."""
    up = design.higher_is_better
    bad = design.threshold - design.margin if up else design.threshold + design.margin
    good = design.threshold + design.margin if up else design.threshold - design.margin
    alpha, beta = design.alpha, design.beta
    if outcome == "pass":
        return (
            f"passed after {n} episodes: evidence {e_pass:.3g} >= 1/alpha = {1 / alpha:.4g} that "
            f"{design.subject} is {'above' if up else 'below'} {bad:.4g} "
            "(a margin on the bad side of the threshold)"
        )
    if outcome == "fail":
        return (
            f"failed after {n} episodes: evidence {e_fail:.3g} >= 1/beta = {1 / beta:.4g} that "
            f"{design.subject} is {'below' if up else 'above'} {good:.4g} "
            "(a margin on the good side of the threshold)"
        )
    if outcome == "inconclusive":
        if n >= design.max_episodes:
            return (
                f"inconclusive: reached the cap of {design.max_episodes} episodes with evidence "
                f"{e_pass:.3g} to pass and {e_fail:.3g} to fail"
            )
        return (
            f"inconclusive after {n} episodes, {design.cap_factor:g}x what a fixed-N test would need "
            "at the variance seen: "
            f"the mean is most likely within the margin of the threshold (evidence {e_pass:.3g} to pass, "
            f"{e_fail:.3g} to fail)"
        )
    return f"undecided after {n} episodes (evidence {e_pass:.3g} to pass, {e_fail:.3g} to fail)"
