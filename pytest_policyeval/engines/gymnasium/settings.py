"""The task keys the gymnasium engine owns: which registered environment, made with which arguments.

Suites are data: nothing a suite names is imported or run. An id in gymnasium's "module:Env-v0"
form would import `module`, so ids with a colon are refused; arguments are JSON scalars or lists
of them, never objects.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pytest_policyeval.engines.arguments import Value, keyword_arguments

# gymnasium's id grammar ([namespace/]name[-vN]) without its ":" (the module-import form).
ENV_ID = re.compile(r"^[A-Za-z0-9_./-]{1,120}$")
# Registered ids whose environment is another one named in their arguments ("env_id", which old
# gym resolves by importing "module:Env"): refused whatever their arguments.
COMPATIBILITY_IDS = ("GymV21Environment", "GymV22Environment", "GymV26Environment")
# gymnasium.make's own parameters, not the environment's: rendering is never part of an
# evaluation, and the episode length is the task's max_steps capped by the env's own time limit.
REFUSED_KWARGS = {
    "render_mode": "rendering is not part of an evaluation",
    "max_episode_steps": "use the task's max_steps (capped by the environment's own time limit)",
    "disable_env_checker": "it is gymnasium.make's own parameter, not the environment's",
    "id": "it is gymnasium.make's own parameter, not the environment's",
}


class GymnasiumSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    env: str = Field(min_length=1, max_length=120)  # a registered id, e.g. "CartPole-v1"
    # Keyword arguments of the environment's constructor. Kept as sorted (name, value) pairs so the
    # settings hash (a Task is an lru_cache key) and dump (the episode cache key) the same way
    # whatever order the suite wrote them in.
    env_kwargs: tuple[tuple[str, Value], ...] = ()

    @field_validator("env")
    @classmethod
    def _registered_id_form(cls, value: str) -> str:
        if ":" in value:
            raise ValueError(
                "ids of the form 'module:Env' import a module; a suite may only name environments "
                "already registered with gymnasium"
            )
        if value.startswith(COMPATIBILITY_IDS):
            raise ValueError(
                f"'{value}' wraps another environment named by its arguments (shimmy's gym compatibility), "
                "which may import a module: name the environment itself"
            )
        if not ENV_ID.match(value):
            raise ValueError("must be a gymnasium id such as 'CartPole-v1' (letters, digits, _ . - /)")
        return value

    @field_validator("env_kwargs", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        return keyword_arguments(value, REFUSED_KWARGS)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The arguments as gymnasium.make takes them (lists as lists)."""
        return {name: list(value) if isinstance(value, tuple) else value for name, value in self.env_kwargs}
