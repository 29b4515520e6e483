"""Metta's averages over task scores (gates and intervals are in gates/).

Task score: mean per-agent episode reward over all scored agent-episodes. Category: the part of
the task name before '/', matched exactly. Average simulation score: unweighted mean of task
scores; average category score: unweighted mean of category means.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np


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
