"""A task as the evaluation sees it: the settings every engine shares, and its engine's own.

Suite files (collection/suite.py) are read into `Task`s. The keys here decide how many episodes
are played and how they are judged; what is played (a map, an environment id and its arguments) is
the engine's, validated by the engine's own settings model and kept in `Task.env`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

DEFAULT_ENGINE = "mettagrid"


class Resources(BaseModel):
    """What one evaluation of the task asks of a cluster node (the Ray backend): CPUs, GPUs
    (fractions share one), memory and custom resources. Nothing here changes an episode."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cpus: float = Field(default=1.0, ge=0, le=1024)
    gpus: float = Field(default=0.0, ge=0, le=64)
    memory_mb: int | None = Field(
        default=None, ge=1, le=64 << 20
    )  # up to 64 TiB: Ray's counters overflow beyond
    custom: dict[str, float] = Field(default_factory=dict, max_length=16)

    @field_validator("cpus", "gpus")
    @classmethod
    def _ray_precision(cls, value: float) -> float:
        # Ray counts resources in units of 1/10000 and refuses finer amounts when the task starts.
        if abs(value * 10_000 - round(value * 10_000)) > 1e-6:
            raise ValueError(f"{value:g} is finer than Ray's 0.0001")
        return value

    @field_validator("gpus")
    @classmethod
    def _whole_or_fraction(cls, value: float) -> float:
        # Ray shares one GPU between fractions; more than one must be whole GPUs.
        if value > 1 and value != int(value):
            raise ValueError("must be a fraction of one GPU or a whole number of GPUs")
        return value

    @field_validator("custom")
    @classmethod
    def _custom_names(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if not name or len(name) > 64 or name in ("CPU", "GPU", "memory") or not 0 <= amount <= 1e6:
                raise ValueError(
                    f"{name[:64]!r}: a custom resource needs a name of its own and an amount from 0 to 1e6"
                )
            if abs(amount * 10_000 - round(amount * 10_000)) > 1e-6:
                raise ValueError(f"{name[:64]!r}: {amount:g} is finer than Ray's 0.0001")
        return value

    def __hash__(self) -> int:  # frozen, but the dict field needs a hand
        return hash((self.cpus, self.gpus, self.memory_mb, tuple(sorted(self.custom.items()))))


class TaskSettings(BaseModel):
    """Fields a task may set itself or inherit from the suite's `defaults`, whatever its engine."""

    # NaN or infinite numbers cannot gate anything nor be written to the results (strict JSON).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    # Numbers and switches are taken as written: "0.05" or `true` for a count is a mistake to name,
    # not a value to guess (strict fields; an integer still counts as a float).

    # Episodes of a fixed gate; a sequential gate's first round (and the fewest it runs).
    num_episodes: int = Field(default=10, ge=1, le=100_000, strict=True)
    max_steps: int = Field(default=200, ge=1, strict=True)
    max_time_s: float = Field(default=600.0, gt=0, strict=True)
    threshold: float | None = Field(default=None, strict=True)
    higher_is_better: bool = Field(default=True, strict=True)
    # How the threshold is applied: a registered gate (gates/base.py; "sequential", "mean", "ci"
    # built in). "sequential": episodes are added in rounds until an anytime-valid test passes or
    # fails the task, with false pass <= alpha a margin below the threshold and false fail <= beta
    # a margin above it. "ci": a fixed num_episodes, the one-sided (1 - alpha) bound must clear
    # the threshold. "mean": Metta's rule, no guarantee.
    gate: str = Field(default="sequential", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Every per-episode score lies in [low, high]; the guarantees rest on it. Default: the
    # engine's own bound for the task, where it knows one.
    score_range: tuple[float, float] | None = None
    margin: float | None = Field(default=None, gt=0, strict=True)  # delta in score units; default below
    margin_fraction: float = Field(default=0.1, gt=0, le=0.5, strict=True)  # delta as a share of the range
    alpha: float = Field(default=0.05, gt=0, lt=0.5, strict=True)  # false pass, a margin below the threshold
    beta: float = Field(default=0.01, gt=0, lt=0.5, strict=True)  # false fail, a margin above the threshold
    max_episodes: int = Field(default=1000, ge=1, le=100_000, strict=True)  # a sequential gate's cap
    # What a sequential gate that reaches its cap undecided (the mean within the margin) reports.
    inconclusive: Literal["fail", "pass", "skip"] = "fail"
    # Gate on per-seed differences to this policy instead (it plays the same seeds); --baseline-uri wins.
    baseline_uri: str | None = Field(default=None, min_length=1)
    # Share of a task's agents that the policy under test controls; the rest play `npc_policy_uri`.
    # Only the policy's agents are scored. Whole teams go to the policy first, alternating by episode.
    policy_agents_pct: float = Field(default=1.0, gt=0.0, le=1.0, strict=True)
    npc_policy_uri: str | None = None
    # What one evaluation asks of a Ray node (--eval-ray); default: --eval-ray-resources, else one
    # CPU (and one GPU with --device cuda).
    resources: Resources | None = None

    @field_validator("max_episodes")
    @classmethod
    def _cap_holds_the_first_round(cls, value: int, info: ValidationInfo) -> int:
        # Checked only where a suite sets it (pydantic validates no default): the first round
        # alone would break a smaller cap.
        first = info.data.get("num_episodes")
        if first is not None and value < first:
            raise ValueError(f"{value} is below num_episodes ({first}), the sequential gate's first round")
        return value

    @field_validator("score_range", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise ValueError("must be two numbers, [low, high]")
        return value

    @field_validator("score_range")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError("must be [low, high] with low < high")
        # Twice the width too: a baseline gate's per-seed differences span it.
        if value is not None and not math.isfinite(2 * (value[1] - value[0])):
            raise ValueError("its width must be a finite number, and so must twice it")
        return value


@dataclass(frozen=True)
class Task:
    """One evaluation task, with every default resolved."""

    suite: str
    name: str
    settings: TaskSettings
    seed: int
    engine: str = DEFAULT_ENGINE
    # The engine's own settings (its `settings_model`, frozen and hashable): what is played.
    env: Any = None
    folder: Path = Path(".")  # the suite file's folder, which the engine's relative files are under
    description: str = ""
    pytorch_config: Path | None = None
    metta_preset: str | None = None
    # Gated tasks in the suite this task was run as part of, and how the suite verdict divides
    # its false-fail rate among them (the task's gate runs at beta / gated_tasks for "bonferroni").
    gated_tasks: int = 1
    suite_tasks: int = 1  # all of the suite's tasks: each is gated when a baseline is given
    multiplicity: str = "bonferroni"

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split("/", 1)[1]

    def with_overrides(self, *, num_episodes: int | None = None, seed: int | None = None) -> Task:
        settings = self.settings
        if num_episodes is not None:
            settings = settings.model_copy(update={"num_episodes": num_episodes})
        return replace(self, settings=settings, seed=self.seed if seed is None else seed)

    def with_settings(self, **changes: Any) -> Task:
        return replace(self, settings=self.settings.model_copy(update=changes))


def scored_agents(share: float, count: int) -> int:
    """How many of an episode's `count` agents the policy plays (`policy_agents_pct`): Metta's rule,
    share * count rounded down, at least one (so a share below 1 leaves the npc at least one agent
    wherever there are two). A product within 1e-9 of a whole number counts as it: 0.57 of 100 is
    57, although in binary 0.57 * 100 falls just short."""
    return min(count, max(1, math.floor(share * count + 1e-9)))
