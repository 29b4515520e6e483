"""The terminal summary printed after a run: averages, one line per task, then the errors."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_policyeval.reporting.documents import by_policy, scored
from pytest_policyeval.results import TaskResult, baselines_text
from pytest_policyeval.scoring import averages


def _num(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _first_line(text: str, limit: int = 240) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _evidence(r: TaskResult) -> str:
    """The e-value that decided (or the larger one), '-' for fixed gates."""
    value, _ = r.deciding_evidence
    return "-" if value is None else f"{value:.3g}"


def _judged(r: TaskResult) -> str:
    """What the gate compared: the score, or with a baseline the per-seed difference."""
    return f"d={_num(r.estimate)}" if r.paired else _num(r.score)


def suite_lines(group: Sequence[TaskResult], run: dict | None = None) -> list[str]:
    from pytest_policyeval.reporting.documents import suite_summary, verdict_counts

    summary = suite_summary(group, run)
    verdict, iqm = summary["suite_verdict"], summary["iqm_normalised_score"]
    lines = []
    if verdict.get("outcome"):
        lines.append(
            f"  Suite verdict: {verdict['outcome'].upper()} ({verdict_counts(verdict)}; "
            f"multiplicity: {verdict['multiplicity']})"
        )
    if iqm.get("iqm") is not None:
        interval = f" [{_num(iqm['low'])}, {_num(iqm['high'])}]" if iqm.get("low") is not None else ""
        lines.append(f"  IQM of normalised scores: {_num(iqm['iqm'])}{interval} ({iqm['method']})")
    return lines


def summary_lines(results: Sequence[TaskResult], run: dict | None = None) -> list[str]:
    lines: list[str] = []
    for uri, group in by_policy(results).items():
        avg_sim, avg_cat = averages(scored(group))
        width = max(len("task"), *(len(r.task) for r in group))
        lines.append(f"policy {group[0].policy_label} ({uri})")
        baseline = baselines_text(list(group))
        if baseline:
            lines.append(
                f"  gated against {baseline} on the same seeds "
                "(d = score - baseline's, negated where lower is better: d > 0 is better)"
            )
        lines.append(f"  Average simulation score: {_num(avg_sim)}")
        lines.append(f"  Average category score:   {_num(avg_cat)}")
        lines.extend(suite_lines(group, run))
        lines.append(
            f"  {'task':<{width}}  {'score':>8}  {'interval':>17}  {'threshold':>10}  {'episodes':>8}  "
            f"{'evidence':>8}  result"
        )
        for r in group:
            interval = f"[{_num(r.ci_low)}, {_num(r.ci_high)}]"
            lines.append(
                f"  {r.task:<{width}}  {_judged(r):>8}  {interval:>17}  {r.threshold_text:>10}  "
                f"{r.num_episodes:>8}  {_evidence(r):>8}  {r.outcome_text}"
            )
        methods = sorted({f"{r.interval_method} ({r.interval_level})" for r in group if r.interval_method})
        if methods:
            lines.append(f"  intervals: {'; '.join(methods)}")
        errors = [r for r in group if r.error is not None]
        if errors:
            lines.append("  errors:")
            lines.extend(f"    {r.task}: {_first_line(r.error)}" for r in errors)
        lines.append("")
    return lines
