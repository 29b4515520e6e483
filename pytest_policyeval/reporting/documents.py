"""Result documents in the shapes Metta users know.

`evaluator_json`: the evaluator service's output,
    {simulation_suite, policies: [{policy_uri, checkpoints: [{name, uri, metrics, replay_url}]}]}
with per-task detail under `metrics.tasks` (each task's replay files: `replay_url`, the first, and
`replay_urls`, all, with MettaScope links).
`evaluation_yaml`: Metta's evaluation_results.yaml,
    {policy, suite, num_episodes, device, results: {avg_simulation_score, avg_category_score,
     detailed_scores: {category: {task: score}}}}
(several policies: a `policies:` list of those mappings).
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import yaml

from pytest_policyeval.completeness import run_passed
from pytest_policyeval.reporting.replays import mettascope_url
from pytest_policyeval.results import TaskResult
from pytest_policyeval.scoring import averages, category_scores


def _finite(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def by_policy(results: Sequence[TaskResult]) -> dict[str, list[TaskResult]]:
    grouped: dict[str, list[TaskResult]] = {}
    for result in sorted(results, key=lambda r: (r.order[2], r.order[0], r.order[1])):
        grouped.setdefault(result.policy_uri, []).append(result)
    return grouped


def task_keys(results: Sequence[TaskResult]) -> list[str]:
    """Each result's name in a document's mappings: its task's, or `task@suite` where two suites
    of the run name a task alike (one would hide the other)."""
    # Distinct suites per name: one task played by several policies is no clash.
    counts = Counter(task for task, _ in {(r.task, r.suite) for r in results})
    return [r.task if counts[r.task] == 1 else f"{r.task}@{r.suite}" for r in results]


def scored(results: Sequence[TaskResult]) -> dict[str, float]:
    """Task scores that count toward averages: tasks that ran to the end."""
    return {
        key: r.score
        for key, r in zip(task_keys(results), results, strict=True)
        if r.error is None and not math.isnan(r.score)
    }


def suite_names(results: Sequence[TaskResult]) -> list[str]:
    return list(dict.fromkeys(r.suite for r in sorted(results, key=lambda r: r.order)))


def _task_detail(result: TaskResult) -> dict[str, Any]:
    return {
        "task": result.task,
        "suite": result.suite,
        "gated": result.gated,
        "order": list(result.order),
        "category": result.category,
        "score": _finite(result.score),
        "ci_low": _finite(result.ci_low),
        "ci_high": _finite(result.ci_high),
        "threshold": result.threshold,
        "higher_is_better": result.higher_is_better,
        "gate": result.gate,
        "passed": result.passed,
        "num_episodes": result.num_episodes,
        "seed": result.seed,
        "policy_agents_pct": result.policy_agents_pct,
        "npc_policy_uri": result.npc_policy_uri,
        "engine": result.engine,
        "seeds": result.seeds,
        "episode_scores": result.episode_scores,
        "episode_rewards": result.episode_rewards,
        "episode_steps": result.episode_steps,
        "replay_url": result.replay_urls[0] if result.replay_urls else None,
        "mettascope_url": mettascope_url(result.replay_urls[0]) if result.replay_urls else None,
        "replay_urls": result.replay_urls,
        "mettascope_urls": [mettascope_url(url) for url in result.replay_urls],
        "wall_time_s": round(result.wall_time_s, 4),
        "agent_steps": result.agent_steps,
        "error": result.error,
        "traceback": result.traceback,
        **gate_detail(result),
        "design": result.design,
        "guarantee": result.guarantee,
        "inconclusive": result.inconclusive,
        "episodes_run": result.episodes_run,
        "episode_cached": result.episode_cached,
        "trace": result.trace,
        "baseline_uri": result.baseline_uri,
        "baseline_score": _finite(result.baseline_score),
        "baseline_episode_scores": result.baseline_episode_scores,
    }


def gate_detail(result: TaskResult) -> dict[str, Any]:
    """The gate's verdict and its evidence, as the JSON and YAML both show it."""
    return {
        "outcome": result.outcome,
        "estimate": _finite(result.estimate),
        "interval_method": result.interval_method,
        "interval_level": result.interval_level,
        "evidence": result.evidence,
        "reason": result.reason,
    }


def normalised_scores(result: TaskResult) -> list[float]:
    """A task's per-episode scores on [0, 1] by its declared range, 1 the best."""
    # The task's own range (a paired gate's design is on the differences, whose range is wider).
    low, high = result.design.get("score_range") or (result.design.get("low"), result.design.get("high"))
    if result.error is not None or low is None or high is None:
        return []
    scores = [(s - low) / (high - low) for s in result.episode_scores]
    return scores if result.higher_is_better else [1 - s for s in scores]


def _was_gated(result: TaskResult) -> bool:
    return result.gated or result.threshold is not None or result.outcome is not None


