"""What a policy is told about a task's environment, whatever engine plays it.

Engines build an `EnvSpec`; policies read it to check that they fit and to shape their inputs and
outputs. Observations and actions are described per agent by gymnasium spaces (the vocabulary
Gymnasium, PettingZoo and Stable-Baselines3 share). mettagrid's token observations need more than
a space says (which feature each token byte is), so its engine gives the `TokenSpec` subclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class EnvSpec:
    """One task's agents, observations and actions, as the runner's batches present them.

    Row `e * num_agents + a` of a batch's observations and actions is agent `a` of episode `e`.
    """

    engine: str  # the engine's registered name: "mettagrid", "gymnasium", "pettingzoo", ...
    num_agents: int
    max_steps: int
    observation_space: Any = None  # one agent's observation (a gymnasium.spaces.Space)
    action_space: Any = None  # one agent's action (a gymnasium.spaces.Space)
    env_id: str = ""  # the engine's name for the environment, e.g. "CartPole-v1"
    agent_names: tuple[str, ...] = ()  # in agent order, where the engine names them
    # Team of each agent, in agent order (empty or all 0 for single-team tasks).
    agent_teams: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TokenSpec(EnvSpec):
    """mettagrid's observation layout, by name, so Metta policies can map onto it.

    Observations are tokens `[num_tokens, 3]` of `(packed row/col, feature id, value)`;
    `feature_names[i]` names feature id i, `tag_names[v]` names tag value v of the "tag" feature.
    Actions are indices into `action_names`.
    """

    feature_names: tuple[str, ...]
    tag_names: tuple[str, ...]
    action_names: tuple[str, ...]
    num_tokens: int
    obs_height: int
    obs_width: int
    resource_names: tuple[str, ...] = ()
    # Features this task expresses through another one, as (name, source feature, scale, offset):
    # name's value = offset + scale * source's value. laser_tag's "agent:frozen" (steps left
    # frozen, as other engines report it) is its freeze length minus the agent's "inv:ready".
    equivalent_features: tuple[tuple[str, str, float, float], ...] = ()

    def feature_id(self, name: str) -> int | None:
        try:
            return self.feature_names.index(name)
        except ValueError:
            return None
