"""The terminal summary printed after a run: averages, one line per task, then the errors."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_policyeval.reporting.documents import by_policy, scored, task_keys
from pytest_policyeval.results import TaskResult, baselines_text, number_text
from pytest_policyeval.scoring import averages


def _num(value: float) -> str:
    return number_text(value)


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
        guarantee = str(verdict.get("guarantee") or "")
        if guarantee.startswith("none"):  # fixed gates, or caps that decide nothing: said here too
            lines.append(f"  Suite guarantee: {guarantee}")
    if iqm.get("iqm") is not None:
        interval = f" [{_num(iqm['low'])}, {_num(iqm['high'])}]" if iqm.get("low") is not None else ""
        lines.append(f"  IQM of normalised scores: {_num(iqm['iqm'])}{interval} ({iqm['method']})")
    return lines


def _method(result: TaskResult) -> str:
    return f"{result.interval_method} ({result.interval_level})"


def summary_lines(results: Sequence[TaskResult], run: dict | None = None) -> list[str]:
    lines: list[str] = []
    for uri, group in by_policy(results).items():
        avg_sim, avg_cat = averages(scored(group))
        names = task_keys(group)  # task@suite where two suites name a task alike
        width = max(len("task"), *(len(name) for name in names))
        lines.append(f"policy {group[0].policy_label} ({uri})")
        baseline = baselines_text(list(group))
        if baseline:
            lines.append(
                f"  gated against {baseline} on the same seeds "
                "(d = score - baseline's, negated where lower is better: d > 0 is better)"
            )
        lines.append(f"  Average simulation score: {_num(avg_sim)}")
        lines.append(f"  Average category score:   {_num(avg_cat)}")
        # A rerun that plays nothing says so: each episode kept is one not played again.
        used = sum(len(r.episode_cached) for r in group)
        kept = sum(sum(1 for cached in r.episode_cached if cached) for r in group)
        lines.append(f"  Episodes: {used} decided on, {kept} of them from the episode cache")
        lines.extend(suite_lines(group, run))
        # Each interval's method: one for all, or numbered where the tasks' differ.
        methods = sorted({_method(r) for r in group if r.interval_method and r.error is None})
        marks = {method: f" ({i})" for i, method in enumerate(methods, 1)} if len(methods) > 1 else {}
        intervals = [r.interval_ends + marks.get(_method(r), "") if r.error is None else "-" for r in group]
        span = max(17, *(len(interval) for interval in intervals))
        lines.append(
            f"  {'task':<{width}}  {'score':>8}  {'interval':>{span}}  {'threshold':>10}  {'episodes':>8}  "
            f"{'evidence':>8}  result"
        )
        for name, r, interval in zip(names, group, intervals, strict=True):
            lines.append(
                f"  {name:<{width}}  {_judged(r):>8}  {interval:>{span}}  {r.threshold_text:>10}  "
                f"{r.num_episodes:>8}  {_evidence(r):>8}  {r.outcome_text}"
            )
        if methods:
            listed = [f"{marks.get(method, '').strip()} {method}".strip() for method in methods]
            lines.append(f"  intervals: {'; '.join(listed)}")
        errors = [(name, r) for name, r in zip(names, group, strict=True) if r.error is not None]
        if errors:
            lines.append("  errors:")
            lines.extend(f"    {name}: {_first_line(r.error)}" for name, r in errors)
        lines.append("")
    return lines
