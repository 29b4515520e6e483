"""What a gate is: a rule from a task's per-episode scores to pass, fail or (for now) undecided.

Gates are found by the name a suite's `gate:` key gives, through the `pytest_policyeval_gates`
hook; the built-in ones are in decide.py. A gate gets the task's `GateDesign` (threshold,
direction, score range, margin, error rates, episode cap) and the scores so far, in episode-index
order, and answers a `Decision`. A `sequential` gate may answer `outcome=None` to ask for more
episodes; the evaluation then plays another round, up to the design's cap. A fixed gate is asked
once, on `num_episodes` episodes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from pytest_policyeval.gates.design import GateDesign
from pytest_policyeval.gates.sequential import Decision


@runtime_checkable
class Gate(Protocol):
    sequential: bool  # episodes are added in rounds until `decide` returns an outcome
    needs_range: bool  # the guarantee rests on the declared score range (checked when a suite is read)
    guarantee: str  # what a verdict promises, as people should read it

    def decide(self, design: GateDesign, scores: np.ndarray, trace: bool = False) -> Decision:
        """The decision on these scores (`trace`: also the per-episode trace for the report)."""
        ...
