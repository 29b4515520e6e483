"""The task keys the pettingzoo engine owns: which environment, built with which arguments.

`env` names an environment module of a known family (`FAMILIES`) and nothing else: a suite is data,
and a module name it could choose freely would be code run on import. The pattern is checked here,
before anything is imported.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pytest_policyeval.engines.arguments import Scalar, keyword_arguments

# Families of PettingZoo environments, with what to pip install when one is missing. Only their
# versioned environment modules (`<family>.<name>_v<N>`) can be named.
FAMILIES: dict[str, str] = {
    "mpe2": "pip install 'pytest-policyeval[pettingzoo]' (or: pip install mpe2)",
    "pettingzoo.butterfly": "pip install 'pettingzoo[butterfly]'",
    "pettingzoo.sisl": "pip install 'pettingzoo[sisl]'",
    "pettingzoo.classic": "pip install 'pettingzoo[classic]'",
    "pettingzoo.atari": "pip install 'pettingzoo[atari]' and the Atari ROMs (AutoROM)",
}
ENV_PATTERN = re.compile(
    r"^(?P<family>"
    + "|".join(re.escape(f) for f in FAMILIES)
    + r")\.(?P<module>[a-z][a-z0-9_]{0,63}_v[0-9]{1,3})$"
)
TEAM_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_INT = 1000
# Keys the engine sets itself, or that would make an evaluation draw windows.
RESERVED_KWARGS = {
    "render_mode": "rendering is not part of an evaluation",
    "max_cycles": "the engine sets it from the task's max_steps; set max_steps instead",
}


class PettingZooSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # "<family>.<environment module>", e.g. "mpe2.simple_spread_v3" or "pettingzoo.butterfly.pistonball_v6".
    env: str = Field(min_length=1, max_length=120)
    # Arguments of the environment's constructor: JSON scalars, kept as sorted (name, value) pairs
    # so that the settings stay hashable (tasks are cache keys).
    env_kwargs: tuple[tuple[str, Scalar], ...] = ()
    # Teams by agent-name prefix, in team order ("adversary_" is team 0, "agent_" team 1). Default:
    # an agent's name without its trailing "_<number>" names its team, in order of appearance.
    teams: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=16)
    # Zero-pad agents' flat observations to the longest when they differ (simple_tag's two sides);
    # the spec records each agent's own size. Off: such environments are refused.
    pad_observations: bool = False

    @field_validator("env")
    @classmethod
    def _known_family(cls, value: str) -> str:
        if not ENV_PATTERN.match(value):
            raise ValueError(
                "must name an environment module of a known family, '<family>.<name>_v<N>' with family "
                f"one of {sorted(FAMILIES)}"
            )
        return value

    @field_validator("env_kwargs", mode="before")
    @classmethod
    def _scalar_pairs(cls, value: Any) -> Any:
        # Integer arguments size the world (agents, landmarks, pistons): a suite cannot ask for millions.
        return keyword_arguments(value, RESERVED_KWARGS, lists=False, max_int=MAX_INT)

    @field_validator("teams")
    @classmethod
    def _prefixes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            for prefix in value:
                if not TEAM_PREFIX.match(prefix):
                    raise ValueError(f"{prefix[:60]!r} is not an agent-name prefix")
            if len(set(value)) != len(value):
                raise ValueError("a prefix is given twice")
        return value

    @property
    def family(self) -> str:
        match = ENV_PATTERN.match(self.env)
        assert match is not None  # validated
        return match["family"]

    def kwargs(self) -> dict[str, Scalar]:
        return dict(self.env_kwargs)
