"""The range every per-episode score of a task lies in: the bound a gate's guarantee rests on.

A score is the mean reward of the policy's agents in one episode. The games' rules bound it:
navigation pays one per goal and ends once `goals_to_finish` are reached, so an agent earns at
most that many; in laser_tag a tag empties the target's READY store, which refills by one a step,
so no agent is tagged more than ceil(max_steps / freeze_steps) times in an episode, and the tags
the scored agents make are at most every agent's tags together. A suite's `score_range` may narrow
or replace this (a wrong one is caught: a score outside it stops the gate with an error).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_policyeval.collection.suite import TaskSettings
    from pytest_policyeval.envs.gridmap import GridMap


class ScoreRangeError(ValueError):
    """A declared range or threshold that cannot gate anything."""


def scored_agents(share: float, count: int) -> int:
    """How many of an episode's `count` agents the policy plays: the nearest whole number to
    share * count (halves to even, as Python rounds), at least one."""
    return min(count, max(1, round(share * count)))


def game_score_range(settings: TaskSettings, grid: GridMap) -> tuple[float, float]:
    if settings.game == "navigation":
        goals = grid.num_goals if settings.goals_to_finish == "all" else int(settings.goals_to_finish)
        return (0.0, float(goals))
    tags_each = math.ceil(settings.max_steps / settings.freeze_steps)
    scored = scored_agents(settings.policy_agents_pct, grid.num_agents)
    return (0.0, float(tags_each * grid.num_agents / scored))


def score_range(settings: TaskSettings, grid: GridMap) -> tuple[float, float]:
    return settings.score_range or game_score_range(settings, grid)


def check_score_range(settings: TaskSettings, grid: GridMap) -> None:
    """A sequential gate needs its threshold inside the range and a margin narrower than it."""
    if settings.threshold is None or settings.gate != "sequential":
        return
    low, high = score_range(settings, grid)
    if not low < settings.threshold < high:
        raise ScoreRangeError(
            f"key 'threshold': {settings.threshold:g} is not inside the score range [{low:g}, {high:g}], "
            "so no policy can be told apart from it (set score_range, or use gate: mean)"
        )
    from pytest_policyeval.gates.design import default_margin

    margin = (
        settings.margin
        if settings.margin is not None
        else default_margin(low, high, settings.margin_fraction)
    )
    if margin >= (high - low) / 2:
        raise ScoreRangeError(f"key 'margin': {margin:g} is half the score range [{low:g}, {high:g}] or more")
