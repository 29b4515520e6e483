"""One entry point for every gate: a design and per-episode scores in, a `Decision` out.

The built-in gates are here too: `sequential` (sequential.py), `ci` and `mean`.
"""

from __future__ import annotations

import math

import numpy as np

from pytest_policyeval.gates.base import Gate
from pytest_policyeval.gates.design import GUARANTEES, GateDesign, first_outside, percent, range_error
from pytest_policyeval.gates.intervals import EQUAL_SCORES, interval
from pytest_policyeval.gates.sequential import Decision, decide


def gate_for(kind: str) -> Gate:
    """The gate registered under `kind` (`pytest_policyeval_gates`)."""
    from pytest_policyeval import registry

    found = registry.gate(kind)
    return found() if isinstance(found, type) else found


def judge(design: GateDesign, scores: list[float] | np.ndarray, trace: bool = False) -> Decision:
    """The gate's decision on these scores; a sequential gate may answer None (more episodes).

    Every gate, a plugin's included, has its scores held to the declared range here: a score
    outside it is an error, unless a sequential gate had decided on the episodes before it."""
    x = np.asarray(scores, dtype=np.float64)
    # An ungated task is held to the range too: its interval is drawn within it.
    gate = gate_for(design.kind) if design.threshold is not None else None
    bad = first_outside(design, x)
    if bad is not None:
        if gate is not None and bad > 0 and gate.sequential:
            head = gate.decide(design, x[:bad], trace)
            if head.outcome is not None:
                return head
        raise range_error(design, bad, float(x[bad]))
    return _ungated(design, x) if gate is None else gate.decide(design, x, trace)


class SequentialGate:
    """The anytime-valid betting test (sequential.py): the default."""

    sequential, needs_range, guarantee = True, True, GUARANTEES["sequential"]

    def decide(self, design: GateDesign, scores: np.ndarray, trace: bool = False) -> Decision:
        return decide(design, scores, trace=trace)


class FixedGate:
    """`mean` (Metta's rule) or `ci` (the one-sided bound) on a fixed number of episodes."""

    sequential, needs_range = False, False

    def __init__(self, kind: str):
        self.kind, self.guarantee = kind, GUARANTEES[kind]

    def decide(self, design: GateDesign, scores: np.ndarray, trace: bool = False) -> Decision:
        return _fixed(design, scores, self.kind)


def _fixed(design: GateDesign, x: np.ndarray, kind: str) -> Decision:
    """`mean`: the sample mean against the threshold. `ci`: the one-sided (1 - alpha) bound."""
    level = 0.95 if kind == "mean" else 1 - 2 * design.alpha
    # A ci gate's verdict stands on its bound: one that holds whatever the scores' distribution.
    shown = interval(x, design.low, design.high, level, any_distribution=kind == "ci")
    estimate = float(np.mean(x)) if x.size else math.nan
    if kind == "mean":
        value, rule = estimate, "the mean"
        if x.size and _ties(estimate, design.threshold):
            value = design.threshold  # a mean at the threshold but for rounding is at it
    else:
        value = shown.low if design.higher_is_better else shown.high
        rule = f"the one-sided {percent(1 - design.alpha)} bound"
    if math.isnan(value):
        outcome, reason = "fail", f"{rule} is not known after {x.size} episode(s)"
    else:
        ok = value >= design.threshold if design.higher_is_better else value <= design.threshold
        outcome = "pass" if ok else "fail"
        relation = (
            (">=" if design.higher_is_better else "<=") if ok else ("<" if design.higher_is_better else ">")
        )
        said = estimate if kind == "mean" else value  # the mean as computed, even where it ties
        reason = f"{rule} {said:.4g} {relation} threshold {design.threshold:g} after {x.size} episodes"
        if not ok and kind == "ci" and shown.method == EQUAL_SCORES:
            reason += _episodes_needed(design, float(x[0]), level)
    return Decision(
        outcome=outcome,  # type: ignore[arg-type]
        episodes=int(x.size),
        estimate=estimate,
        low=shown.low,
        high=shown.high,
        evidence_pass=None,  # a fixed gate weighs no evidence
        evidence_fail=None,
        reason=reason,
        interval_method=shown.method,
        interval_level=f"{percent(level)} two-sided",
    )


TIE = 1e-12  # relative: far below any score's meaning, far above double rounding


def _ties(mean: float, threshold: float) -> bool:
    """Whether `mean` equals `threshold` up to the rounding of computing it. Per-episode scores are
    themselves means (12 tags over 60 agent-episodes is 0.2, yet the mean of the episodes' k/3
    sums to 0.19999999999999998), so an exact tie must not depend on the last bit."""
    # Relative to the threshold only: large scores of both signs must not widen it (their mean
    # may sit far from them), and a threshold of 0 ties only with an exact 0.
    return abs(mean - threshold) <= TIE * abs(threshold)


def _episodes_needed(design: GateDesign, value: float, level: float) -> str:
    """Why equal scores on the good side of the threshold still fail, and how many would pass."""
    low, high, threshold = design.low, design.high, design.threshold
    assert low is not None and high is not None and threshold is not None
    good_side = value > threshold if design.higher_is_better else value < threshold
    if not good_side:
        return ""
    # The bound moves toward the far end by (distance to it) * p: p must not exceed this.
    room = (
        (value - threshold) / (value - low)
        if design.higher_is_better
        else (threshold - value) / (high - value)
    )
    needed = math.ceil(math.log((1 - level) / 2) / math.log1p(-room))
    return (
        f" (every episode scored {value + 0.0:.4g}, which does not rule out a rarer worse score; "
        f"this bound clears the threshold after {needed} equal episodes)"
    )


def _ungated(design: GateDesign, x: np.ndarray) -> Decision:
    shown = interval(x, design.low, design.high)
    return Decision(
        outcome=None,
        episodes=int(x.size),
        estimate=float(np.mean(x)) if x.size else math.nan,
        low=shown.low,
        high=shown.high,
        evidence_pass=None,
        evidence_fail=None,
        reason="",
        interval_method=shown.method,
        interval_level="95% two-sided",
    )
