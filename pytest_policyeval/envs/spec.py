"""What a policy needs to know about an environment, independent of the engine behind it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvSpec:
    """Observation and action layout of a task, by name, so policies can map onto it.

    Observations are tokens `[num_tokens, 3]` of `(packed row/col, feature id, value)`;
    `feature_names[i]` names feature id i, `tag_names[v]` names tag value v of the "tag" feature.
    """

    feature_names: tuple[str, ...]
    tag_names: tuple[str, ...]
    action_names: tuple[str, ...]
    num_agents: int
    num_tokens: int
    obs_height: int
    obs_width: int
    max_steps: int
    resource_names: tuple[str, ...] = ()
    # Team of each agent, in agent order (all 0 for single-team tasks).
    agent_teams: tuple[int, ...] = ()
    # Features this task expresses through another one, as (name, source feature, scale, offset):
    # name's value = offset + scale * source's value. laser_tag's "agent:frozen" (steps left
    # frozen, as other engines report it) is its freeze length minus the agent's "inv:ready".
    equivalent_features: tuple[tuple[str, str, float, float], ...] = ()

    def feature_id(self, name: str) -> int | None:
        try:
            return self.feature_names.index(name)
        except ValueError:
            return None