def suite_summary(results: Sequence[TaskResult], run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The suite verdict (multiplicity-controlled) and the IQM headline of one policy's tasks.

    With the run's status given, a run that is not whole (interrupted, tasks missing) has no
    verdict: "incomplete", whatever the tasks it has say.
    """
    from pytest_policyeval.gates.aggregate import iqm_interval, suite_verdict

    # A task that erred before its gate carries no design: with none gated, there is none to name.
    # Suites of one run may share their beta differently: each way is named.
    ways = sorted({r.design["multiplicity"] for r in results if "multiplicity" in r.design})
    multiplicity = ", ".join(ways) if ways else "n/a"
    decided = [r for r in results if r.outcome is not None and "beta" in r.design]
    verdict = suite_verdict(
        # An errored task counts where it was to be gated (K counts it too), and nowhere else.
        [r.outcome if r.error is None else ("error" if _was_gated(r) else None) for r in results],
        [r.passed if r.error is None else False for r in results],
        multiplicity,
        [r.design["beta"] for r in decided if r.design.get("sequential", True)],
        uncovered=sum(1 for r in decided if not r.design.get("sequential", True)),
        inconclusive_pass=any(r.inconclusive == "pass" for r in decided),
        cap_risks=[r.design["cap_risk"] for r in decided if r.design.get("cap_risk")],
    )
    if verdict.get("outcome") and not (run or {}).get("shard"):  # a shard's others are elsewhere
        verdict["unselected_tasks"] = _unselected(results)
    if run is not None and (run.get("complete") is not True or run.get("interrupted")):
        # Tasks left without a result may have been selected and never run: not "unselected".
        missing = verdict.pop("unselected_tasks", 0)
        verdict = {
            **verdict,
            "outcome": "incomplete" if verdict.get("outcome") else None,
            "guarantee": "none: the run is not whole (interrupted or tasks missing)",
        }
        if missing:
            verdict["tasks_without_result"] = missing
    normalised = [normalised_scores(r) for r in results]
    headline = iqm_interval(normalised)
    covered = sum(1 for scores in normalised if len(scores))
    headline["tasks_covered"] = covered
    if headline.get("iqm") is not None and covered < len(results):
        # Said wherever the headline is shown: it leaves out tasks it cannot put on [0, 1].
        headline["method"] += (
            f"; over {covered} of {len(results)} tasks (the others have no range or no scores)"
        )
    return {"suite_verdict": verdict, "iqm_normalised_score": headline}


def _unselected(results: Sequence[TaskResult]) -> int:
    """Gated tasks of the suites played that this run did not select (-k, -m, --lf): a verdict
    over the rest is the verdict of a part of the suite, and says so."""
    suites: dict[str, int] = {}
    for result in results:
        k = result.design.get("gated_tasks")
        if isinstance(k, int):
            suites[result.suite] = max(suites.get(result.suite, 0), k)
    here = Counter(result.suite for result in results if _was_gated(result))
    return sum(max(0, k - here[suite]) for suite, k in suites.items())


def policy_metrics(results: Sequence[TaskResult], run: dict[str, Any] | None = None) -> dict[str, Any]:
    scores = scored(results)
    avg_sim, avg_cat = averages(scores)
    return {
        "avg_simulation_score": _finite(avg_sim),
        "avg_category_score": _finite(avg_cat),
        "category_scores": category_scores(scores),
        "num_tasks": len(results),
        "num_failed": sum(1 for r in results if r.passed is False),
        "num_errors": sum(1 for r in results if r.error is not None),
        "num_inconclusive": sum(1 for r in results if r.outcome == "inconclusive"),
        **suite_summary(results, run),
        "tasks": {key: _task_detail(r) for key, r in zip(task_keys(results), results, strict=True)},
    }


def evaluator_json(results: Sequence[TaskResult], run: dict[str, Any], extend: bool = True) -> dict[str, Any]:
    """The evaluator service's results document; `extend`: plugins add their keys (not to the
    placeholder a run writes when it starts, which no plugin expects: it has no results)."""
    policies = []
    for uri, group in by_policy(results).items():
        info = next((r.policy for r in group if r.policy), {})
        # Metta's shape has one replay per checkpoint: the first one recorded; every task lists its own.
        first_replay = next((url for r in group for url in r.replay_urls), None)
        policies.append(
            {
                "policy_uri": uri,
                "checkpoints": [
                    {
                        "name": group[0].policy_label,
                        "uri": uri,
                        "digest": info.get("digest"),
                        "policy_info": info,
                        "metrics": policy_metrics(group, run),
                        "replay_url": first_replay,
                    }
                ],
            }
        )
    document = {
        "simulation_suite": ",".join(suite_names(results)),
        **run,
        "passed": run_passed(run, all(r.claims_pass for r in results)),
        "policies": policies,
    }
    if not extend:
        return document
    from pytest_policyeval import registry

    # Plugins add keys of their own; they see copies, so the evaluator's keys and the results stay
    # as they are whatever a plugin does.
    shown = copy.deepcopy(document)
    try:
        registry.manager().hook.pytest_policyeval_results_document(
            document=shown, results=copy.deepcopy(list(results))
        )
    except Exception as exc:  # a plugin's bug: the evaluator's document stands, and says so
        from pytest_policyeval.redact import redact_text

        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        return {**document, "document_hook_error": redact_text(text)[:300]}
    return {**document, **{key: value for key, value in shown.items() if key not in document}}


def _metta_layout(uri: str, results: Sequence[TaskResult], run: dict[str, Any]) -> dict[str, Any]:
    scores = scored(results)
    avg_sim, avg_cat = averages(scores)
    keys = task_keys(results)
    detailed: dict[str, dict[str, float]] = {}
    for key in keys:
        if key in scores:
            category, short = key.split("/", 1)
            detailed.setdefault(category, {})[short] = float(scores[key])
    episodes = sorted({r.num_episodes for r in results})
    info = next((r.policy for r in results if r.policy), {})
    # What a Metta checkpoint's channels and actions were read as: part of what its scores mean.
    preset = {"metta_preset": info["preset"]} if info.get("preset") else {}
    return {
        "policy": uri,
        "suite": ",".join(suite_names(results)),
        "num_episodes": episodes[0]
        if len(episodes) == 1
        else {key: r.num_episodes for key, r in zip(keys, results, strict=True)},
        "device": run.get("device", "cpu"),
        **preset,
        "results": {
            "avg_simulation_score": _finite(avg_sim),
            "avg_category_score": _finite(avg_cat),
            "detailed_scores": detailed,
        },
        # Beyond Metta's keys: each task's gate with its evidence, and the suite's verdict.
        **suite_summary(results, run),
        "gates": {
            key: {
                **gate_detail(r),
                "episodes": r.num_episodes,
                "interval": [_finite(r.ci_low), _finite(r.ci_high)],
                "passed": r.passed,
                # An errored task's why, and what a baseline gate compared against.
                **({"error": r.error} if r.error is not None else {}),
                **(
                    {"baseline_uri": r.baseline_uri, "baseline_score": _finite(r.baseline_score)}
                    if r.baseline_uri
                    else {}
                ),
            }
            for key, r in zip(keys, results, strict=True)
        },
    }


def evaluation_yaml(results: Sequence[TaskResult], run: dict[str, Any]) -> dict[str, Any]:
    grouped = by_policy(results)
    layouts = [_metta_layout(uri, group, run) for uri, group in grouped.items()]
    # Metta's keys, then what the run says of itself (a partial run never reads as a pass).
    status = {
        "complete": run.get("complete") is True,
        "interrupted": bool(run.get("interrupted")),
        "passed": run_passed(run, all(r.claims_pass for r in results)),
    }
    return {**layouts[0], **status} if len(layouts) == 1 else {"policies": layouts, **status}  # 0 or 2+


def dump_json(document: dict[str, Any]) -> str:
    # JSON has no NaN or infinity: a number that is not finite is written as null, so one odd
    # value never costs the whole file (and every other task's result with it).
    return json.dumps(_json_safe(document), indent=2, allow_nan=False) + "\n"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def results_from_evaluator_json(document: dict[str, Any]) -> list[TaskResult]:
    """The task results an `evaluator_json` document holds (the inverse of writing it)."""
    names = {f.name for f in fields(TaskResult)}
    results = []
    for policy in document.get("policies", []):
        for checkpoint in policy["checkpoints"]:
            for task, detail in checkpoint["metrics"]["tasks"].items():
                # Fields stored under their own names come back as they are; the rest are rebuilt.
                stored = {key: value for key, value in detail.items() if key in names}
                rebuilt = {
                    **{
                        key: _number(detail.get(key))
                        for key in ("score", "ci_low", "ci_high", "estimate", "baseline_score")
                    },
                    "task": detail.get("task", task),  # the key is `task@suite` where names repeat
                    "policy_uri": policy["policy_uri"],
                    "policy_label": checkpoint["name"],
                    "order": tuple(detail["order"]),
                    "policy": checkpoint.get("policy_info") or {},
                }
                results.append(TaskResult(**{**stored, **rebuilt}))
    return results


def verdict_counts(verdict: dict[str, Any]) -> str:
    """A suite verdict's tally, as the terminal and the report show it."""
    errors = f", {verdict['error_tasks']} with errors" if verdict.get("error_tasks") else ""
    # A run that is not whole counts only the tasks that have a result: say so.
    whose = " with a result" if verdict.get("outcome") == "incomplete" else ""
    unselected = verdict.get("unselected_tasks") or 0
    left = f"; {unselected} more of the suite not selected (-k, -m, --lf)" if unselected else ""
    if missing := verdict.get("tasks_without_result"):
        left = f"; {missing} more of the suite without a result (not run, or not selected)"
    return (
        f"{verdict['passed_tasks']} pass, {verdict['failed_tasks']} fail, "
        f"{verdict['inconclusive_tasks']} inconclusive{errors} of {verdict['gated_tasks']} gated{whose}{left}"
    )
