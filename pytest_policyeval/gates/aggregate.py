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
    uncovered: int = 0,
    inconclusive_pass: bool = False,
    cap_risks: Sequence[float] = (),
) -> dict[str, Any]:
    """The verdict over these tasks; `betas` are the sequential gates' own false-fail rates, whose
    sum bounds the chance that a policy a margin on the good side of every threshold fails any of
    them. `uncovered` gated tasks (a fixed gate: `mean`, `ci`) control no false-fail rate, and
    with `inconclusive_pass` a task stopped by its cap passes without its false-pass bound.
    `cap_risks` are, per sequential task whose cap can come first, the simulated share of the
    hardest scores a margin on the good side that reached it undecided (a fail): added to the bound."""
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
    bound = min(1.0, float(sum(betas)) + float(sum(cap_risks))) if betas else None
    guarantee = _suite_guarantee(bound, multiplicity, uncovered, inconclusive_pass, cap_risks)
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


def _suite_guarantee(
    bound: float | None,
    multiplicity: str,
    uncovered: int,
    inconclusive_pass: bool,
    cap_risks: Sequence[float] = (),
) -> str:
    """The suite verdict's promise in words, neutral to each task's direction and baseline."""
    if bound is None:
        return (
            f"none: its {uncovered} gated task(s) use fixed gates (mean, ci), which control no false fail"
            if uncovered
            else "none: no gated task reached a verdict"
        )
    if bound >= 1 and cap_risks:
        return (
            f"none: {len(cap_risks)} cap(s) are reached undecided (a fail) by the hardest scores a margin "
            f"on the good side in simulation, together {sum(cap_risks):.3g} of runs, which leaves no "
            "false-fail bound (raise max_episodes, or run the full cap)"
        )
    split = ", each beta / K" if multiplicity == "bonferroni" else ""
    caps = (
        f", plus {sum(cap_risks):.3g} for {len(cap_risks)} cap(s) that the hardest scores a margin on "
        "the good side reached undecided in simulation"
        if cap_risks
        else ""
    )
    text = (
        f"false fail <= {bound:.3g} (the sum of the sequential tasks' beta{split}{caps}) for a policy a "
        "margin on the good side of every threshold (as good as its baseline, for a baseline gate); "
        "false pass <= alpha for one a margin on the bad side of any threshold (two margins worse "
        "than its baseline)"
    )
    if uncovered:
        text += f"; {uncovered} task(s) with a fixed gate (mean, ci) are not covered"
    if inconclusive_pass:
        text += "; a task counting inconclusive as pass passes without its false-pass bound"
    return text


def _iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The interquartile mean: the mean of what is left after a quarter is cut from each end
    (scipy.stats.trim_mean's rule, without importing scipy.stats, which alone costs a second of
    every run's results)."""
    values = np.asarray(values, dtype=np.float64)
    count = values.shape[axis]
    cut = int(0.25 * count)
    kept = np.partition(values, (cut, count - cut - 1), axis=axis)
    middle = [slice(None)] * kept.ndim
    middle[axis] = slice(cut, count - cut)
    return kept[tuple(middle)].mean(axis=axis)


def iqm_interval(normalised: Sequence[Sequence[float]], level: float = 0.95) -> dict[str, Any]:
    """IQM of task means and its stratified bootstrap interval (each task's episodes resampled on
    their own); with no spread in any task the interval is the point."""
    samples = [np.asarray(s, dtype=np.float64) for s in normalised if len(s)]
    if not samples:
        return {"iqm": None, "low": None, "high": None, "method": "no tasks"}
    point = float(_iqm(np.array([s.mean() for s in samples])))
    if all(s.size < 2 or np.all(s == s[0]) for s in samples):
        return {"iqm": point, "low": point, "high": point, "method": "no spread to resample"}
    # Stratified percentile bootstrap (Agarwal et al. 2021): each resample draws every task's
    # episodes with replacement from that task alone, and takes the IQM of the tasks' means.
    rng = np.random.default_rng(SEED)
    means = np.stack(
        [s[rng.integers(0, s.size, size=(RESAMPLES, s.size))].mean(axis=1) for s in samples], axis=1
    )
    statistics = _iqm(means, axis=1)
    tail = (1 - level) / 2 * 100
    low, high = (float(v) for v in np.percentile(statistics, [tail, 100 - tail]))
    if not (math.isfinite(low) and math.isfinite(high)):
        return {"iqm": point, "low": None, "high": None, "method": "bootstrap failed"}
    return {
        "iqm": point,
        "low": low,
        "high": high,
        "method": f"stratified percentile bootstrap, {level:.0%}, {RESAMPLES} resamples",
    }
