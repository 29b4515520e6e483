"""What a task's verdict promises, in words: its gate's guarantee, and what its cap, its
inconclusive rule or its baseline take from it."""

from __future__ import annotations

from typing import Any

from pytest_policyeval.gates.design import GUARANTEES


def guarantee_text(gate: Any, design: Any, paired: bool, inconclusive: str = "fail") -> str:
    """What the task's verdict promises, in words: on the side its direction makes bad, nothing
    for a task without a threshold, and what a cap or `inconclusive: pass` takes away."""
    if design.threshold is None and not paired:
        return "none: no threshold, so no verdict (the score is reported only)"
    if not gate.sequential:
        text = gate.guarantee
        if design.kind == "ci" and design.low is None:
            text = GUARANTEES["ci, no range"]
        return text + (" (on per-seed differences to the baseline)" if paired else "")
    if paired:
        text = GUARANTEES["paired"]
    else:
        text = GUARANTEES["sequential" if design.higher_is_better else "sequential, lower is better"]
    return text + _cap_caveat(design, inconclusive)


def _cap_caveat(design: Any, inconclusive: str) -> str:
    """What the episode cap takes from a sequential gate's promise."""
    from pytest_policyeval.gates.sequential import cap_reached, least_episodes

    to_pass, to_fail = least_episodes(design)
    cap = design.max_episodes
    never = [word for word, need in (("pass", to_pass), ("fail", to_fail)) if need is None or need > cap]
    if len(never) == 2:
        return (
            f"; but not in {cap} episodes: no verdict can come in them (a pass takes at least "
            f"{to_pass}, a fail {to_fail}), so every run is inconclusive"
        )
    if never:
        need = to_pass if never[0] == "pass" else to_fail
        return (
            f"; but it cannot {never[0]} within its {cap} episodes (that takes at least {need}): "
            f"such a policy is inconclusive, counted as {inconclusive}"
        )
    if inconclusive == "pass":
        return "; inconclusive counts as pass here, so a policy the cap stops passes without that bound"
    if inconclusive == "skip":
        reached, runs = cap_reached(design, "good")
        return (
            f"; but its cap of {cap} episodes can come first: scores a margin on the good side, all at "
            f"the range's ends, reached it undecided in {reached} of {runs} simulated runs; such a run "
            "is skipped, and its suite verdict is then inconclusive"
            if reached
            else ""
        )
    if inconclusive != "fail":
        return ""
    reached, runs = cap_reached(design, "good")
    if reached:
        return (
            f"; but its cap of {cap} episodes can come first: scores a margin on the good side, all at "
            f"the range's ends (the widest spread), reached it undecided in {reached} of {runs} "
            f"simulated runs ({reached / runs:.1%}), counted as fail, so false fail can exceed beta "
            "there (raise max_episodes)"
        )
    if runs:
        return (
            f"; its cap of {cap} episodes was reached undecided in none of {runs} simulated runs of the "
            "hardest scores a margin on the good side (all at the range's ends)"
        )
    return ""


def cap_risk(design: Any, inconclusive: str) -> float:
    """The share of simulated runs of the hardest scores a margin on the good side that reached
    the cap undecided, where that counts as a fail: added to the suite's false-fail bound."""
    from pytest_policyeval.gates.sequential import cap_reached

    if inconclusive != "fail" or design.low is None:
        return 0.0
    reached, runs = cap_reached(design, "good")
    return reached / runs if runs else 0.0
