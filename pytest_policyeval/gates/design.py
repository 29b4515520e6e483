"""What a gate promises, in numbers a user can read and a simulation can check.

A policy whose true mean lies a margin `delta` on the good side of the threshold passes with
probability at least 1 - beta; one a margin on the bad side fails with probability at least
1 - alpha. Between the two either verdict is acceptable, and a sequential gate may stop at its
episode cap without deciding: "inconclusive". The guarantees rest on the declared score range:
every per-episode score must lie in [low, high].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

GateKind = str  # a registered gate's name (gates/base.py): "sequential", "mean", "ci" built in
Outcome = Literal["pass", "fail", "inconclusive"]

# Each gate kind as people should read it; "mean" is Metta's rule and promises nothing.
GUARANTEES: dict[str, str] = {
    "sequential": "anytime-valid: false pass <= alpha at threshold - margin, "
    "false fail <= beta at threshold + margin",
    # The same gate where lower is better: its bad side lies above the threshold.
    "sequential, lower is better": "anytime-valid: false pass <= alpha at threshold + margin, "
    "false fail <= beta at threshold - margin",
    "ci": "fixed episodes: the one-sided (1 - alpha) bound must clear the threshold; "
    "false fail not controlled",
    # No declared range: the bound is the BCa bootstrap's, right only as episodes grow.
    "ci, no range": "fixed episodes: the one-sided (1 - alpha) BCa bootstrap bound must clear the "
    "threshold; with no declared range it is approximate (false pass above alpha at a few "
    "episodes); false fail not controlled",
    "mean": "no error guarantee: the sample mean against the threshold (Metta's rule)",
    "paired": "anytime-valid on per-seed differences: false pass <= alpha at 2 margins worse than the "
    "baseline, false fail <= beta when as good as the baseline",
}


@dataclass(frozen=True)
class GateDesign:
    """One task's gate. `low`/`high` bound every per-episode score (None: no declared range)."""

    kind: GateKind
    threshold: float | None  # None: not gated, the scores are only described
    higher_is_better: bool = True
    low: float | None = None
    high: float | None = None
    margin: float = 0.0  # delta, in score units
    alpha: float = 0.05  # false-pass rate at threshold - margin (the bad side)
    beta: float = 0.01  # false-fail rate at threshold + margin (the good side)
    max_episodes: int = 1000  # the cap of a sequential gate
    min_episodes: int = 10  # a sequential gate never calls a task inconclusive before this
    # Optional (None: off): also stop inconclusive once a sequential gate has run this many times
    # the episodes a fixed-N test would need at the variance seen so far. It saves episodes when the
    # mean sits inside the margin, but it also stops some policies a margin away, which then count
    # against the promised error rates (bench_gates.py --cap-factor measures it): off by default.
    cap_factor: float | None = None
    subject: str = "the mean"  # what the reasons speak of: a paired gate's is the mean difference

    @property
    def bounded(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def width(self) -> float:
        if self.low is None or self.high is None:
            return math.nan
        return self.high - self.low

    def oriented(self) -> GateDesign:
        """The same gate with scores negated where lower is better, so that higher always wins."""
        if self.higher_is_better:
            return self
        low = None if self.high is None else -self.high
        high = None if self.low is None else -self.low
        return GateDesign(
            self.kind, -self.threshold, True, low, high, self.margin, self.alpha, self.beta,
            self.max_episodes, self.min_episodes, self.cap_factor, self.subject,
        )  # fmt: skip


def fixed_n(sigma: float, margin: float, alpha: float, beta: float) -> int:
    """N*: the episodes a one-sided fixed-N test needs to tell threshold - margin from threshold +
    margin with false pass alpha and false fail beta, for scores with standard deviation sigma."""
    from statistics import NormalDist  # scipy.stats would cost a run a second to import

    if margin <= 0:
        return 0 if sigma == 0 else 10**9
    z = -NormalDist().inv_cdf(alpha) - NormalDist().inv_cdf(beta)  # 1 - beta rounds to 1 for tiny beta
    return max(1, math.ceil((z * sigma / (2 * margin)) ** 2))


class RangeError(ValueError):
    """A score outside the declared range: the guarantee does not hold, so nothing is decided."""


def first_outside(design: GateDesign, scores: object) -> int | None:
    """The index of the first score outside the declared range (or not finite); None if none is,
    or if no range is declared."""
    import numpy as np

    raw = np.asarray(scores, dtype=np.float64)
    if not design.bounded:
        bad = np.flatnonzero(~np.isfinite(raw))
    else:
        bad = np.flatnonzero((raw < design.low) | (raw > design.high) | ~np.isfinite(raw))
    return int(bad[0]) if bad.size else None


def range_error(design: GateDesign, index: int, value: float, whose: str = "") -> RangeError:
    """The error for episode `index` scoring `value` (`whose`: "the baseline's " and the like)."""
    if not math.isfinite(value):
        return RangeError(
            f"episode {index}: {whose}score is {value:g}, not a finite number "
            "(the environment returned a NaN or infinite reward, or rewards whose sum overflows)"
        )
    return RangeError(
        f"episode {index}: {whose}score {value:g} is outside the declared score range "
        f"[{design.low:g}, {design.high:g}]: the gate's guarantee rests on that range "
        "(declare a wider score_range)"
    )


def default_margin(low: float | None, high: float | None, fraction: float) -> float | None:
    """The suite default: a fraction of the declared range (None without a range)."""
    if low is None or high is None:
        return None
    return fraction * (high - low)


PAIRED_SUBJECT = "the mean per-seed difference to the baseline"


def paired(design: GateDesign) -> GateDesign:
    """The gate on per-seed differences (candidate - baseline) that a baseline comparison uses.

    "Not worse than the baseline by more than the margin": the threshold on the mean difference is
    -margin, so a candidate as good as the baseline (difference 0, one margin on the good side)
    passes with probability >= 1 - beta, and one two margins worse fails with probability
    >= 1 - alpha. Differences of scores in [low, high] lie in [-(high - low), high - low].
    """
    width = design.width if design.bounded else None
    # Orient first: for lower-is-better scores "worse" is a larger score, so the difference is
    # taken on the negated scores and the paired gate is always higher-is-better.
    return GateDesign(
        design.kind, -design.margin, True, None if width is None else -width, width, design.margin,
        design.alpha, design.beta,
        design.max_episodes, design.min_episodes, design.cap_factor, PAIRED_SUBJECT,
    )  # fmt: skip


def differences(candidate: list[float], baseline: list[float], higher_is_better: bool) -> list[float]:
    """Per-seed differences a paired gate judges, oriented so that better than the baseline is > 0."""
    sign = 1.0 if higher_is_better else -1.0
    return [sign * (c - b) for c, b in zip(candidate, baseline, strict=True)]


def percent(level: float) -> str:
    """A confidence level in percent with the digits it has: 95%, 97.5%, 99.9999999999%, never
    rounded to a whole that overstates it (99.9% is not 100%)."""
    value = round(level * 100, 10)
    for digits in range(3, 13):
        text = f"{value:.{digits}g}"
        if float(text) == value:
            break
    return f"{text}%"


def fraction(level: float) -> str:
    """A level as a fraction, to 4 significant digits unless that would round it up to 1: 0.95,
    0.9992, 0.999999999999."""
    for digits in range(4, 13):
        text = f"{level:.{digits}g}"
        if float(text) < 1 or level >= 1:
            return text
    return text
