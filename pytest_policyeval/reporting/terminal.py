"""The terminal summary printed after a run: averages, one line per task, then the errors."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_policyeval.reporting.documents import by_policy, scored
from pytest_policyeval.results import TaskResult
from pytest_policyeval.scoring import averages


def _num(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _verdict(result: TaskResult) -> str:
    if result.error is not None:
        return "ERROR"
    return {True: "PASS", False: "FAIL", None: "-"}[result.passed]


def _first_line(text: str, limit: int = 240) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def summary_lines(results: Sequence[TaskResult]) -> list[str]:
    lines: list[str] = []
    for uri, group in by_policy(results).items():
        avg_sim, avg_cat = averages(scored(group))
        width = max(len("task"), *(len(r.task) for r in group))
        lines.append(f"policy {group[0].policy_label} ({uri})")
        lines.append(f"  Average simulation score: {_num(avg_sim)}")
        lines.append(f"  Average category score:   {_num(avg_cat)}")
        lines.append(
            f"  {'task':<{width}}  {'score':>7}  {'95% CI':>17}  {'threshold':>10}  {'episodes':>8}  result"
        )
        for r in group:
            interval = f"[{_num(r.ci_low)}, {_num(r.ci_high)}]"
            lines.append(
                f"  {r.task:<{width}}  {_num(r.score):>7}  {interval:>17}  {r.threshold_text:>10}  "
                f"{r.num_episodes:>8}  {_verdict(r)}"
            )
        errors = [r for r in group if r.error is not None]
        if errors:
            lines.append("  errors:")
            lines.extend(f"    {r.task}: {_first_line(r.error)}" for r in errors)
        lines.append("")
    return lines
