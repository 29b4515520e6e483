"""The task keys the mettagrid engine owns: what is played, on which map, seen how."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class MettagridSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    map: str = Field(min_length=1)  # an ASCII map file, relative to the suite file
    obs_window: int = Field(default=11, ge=3, le=15)
    num_tokens: int = Field(default=200, ge=16, le=1000)
    # What is played on the map: reach goals (navigation) or tag the other team (laser_tag).
    game: Literal["navigation", "laser_tag"] = "navigation"
    # navigation: how many goals end an episode; "all" = every goal on the map.
    goals_to_finish: int | Literal["all"] = 1
    # laser_tag: steps a tagged agent stays frozen (it can neither move nor tag, nor be tagged).
    freeze_steps: int = Field(default=10, ge=1, le=1000)

    @field_validator("obs_window")
    @classmethod
    def _odd_window(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("must be odd, so the agent sits at the centre of its view")
        return value

    @field_validator("goals_to_finish")
    @classmethod
    def _positive_goals(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1 or 'all'")
        return value
