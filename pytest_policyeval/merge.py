"""Merging the results of a split run (`--shard-id I --num-shards N`) into the single run's result.

Each shard's results JSON names its shard. The merge checks that every shard of the split is
there exactly once and that no task was run twice, then scores and gates every task again from
its per-episode rewards, exactly as one run would, and writes the same files one run writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_policyeval.reporting.documents import results_from_evaluator_json
from pytest_policyeval.results import TaskResult


class MergeError(Exception):
    """The shard files do not make one complete run."""


@dataclass
class Merged:
    results: list[TaskResult]
    run: dict[str, Any]  # run info (device, versions, git) as the shards recorded it


def read_shard(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MergeError(f"{path}: cannot read as JSON: {exc}") from None
    shard = document.get("shard") if isinstance(document, dict) else None
    if not isinstance(shard, dict) or not {"id", "count"} <= set(shard):
        raise MergeError(
            f"{path}: not a shard's results (no 'shard' entry; run with --shard-id/--num-shards)"
        )
    return document


def regate(result: TaskResult) -> TaskResult:
    """Gate a task again from its per-episode scores, with the design the run recorded: a shard's
    verdict must follow from its numbers, and every figure of the gate is rewritten from them.

    Raises ValueError for a gated task whose numbers cannot carry a verdict: no design, no
    scores, counts that disagree, or scores on which the gate decides nothing.
    """
    from dataclasses import fields, replace

    from pytest_policyeval.gates.decide import judge
    from pytest_policyeval.gates.design import PAIRED_SUBJECT, GateDesign, differences
    from pytest_policyeval.gating import verdict

    if result.error is not None:
        result.passed = None
        return result
    gated = result.threshold is not None or result.paired or result.outcome is not None
    if not gated:
        return result
    if not result.design or not result.episode_scores:
        raise ValueError("a gated task without its gate's design or its per-episode scores")
    if len(result.episode_scores) != result.num_episodes:
        raise ValueError(f"{len(result.episode_scores)} scores for {result.num_episodes} episodes")
    names = {f.name for f in fields(GateDesign)} - {"subject"}  # the words are this side's own
    design = GateDesign(**{k: v for k, v in result.design.items() if k in names})
    if result.paired:
        design = replace(design, subject=PAIRED_SUBJECT)
    scores = result.episode_scores
    if result.paired:
        if len(result.baseline_episode_scores) != len(scores):
            raise ValueError("the baseline's scores do not pair with the candidate's")
        scores = differences(scores, result.baseline_episode_scores, result.higher_is_better)
    decision = judge(design, scores)
    if decision.outcome is None or decision.episodes != len(scores):
        raise ValueError(
            f"its gate decides nothing on its {len(scores)} scores"
            if decision.outcome is None
            else f"its gate decides after {decision.episodes} of its {len(scores)} scores"
        )
    result.outcome = decision.outcome
    result.passed = verdict(decision.outcome, result.inconclusive)
    result.estimate = decision.estimate
    result.ci_low, result.ci_high = decision.low, decision.high
    result.evidence = {"pass": decision.evidence_pass, "fail": decision.evidence_fail}
    result.reason = decision.reason
    return result


def _partial(document: dict[str, Any]) -> str | None:
    """Why a shard's results are not its whole share of the run, or None."""
    if document.get("in_progress"):
        return "never finished (killed while it ran)"
    if document.get("interrupted"):
        return "interrupted"
    if document.get("complete") is not True:
        missing = document.get("tasks_expected"), document.get("tasks_with_results")
        return "incomplete" + (f" ({missing[1]} of {missing[0]} tasks)" if None not in missing else "")
    return None


# Run-wide settings a merged document states once; shards must agree on each.
RUN_WIDE = {
    "device": "devices",
    "seed_override": "--eval-seed values",
    "num_episodes_override": "--num-episodes values",
    "versions": "package versions",
    "baseline_uri": "--baseline-uri values",
    "gate_override": "--eval-gate values",
    "npc_policy_uri_override": "--npc-policy-uri values",
    "metta_preset_override": "--metta-preset values",
}


