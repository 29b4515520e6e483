"""One task's outcome for one policy, as plain data that travels from xdist workers to the controller."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TaskResult:
    suite: str
    task: str
    policy_uri: str
    policy_label: str
    order: tuple[int, int, int]  # (suite, task, policy) position in collection, for stable output
    threshold: float | None
    higher_is_better: bool
    gate: str
    num_episodes: int
    seed: int
    score: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    passed: bool | None = None
    seeds: list[int] = field(default_factory=list)
    episode_scores: list[float] = field(default_factory=list)
    episode_rewards: list[list[float]] = field(default_factory=list)  # per episode, per scored agent
    episode_steps: list[int] = field(default_factory=list)
    wall_time_s: float = 0.0
    agent_steps: int = 0
    policy: dict[str, Any] = field(default_factory=dict)
    policy_agents_pct: float = 1.0  # share of agents the policy played; the rest played the npc
    npc_policy_uri: str | None = None
    replay_urls: list[str] = field(default_factory=list)  # saved replay files (--save-replays)
    error: str | None = None
    traceback: str | None = None  # where an unexpected error came from

    @property
    def category(self) -> str:
        return self.task.split("/", 1)[0]

    @property
    def short_task(self) -> str:
        return self.task.split("/", 1)[1]

    @property
    def ok(self) -> bool:
        return self.error is None and self.passed is not False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["order"] = list(self.order)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        data = dict(data)
        data["order"] = tuple(data["order"])
        return cls(**data)

    @property
    def threshold_text(self) -> str:
        """The gate as people read it: '>= 0.5', '<= 3', or '-' without a threshold."""
        if self.threshold is None:
            return "-"
        return f"{'>=' if self.higher_is_better else '<='} {self.threshold:g}"

    def summary_line(self) -> str:
        interval = f"[{self.ci_low:.3f}, {self.ci_high:.3f}]" if not math.isnan(self.ci_low) else "[n/a]"
        gate = "mean" if self.gate == "mean" else "95% interval"
        return (
            f"{self.task} [{self.policy_label}]: score {self.score:.3f}, 95% CI {interval}, "
            f"threshold {self.threshold_text} (gate on {gate}), {self.num_episodes} episodes"
        )
