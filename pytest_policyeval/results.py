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
    num_episodes: int  # the episodes the verdict rests on (a sequential gate: where it decided)
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
    engine: str = "mettagrid"  # the engine that played the task (engines/)
    replay_urls: list[str] = field(default_factory=list)  # saved replay files (--save-replays)
    error: str | None = None
    traceback: str | None = None  # where an unexpected error came from
    # The gate (gates/): its design, its outcome and why, and the interval it agrees with.
    outcome: str | None = None  # "pass", "fail", "inconclusive"; None: not gated or no result
    gated: bool = False  # by a threshold or a baseline: an error counts in the suite verdict
    inconclusive: str = "fail"  # what an inconclusive outcome counts as: fail, pass or skip
    design: dict[str, Any] = field(default_factory=dict)  # gates.design.GateDesign's fields
    guarantee: str = ""  # what the gate promises, in words
    reason: str = ""
    evidence: dict[str, float | None] = field(default_factory=dict)  # e-values: "pass", "fail"
    interval_method: str = ""
    interval_level: str = ""
    trace: dict[str, list[float]] = field(default_factory=dict)  # running estimate and interval
    episodes_run: int = 0  # episodes played or read from the cache, the ones past the decision too
    episode_cached: list[bool] = field(default_factory=list)  # per episode: came from the cache
    estimate: float = math.nan  # what the gate judged: the mean score, or the mean per-seed difference
    baseline_uri: str | None = None  # --baseline-uri: the gate is on per-seed differences
    baseline_score: float = math.nan
    baseline_episode_scores: list[float] = field(default_factory=list)

    @property
    def category(self) -> str:
        return self.task.split("/", 1)[0]

    @property
    def short_task(self) -> str:
        return self.task.split("/", 1)[1]

    @property
    def ok(self) -> bool:
        """Not failed: what the exit status follows (an inconclusive task counted as skip is ok)."""
        return self.error is None and self.passed is not False

    @property
    def claims_pass(self) -> bool:
        """What a results file may call passed: gated and passed, or not gated at all. An
        inconclusive task counted as skip did not pass."""
        return self.error is None and (self.passed is True or (self.passed is None and self.outcome is None))

    @property
    def deciding_evidence(self) -> tuple[float | None, str]:
        """The e-value that decided (pass or fail) and its side, else the larger one; (None, "")
        for a fixed gate. The one to show beside the outcome: the other side's may be larger."""
        values = {side: finite_number(self.evidence.get(side)) for side in ("pass", "fail")}
        if self.outcome in values and values[self.outcome] is not None:
            return values[self.outcome], self.outcome
        known = [(v, side) for side, v in values.items() if v is not None]
        return max(known) if known else (None, "")

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
        """The gate as people read it: '>= 0.5', '<= 3', 'd >= -0.1' against a baseline, or '-'."""
        if self.paired:  # on the differences; an errored task has no design to say the threshold
            threshold = finite_number(self.design.get("threshold")) if self.design else None
            return f"d >= {threshold:g}" if threshold is not None else "d vs baseline"
        if self.threshold is None:
            return "-"
        return f"{'>=' if self.higher_is_better else '<='} {self.threshold:g}"

    @property
    def paired(self) -> bool:
        return self.baseline_uri is not None

    @property
    def outcome_text(self) -> str:
        """PASS / FAIL / INCONCLUSIVE (and what that counts as), or ERROR / '-' ungated."""
        if self.error is not None:
            return "ERROR"
        if self.outcome is None:
            return "-"
        if self.outcome == "inconclusive":
            return f"INCONCLUSIVE ({self.inconclusive})"
        return self.outcome.upper()

    @property
    def interval_ends(self) -> str:
        """'[low, high]' to 3 decimals, or more where an end would print as the band edge it
        cleared (a gate decides as soon as it can, so its interval ends just past that edge)."""
        edges = []
        threshold, margin = (finite_number((self.design or {}).get(k)) for k in ("threshold", "margin"))
        if threshold is not None and margin is not None:
            edges = [threshold - margin, threshold + margin]
        return f"[{_end(self.ci_low, edges)}, {_end(self.ci_high, edges)}]"

    @property
    def interval_text(self) -> str:
        if math.isnan(self.ci_low):
            return "[n/a]"
        return f"{self.interval_ends} ({self.interval_method}, {self.interval_level})"

    def summary_line(self) -> str:
        if self.paired:
            judged = (
                f"score {self.score:.3f} against the baseline's {self.baseline_score:.3f}, per-seed "
                f"difference {self.estimate:.3f} {self.interval_text}, must be >= "
                f"{self.design.get('threshold', math.nan):.3g} (paired {self.gate} gate)"
            )
        else:
            judged = (
                f"score {self.score:.3f} {self.interval_text}, threshold {self.threshold_text} "
                f"({self.gate} gate)"
            )
        line = (
            f"{self.task} [{self.policy_label}]: {self.outcome_text}, {judged}, {self.num_episodes} episodes"
        )
        return f"{line}: {self.reason}" if self.reason else line


def number_text(value: Any) -> str:
    """A score as the terminal and the report print it: 3 decimals, or 4 significant digits where
    3 decimals would run to hundreds of digits; n/a for nothing."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return "n/a"
    if math.isinf(value) or abs(value) >= 1e6:
        return f"{value:.4g}"
    return f"{value + 0.0:.3f}"  # no -0.000


def _end(value: float, edges: list[float]) -> str:
    if value is None or math.isnan(value) or math.isinf(value):
        return number_text(value)
    large = abs(value) >= 1e6  # significant digits there, decimals below

    def shown(number: float, digits: int) -> str:
        return f"{number:.{digits + 1}g}" if large else f"{number + 0.0:.{digits}f}"

    def clashes(digits: int) -> bool:
        return any(value != edge and shown(value, digits) == shown(edge, digits) for edge in edges)

    digits = 3
    while digits < 15 and clashes(digits):
        digits += 1
    # Closer than that: the shortest text that reads back as the value itself.
    return repr(value + 0.0) if clashes(digits) else shown(value, digits)


def finite_number(value: Any) -> float | None:
    """A real, finite number as a float; None for anything else (NaN, a bool, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def baselines_text(group: list[TaskResult]) -> str | None:
    """What the group was gated against: one baseline for all, or how many tasks had their own."""
    uris = [r.baseline_uri for r in group]
    if not any(uris):
        return None
    if all(uris) and len(set(uris)) == 1:
        return f"baseline {uris[0]}"
    named = sorted({u for u in uris if u})
    return f"{sum(1 for u in uris if u)} of {len(uris)} tasks against baselines ({', '.join(named)})"
