"""Fixed-N intervals that stay honest at the edges: inside the score range, never NaN.

Success rates (every score at one end of the range) get Wilson's interval, which stays inside
[0, 1] where a t-interval does not. Other bounded scores get scipy's BCa bootstrap, clipped to the
range, where the interval describes. Where a gate stands on it (`any_distribution`), each end
holds at its level for any distribution on the range: Clopper-Pearson for success rates, the
betting interval for other scores (Wilson's bound passed up to 3 times its level at a few
episodes, a bootstrap bound up to 6 times). Equal scores have no spread to resample (BCa would
give NaN): they get the exact bound for that event on the declared range, valid for any
distribution there. One episode says nothing about spread: the interval is the whole range.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
EQUAL_SCORES = "exact for equal scores"
BOOTSTRAP_SEED = 0  # the same scores give the same interval on every run and machine


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float  # two-sided coverage
    method: str


BETTING = "betting (valid for any distribution on the range)"


def interval(
    scores: np.ndarray | list[float],
    low: float | None,
    high: float | None,
    level: float = 0.95,
    any_distribution: bool = False,
) -> Interval:
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        return Interval(math.nan, math.nan, level, "no episodes")
    if x.size == 1:
        return Interval(_or_nan(low), _or_nan(high), level, "one episode: the whole score range")
    if any_distribution and low is not None and high is not None:
        return _exact(x, low, high, level)
    if low is not None and high is not None and np.all((x == low) | (x == high)):
        from scipy.stats import binomtest

        successes = int(np.sum(x == high))
        ci = binomtest(successes, x.size).proportion_ci(confidence_level=level, method="wilson")
        width = high - low
        return Interval(float(low + ci.low * width), float(low + ci.high * width), level, "wilson")
    if np.all(x == x[0]):
        return _no_spread(x, low, high, level)
    return _bootstrap(x, low, high, level)


def _exact(x: np.ndarray, low: float, high: float, level: float) -> Interval:
    """An interval whose ends hold at their level for any distribution on the range: the zero-event
    bound for equal scores, Clopper-Pearson for successes and failures, betting otherwise."""
    if np.all(x == x[0]):
        return _no_spread(x, low, high, level)
    if np.all((x == low) | (x == high)):
        from scipy.stats import binomtest

        ci = binomtest(int(np.sum(x == high)), x.size).proportion_ci(confidence_level=level, method="exact")
        width = high - low
        return Interval(float(low + ci.low * width), float(low + ci.high * width), level, "clopper-pearson")
    return _betting(x, low, high, level)


def _betting(x: np.ndarray, low: float, high: float, level: float) -> Interval:
    from pytest_policyeval.gates.sequential import fixed_n_interval

    width = high - low
    side = (1 - level) / 2
    lo, hi = fixed_n_interval(np.clip((x - low) / width, 0.0, 1.0), side, side)
    return Interval(low + lo * width, low + hi * width, level, BETTING)


def _no_spread(x: np.ndarray, low: float | None, high: float | None, level: float) -> Interval:
    """Equal scores give a bootstrap nothing to resample, yet do not prove the next episode scores
    the same. If every one of n episodes scored v, a mean below v - (v - low) * p needs
    P(score < v) > p, and then n equal scores have probability below (1 - p)**n. So with
    (1 - p)**n = (1 - level) / 2 on each side, the interval is exact for any distribution on the
    range (Clopper-Pearson for zero events; the "rule of three" at 95%)."""
    value = float(x[0])
    if low is None or high is None:
        return Interval(value, value, level, "no spread (every episode scored the same; no range declared)")
    p = -math.expm1(math.log((1 - level) / 2) / x.size)  # 1 - ((1 - level) / 2) ** (1 / n), accurately
    return Interval(value - (value - low) * p, value + (high - value) * p, level, EQUAL_SCORES)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _bootstrap(x: np.ndarray, low: float | None, high: float | None, level: float) -> Interval:
    from scipy.stats import bootstrap

    method = "bca bootstrap"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples: handled by the fall-back below
        result = bootstrap(
            (x,), np.mean, confidence_level=level, n_resamples=BOOTSTRAP_RESAMPLES,
            method="BCa", random_state=np.random.default_rng(BOOTSTRAP_SEED),
        )  # fmt: skip
        lo, hi = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            method = "percentile bootstrap"
            result = bootstrap(
                (x,), np.mean, confidence_level=level, n_resamples=BOOTSTRAP_RESAMPLES,
                method="percentile", random_state=np.random.default_rng(BOOTSTRAP_SEED),
            )  # fmt: skip
            lo, hi = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if low is not None:
        lo, hi = max(lo, low), max(hi, low)
    if high is not None:
        lo, hi = min(lo, high), min(hi, high)
    return Interval(lo, hi, level, method)
