"""Scores, confidence intervals, gates and Metta's averages.

Task score: mean per-agent episode reward over all scored agent-episodes. The 95% interval is a
Student-t interval over per-episode scores (episodes are the independent units; agents within an
episode are not). Category: the part of the task name before '/', matched exactly. Average
simulation score: unweighted mean of task scores; average category score: unweighted mean of
category means.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean; a single value gives (nan, nan), no spread gives a point."""
    data = np.asarray(values, dtype=np.float64)
    if data.size < 2:
        return (math.nan, math.nan)
    mean = float(data.mean())
    sem = float(data.std(ddof=1) / math.sqrt(data.size))
    if sem == 0.0:
        return (mean, mean)
    from scipy import stats

    low, high = stats.t.interval(confidence, data.size - 1, loc=mean, scale=sem)
    return (float(low), float(high))


@dataclass(frozen=True)
class Gate:
    threshold: float | None
    higher_is_better: bool = True
    mode: str = "mean"  # "mean" or "ci"

    def passes(self, score: float, interval: tuple[float, float]) -> bool | None:
        if self.threshold is None:
            return None
        if math.isnan(score):
            return False
        value = score
        if self.mode == "ci" and not math.isnan(interval[0]):
            value = interval[0] if self.higher_is_better else interval[1]
        return value >= self.threshold if self.higher_is_better else value <= self.threshold


@dataclass(frozen=True)
class TaskScore:
    score: float
    interval: tuple[float, float]
    num_episodes: int
    passed: bool | None


def score_task(agent_rewards_per_episode: Sequence[Sequence[float]], gate: Gate) -> TaskScore:
    all_rewards = [r for episode in agent_rewards_per_episode for r in episode]
    score = float(np.mean(all_rewards)) if all_rewards else math.nan
    per_episode = [float(np.mean(episode)) for episode in agent_rewards_per_episode if len(episode)]
    interval = mean_interval(per_episode)
    return TaskScore(score, interval, len(agent_rewards_per_episode), gate.passes(score, interval))


def category_of(task_name: str) -> str:
    return task_name.split("/", 1)[0]


def category_scores(task_scores: Mapping[str, float]) -> dict[str, float]:
    by_category: dict[str, list[float]] = {}
    for name, score in task_scores.items():
        by_category.setdefault(category_of(name), []).append(score)
    return {category: float(np.mean(scores)) for category, scores in sorted(by_category.items())}


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan


def averages(task_scores: Mapping[str, float]) -> tuple[float, float]:
    """(average simulation score, average category score)."""
    return _mean(task_scores.values()), _mean(category_scores(task_scores).values())
