"""Each game's bound on a per-episode score: the range a gate's guarantee rests on.

A score is the mean reward of the policy's agents in one episode. Navigation pays one per goal
and ends once `goals_to_finish` are reached, so an agent earns at most that many. In laser_tag a
tag empties the target's READY store, which refills by one a step, so no agent is tagged more
than ceil(max_steps / freeze_steps) times in an episode, and the tags the scored agents make are
at most every agent's tags together. A suite's `score_range` may narrow or replace this (a wrong
one is caught: a score outside it stops the gate with an error).
"""

from __future__ import annotations

import math

from pytest_policyeval.engines.mettagrid.gridmap import GridMap
from pytest_policyeval.engines.mettagrid.settings import MettagridSettings
from pytest_policyeval.task import TaskSettings, scored_agents


def goals_to_finish(env: MettagridSettings, grid: GridMap) -> int:
    if env.game != "navigation":
        return 0
    return grid.num_goals if env.goals_to_finish == "all" else int(env.goals_to_finish)


def game_score_range(env: MettagridSettings, settings: TaskSettings, grid: GridMap) -> tuple[float, float]:
    if env.game == "navigation":
        return (0.0, float(goals_to_finish(env, grid)))
    tags_each = math.ceil(settings.max_steps / env.freeze_steps)
    scored = scored_agents(settings.policy_agents_pct, grid.num_agents)
    return (0.0, float(tags_each * grid.num_agents / scored))
