"""Across a suite's tasks: one verdict with a stated error rate, and a robust headline score.

Verdict: the suite passes when every gated task passes and fails when any fails; otherwise it is
inconclusive. With "bonferroni" multiplicity each task's gate ran at beta / K, so a policy a margin
above every threshold fails the suite with probability at most beta; a policy a margin below any
one threshold passes it with probability at most alpha (that task alone must fail).

Headline: the interquartile mean (25% trimmed mean) of task scores normalised to their declared
ranges, with a stratified bootstrap interval (each task's episodes resampled on their own), as in
Agarwal et al. 2021 ("Deep RL at the edge of the statistical precipice").
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

RESAMPLES = 1000
SEED = 0


def suite_verdict(
    outcomes: Sequence[str | None],
    passed: Sequence[bool | None],
    multiplicity: str,
    betas: Sequence[float] = (),
) -> dict[str, Any]:
    """The verdict over these tasks; `betas` are the gated tasks' own false-fail rates, whose sum
    bounds the chance that a policy a margin above every threshold fails any of them."""
    gated = [(o, p) for o, p in zip(outcomes, passed, strict=True) if o is not None]
    if not gated:
        return {"outcome": None, "gated_tasks": 0}
    if any(o == "fail" or (p is False and o != "error") for o, p in gated):
        outcome = "fail"
    elif any(o == "error" for o, _ in gated):
        outcome = "error"  # no gate failed, but a task has no verdict to stand on
    elif all(o == "pass" for o, _ in gated):
        outcome = "pass"
    elif all(p is True for _, p in gated):
        outcome = "pass"  # inconclusive tasks counted as passes by their suite's choice
    else:
        outcome = "inconclusive"
    bound = min(1.0, float(sum(betas))) if betas else None
    split = ", each beta / K" if multiplicity == "bonferroni" else ""
    guarantee = (
        f"false fail <= {bound:.3g} (the sum of the tasks' beta{split}) for a policy a margin above "
        "every threshold; false pass <= alpha for one a margin below any threshold"
        if bound is not None
        else "none: no gated task reached a verdict"
    )
    return {
        "outcome": outcome,
        "gated_tasks": len(gated),
        "passed_tasks": sum(1 for o, _ in gated if o == "pass"),
        "failed_tasks": sum(1 for o, _ in gated if o == "fail"),
        "inconclusive_tasks": sum(1 for o, _ in gated if o == "inconclusive"),
        "error_tasks": sum(1 for o, _ in gated if o == "error"),
        "multiplicity": multiplicity,
        "false_fail_bound": bound,
        "guarantee": guarantee,
    }


def _iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    from scipy.stats import trim_mean

    return trim_mean(values, 0.25, axis=axis)


def iqm_interval(normalised: Sequence[Sequence[float]], level: float = 0.95) -> dict[str, Any]:
    """IQM of task means and its stratified bootstrap interval (each task's episodes resampled on
    their own); with no spread in any task the interval is the point."""
    samples = [np.asarray(s, dtype=np.float64) for s in normalised if len(s)]
    if not samples:
        return {"iqm": None, "low": None, "high": None, "method": "no tasks"}
    point = float(_iqm(np.array([s.mean() for s in samples])))
    if all(s.size < 2 or np.all(s == s[0]) for s in samples):
        return {"iqm": point, "low": point, "high": point, "method": "no spread to resample"}
    from scipy.stats import bootstrap

    # A one-episode task has nothing to resample: as two equal values it keeps its mean in every
    # resample (scipy refuses a sample of one).
    samples = [s if s.size > 1 else np.repeat(s, 2) for s in samples]

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        means = np.stack([r.mean(axis=axis) for r in resampled], axis=-1)
        return _iqm(means, axis=-1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap(
            samples, statistic, confidence_level=level, n_resamples=RESAMPLES, method="percentile",
            vectorized=True, random_state=np.random.default_rng(SEED),
        )  # fmt: skip
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return {"iqm": point, "low": None, "high": None, "method": "bootstrap failed"}
    return {
        "iqm": point,
        "low": low,
        "high": high,
        "method": f"stratified percentile bootstrap, {level:.0%}, {RESAMPLES} resamples",
    }