def merge_shards(paths: Sequence[Path], allow_partial: bool = False) -> Merged:
    """One run's results from its shards; shards that are not whole are refused unless allowed,
    and then the merged result says it is partial."""
    if not paths:
        raise MergeError("no shard files given")
    documents = [(Path(path), read_shard(Path(path))) for path in paths]
    partial = [(path, why) for path, doc in documents if (why := _partial(doc))]
    if partial and not allow_partial:
        named = ", ".join(f"{path} ({why})" for path, why in partial)
        raise MergeError(f"partial shards: {named}; rerun them, or merge with --allow-partial")
    counts = {doc["shard"]["count"] for _, doc in documents}
    if len(counts) != 1:
        raise MergeError(f"the files come from splits into different numbers of shards: {sorted(counts)}")
    (count,) = counts
    seen: dict[int, Path] = {}
    for path, doc in documents:
        shard_id = doc["shard"]["id"]
        if shard_id in seen:
            raise MergeError(f"shard {shard_id} is given twice: {seen[shard_id]} and {path}")
        seen[shard_id] = path
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise MergeError(f"shards {missing} of {count} are missing; their tasks would be lost")
    shas = {doc.get("git_sha") for _, doc in documents}
    if len(shas) > 1:
        raise MergeError(f"the shards ran different commits: {sorted(map(str, shas))}")
    # An interrupted xdist shard may not know its split (its workers' word never came): the
    # others are compared.
    splits = {
        json.dumps(doc["shard"]["split"], sort_keys=True) for _, doc in documents if doc["shard"].get("split")
    }
    if len(splits) > 1:
        # Each shard's share is computed from what it collected: different -k, -m, suites or
        # policies give shares of different runs, and their union is neither.
        raise MergeError(
            "the shards were cut from different task selections (their -k, -m, suites or "
            "--policy-uri differ), so together they are not one run: rerun them alike"
        )
    for key, what in RUN_WIDE.items():
        # The merged document states these once, for every task: shards that differ make one run.
        values = {json.dumps(doc.get(key), sort_keys=True) for _, doc in documents}
        if len(values) > 1:
            raise MergeError(f"the shards ran with different {what} ('{key}': {', '.join(sorted(values))})")

    results: list[TaskResult] = []
    owner: dict[tuple[str, str, str], Path] = {}
    for path, doc in sorted(documents, key=lambda item: item[1]["shard"]["id"]):
        try:
            shard_results = results_from_evaluator_json(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise MergeError(f"{path}: malformed results ({type(exc).__name__}: {exc})") from None
        for result in shard_results:
            key = (result.suite, result.task, result.policy_uri)
            if key in owner:
                raise MergeError(f"{result.task} [{result.policy_label}] is in both {owner[key]} and {path}")
            owner[key] = path
            try:
                results.append(regate(result))
            except Exception as exc:  # what a shard file says is data: any failure is its fault
                message = f"{path}: {result.task}: the gate cannot be checked ({type(exc).__name__}: {exc})"
                if isinstance(exc, LookupError):  # an unknown gate, most likely
                    message += "; a gate from a conftest or plugin must be importable where the merge runs"
                raise MergeError(message) from None
    if not results:
        raise MergeError(f"no shard of the {count} has any task (did -k or -m deselect every task?)")
    first = next(doc for _, doc in documents if doc["shard"]["id"] == 0)
    run = {key: first.get(key) for key in ("git_sha", *RUN_WIDE)}
    run["shard"] = None
    run["merged_shards"] = count
    expected = [doc.get("tasks_expected") for _, doc in documents]
    run.update(
        complete=not partial,
        interrupted=any(bool(doc.get("interrupted")) for _, doc in documents),
        tasks_expected=sum(expected) if None not in expected else None,
        tasks_with_results=len(results),
        missing_tasks=[task for _, doc in documents for task in doc.get("missing_tasks") or []][:20],
    )
    return Merged(results=sorted(results, key=lambda r: r.order), run=run)
