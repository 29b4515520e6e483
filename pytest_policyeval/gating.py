"""Between a task and its gate: the task's gate design, its episodes' cache key, its result.

The per-process evaluation (evaluation.py) calls these; the statistics live in gates/, the rounds
in rounds.py.
"""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any

from pytest_policyeval.engines import engine_for
from pytest_policyeval.gates.design import GateDesign, default_margin
from pytest_policyeval.gates.guarantee import cap_risk, guarantee_text

if TYPE_CHECKING:
    from pytest_policyeval.policies.base import Policy
    from pytest_policyeval.results import TaskResult
    from pytest_policyeval.rounds import GatePlay
    from pytest_policyeval.task import Task

# Settings that only decide how episodes are judged or where they run, never what happens in one.
GATE_SETTINGS = frozenset(
    {
        "num_episodes", "max_time_s", "threshold", "higher_is_better", "gate", "score_range", "margin",
        "margin_fraction", "alpha", "beta", "max_episodes", "inconclusive", "baseline_uri", "resources",
    }
)  # fmt: skip


class ScoreRangeError(ValueError):
    """A declared range or threshold that cannot gate anything."""


def score_range(task: Task) -> tuple[float, float] | None:
    """The range every per-episode score lies in: the suite's `score_range`, else the engine's
    bound for the task (None where neither is known)."""
    return task.settings.score_range or engine_for(task).score_range(task)


def num_agents(task: Task) -> int:
    engine = engine_for(task)
    counted = getattr(engine, "num_agents", None)  # cheaper than the spec where an engine has it
    return int(counted(task)) if counted is not None else engine.spec(task).num_agents


def check_score_range(task: Task) -> None:
    """A gate whose guarantee rests on the range needs one, its threshold inside it and a margin
    narrower than it. Raises ScoreRangeError naming the key."""
    from pytest_policyeval.gates.decide import gate_for

    settings = task.settings
    if settings.threshold is None or not gate_for(settings.gate).needs_range:
        return
    bounds = score_range(task)
    if bounds is None:
        raise ScoreRangeError(
            f"key 'score_range': gate '{settings.gate}' needs the range every episode's score lies in, "
            f"and engine '{task.engine}' knows none for this task (declare score_range: [low, high], "
            "or use gate: ci or gate: mean, which promise less: see the README's Gates)"
        )
    low, high = bounds
    if not low < settings.threshold < high:
        raise ScoreRangeError(
            f"key 'threshold': {settings.threshold:g} is not inside the score range [{low:g}, {high:g}], "
            "so no policy can be told apart from it (set score_range, or use gate: mean)"
        )
    margin = (
        settings.margin
        if settings.margin is not None
        else default_margin(low, high, settings.margin_fraction)
    )
    if margin is not None and margin >= (high - low) / 2:
        raise ScoreRangeError(f"key 'margin': {margin:g} is half the score range [{low:g}, {high:g}] or more")


def check_cap(task: Task, paired_gate: bool = False, every_task_gated: bool = False) -> None:
    """A sequential gate whose `max_episodes` cannot reach both verdicts is refused: however the
    policy plays, one of them (or both) would never come, and every such run says inconclusive.
    `paired_gate`: the gate on per-seed differences to a baseline, whose range is twice as wide and
    so needs more episodes. (A `--num-episodes` override may still cut it short: its guarantee then
    says what is lost.)"""
    from pytest_policyeval.gates.decide import gate_for
    from pytest_policyeval.gates.design import paired
    from pytest_policyeval.gates.sequential import least_episodes

    if not gate_for(task.settings.gate).sequential:
        return
    if task.settings.threshold is None and not paired_gate:
        return
    design = gate_design(task, paired_gate, every_task_gated)
    if design.low is None:
        return
    if paired_gate:
        design = paired(design)
    to_pass, to_fail = least_episodes(design)
    short = [(word, need) for word, need in (("pass", to_pass), ("fail", to_fail))
             if need is None or need > design.max_episodes]  # fmt: skip
    if short:
        takes = " and ".join(
            f"a {word} at least {need}" if need is not None else f"a {word} more than {design.max_episodes}"
            for word, need in short
        )
        never = " or ".join(word for word, _ in short)
        against = " on the per-seed differences to the baseline" if paired_gate else ""
        raise ScoreRangeError(
            f"key 'max_episodes': {design.max_episodes} episodes cannot reach both verdicts{against} at "
            f"alpha {design.alpha:g}, beta {design.beta:.3g} ({takes}, so no {never} can come "
            "within the cap): raise max_episodes or the error rates"
        )


def _check_paired(task: Task, low: float | None, high: float | None, margin: float | None) -> None:
    """A baseline gate asks "not worse by more than the margin": it needs a margin, and a
    sequential one needs the range too (check_score_range skips a task without a threshold)."""
    from pytest_policyeval.gates.decide import gate_for

    if low is None and gate_for(task.settings.gate).needs_range:
        raise ScoreRangeError(
            f"key 'score_range': a baseline gate '{task.settings.gate}' needs the range every episode's "
            f"score lies in, and engine '{task.engine}' knows none for this task (declare "
            "score_range: [low, high], or use gate: ci or gate: mean with a margin)"
        )
    if margin is None:
        raise ScoreRangeError(
            "key 'margin': a baseline gate needs the margin by which the candidate may trail the "
            "baseline, and without a score_range there is no default (declare margin:)"
        )
    # As for a threshold: trailing by half the range or more, no score could show it.
    if low is not None and high is not None and margin >= (high - low) / 2:
        raise ScoreRangeError(
            f"key 'margin': {margin:g} is half the score range [{low:g}, {high:g}] or more, so a "
            "candidate could trail its baseline by all of it and still pass"
        )


def gated_tasks(task: Task, every_task_gated: bool) -> int:
    """K, the tasks the suite's false-fail rate is shared among: those gated by a threshold or
    their own baseline, or every task when one baseline (--baseline-uri) gates them all."""
    return task.suite_tasks if every_task_gated else task.gated_tasks


def gate_design(task: Task, paired: bool = False, every_task_gated: bool = False) -> GateDesign:
    """The task's gate. Raises ScoreRangeError (naming the key) when overrides such as
    --eval-gate sequential meet a threshold the range cannot gate."""
    settings = task.settings
    if not paired:  # a paired gate's threshold is -margin on the differences (_check_paired)
        check_score_range(task)
    low, high = score_range(task) or (None, None)
    margin = (
        settings.margin
        if settings.margin is not None
        else default_margin(low, high, settings.margin_fraction)
    )
    # The suite verdict's false-fail rate is shared among its gated tasks (Bonferroni).
    gated = gated_tasks(task, every_task_gated)
    beta = settings.beta / gated if task.multiplicity == "bonferroni" else settings.beta
    threshold = settings.threshold
    if paired:
        _check_paired(task, low, high, margin)
        if threshold is None:
            threshold = math.nan  # gated on the differences alone; paired() sets their threshold
    return GateDesign(
        kind=settings.gate,
        threshold=threshold,
        higher_is_better=settings.higher_is_better,
        low=low,
        high=high,
        margin=margin,
        alpha=settings.alpha,
        beta=beta,
        max_episodes=max(settings.max_episodes, settings.num_episodes),
        min_episodes=settings.num_episodes,
    )


def policy_identity(policy: Policy | None) -> dict[str, Any] | None:
    """What makes a policy's episodes what they are: its checkpoint's digest and how it was read,
    or for built-in policies (no file) their URI. Where it was fetched from does not count."""
    if policy is None:
        return None
    from pytest_policyeval.policies.naming import split_uri
    from pytest_policyeval.provenance import outside_code_digest, policy_registrations

    identity: dict[str, Any] = {"class": f"{type(policy).__module__}.{type(policy).__qualname__}"}
    source = outside_code_digest(policy)  # a plugin's or conftest's policy: its code counts
    if source is not None:
        identity["source_sha256"] = source
    # And the code that registered its scheme or parts.
    registered = policy_registrations(split_uri(policy.uri)[0], policy.info)
    if registered:
        identity["registered_sha256"] = registered
    info = {k: v for k, v in policy.info.items() if k not in ("path", "source")}
    if "digest" not in info:
        identity["uri"] = policy.uri
    identity.update(info)
    # A config counts by the digest its loader took of the bytes it read (info["config_sha256"]),
    # not by its path: the same file elsewhere (a Ray node's copy) plays the same.
    identity.pop("config", None)
    return identity


def engine_identity(task: Task) -> dict[str, Any]:
    """What the engine says makes an episode what it is, and which engine (by class and, for one
    from outside the package, its source)."""
    from pytest_policyeval.provenance import outside_code_digest, registered_code

    engine = engine_for(task)
    identity = {"class": f"{type(engine).__module__}.{type(engine).__qualname__}", **engine.identity(task)}
    source = outside_code_digest(engine)
    if source is not None:
        identity["source_sha256"] = source
    registered = registered_code("pytest_policyeval_engines", task.engine)
    if registered is not None:  # the conftest that made it (CoinEngine(flip=FLIP)) counts too
        identity["registered_sha256"] = registered
    return identity


def played_task(task: Task) -> dict[str, Any]:
    """What of a task decides its episodes, as written (not the gate's settings). The npc's URI
    may carry a password: the key counts the npc by its identity instead."""
    return {
        "task": task.name,
        "suite_seed": task.seed,
        "settings": task.settings.model_dump(mode="json", exclude=set(GATE_SETTINGS) | {"npc_policy_uri"}),
        "engine": task.engine,
        "env": task.env.model_dump(mode="json") if task.env is not None else None,
    }


def episodes_key(task: Task, policy: Policy, npc: Policy | None, device: str) -> tuple[str, dict[str, Any]]:
    """The episode cache's key for `policy` on `task`, and what it was made of (kept beside it)."""
    from pytest_policyeval.episode_cache import SCHEMA, cache_key, plain
    from pytest_policyeval.provenance import code_digest, package_versions, registered_code

    versions = package_versions()
    meta = {
        **played_task(task),
        "engine_identity": engine_identity(task),
        "metta_preset": task.metta_preset,
        "policy": policy_identity(policy),
        "npc": policy_identity(npc),
        "device": device,
        # A large float32 product may sum in another order on another number of threads.
        "threads": _torch_threads(policy, npc),
        "schema": SCHEMA,
        "code": code_digest(),  # the source that plays episodes: a change there plays them again
        "versions": {k: versions.get(k) for k in ("pytest_policyeval", "torch", "numpy")},
    }
    preset = registered_code("pytest_policyeval_metta_presets", task.metta_preset)
    if preset is not None:  # a conftest's preset: its contents decide the episodes, not its name
        meta["metta_preset_sha256"] = preset
    # As JSON keeps it (int dict keys become strings): the reader hashes what it reads back.
    meta = json.loads(json.dumps(meta, default=plain))
    return cache_key(meta), meta


def _torch_threads(*policies: Policy | None) -> int | None:
    """torch's thread count where a policy of the episodes uses torch; None where none does (their
    key must not depend on whether another policy loaded torch first)."""
    if all(p is None or p.uses_torch is False for p in policies):
        return None
    torch = sys.modules.get("torch")  # a policy that uses torch has loaded it by now
    return None if torch is None else int(torch.get_num_threads())


def episodes_hint(task: Task, uri: str, npc_uri: str | None, device: str) -> str:
    """Where to look for `uri`'s kept episodes of `task` without loading anything: a hint kept
    beside the episode cache (episode_cache.py), which names the keys they were last kept under.
    Made of what the Ray backend's caller knows (the URIs, never a checkpoint's content): the key
    that counts is still the one made from the loaded policy."""
    from pytest_policyeval.episode_cache import cache_key

    return cache_key(
        {
            "hint": 1,
            **played_task(task),
            "suite": task.suite,
            "uri": uri,
            "npc": npc_uri,
            "device": device,
        }
    )


def fill_result(
    result: TaskResult, task: Task, run: GatePlay, baseline_uri: str | None, every_task_gated: bool = False
) -> None:
    """Write a played-out gate into the task's result."""
    from dataclasses import asdict

    from pytest_policyeval.gates.decide import gate_for
    from pytest_policyeval.redact import redact_uri

    decision, episodes = run.decision, run.episodes
    result.seeds = [e.seed for e in episodes]
    result.episode_scores = [e.score for e in episodes]
    result.episode_rewards = [e.rewards for e in episodes]
    result.episode_steps = [e.steps for e in episodes]
    result.episode_cached = [e.cached for e in episodes]
    result.num_episodes = len(episodes)
    result.episodes_run = run.episodes_run
    result.agent_steps = run.agent_steps
    all_rewards = [r for e in episodes for r in e.rewards]
    result.score = float(sum(all_rewards) / len(all_rewards)) if all_rewards else math.nan
    result.estimate = decision.estimate
    result.ci_low, result.ci_high = decision.low, decision.high
    result.interval_method, result.interval_level = decision.interval_method, decision.interval_level
    # How the suite shares its false-fail rate is part of the design: the task's beta is divided.
    result.design = {
        **asdict(run.design),
        "multiplicity": task.multiplicity,
        "gated_tasks": gated_tasks(task, every_task_gated),
        "suite_beta": task.settings.beta,
        "score_range": list(score_range(task) or ()) or None,
        "sequential": gate_for(task.settings.gate).sequential,  # its beta bounds a false fail
    }
    if result.design["sequential"] and run.design.threshold is not None:
        result.design["cap_risk"] = cap_risk(run.design, task.settings.inconclusive)
    result.reason = decision.reason
    result.evidence = {"pass": decision.evidence_pass, "fail": decision.evidence_fail}
    result.trace = decision.trace
    result.inconclusive = task.settings.inconclusive
    gate = gate_for(task.settings.gate)
    result.guarantee = guarantee_text(gate, run.design, run.baseline is not None, task.settings.inconclusive)
    if run.baseline is not None:
        result.baseline_uri = redact_uri(baseline_uri or "")
        result.baseline_episode_scores = [e.score for e in run.baseline]
        base = [r for e in run.baseline for r in e.rewards]
        result.baseline_score = float(sum(base) / len(base)) if base else math.nan
    result.outcome = decision.outcome
    result.passed = verdict(decision.outcome, task.settings.inconclusive)


def verdict(outcome: str | None, inconclusive: str) -> bool | None:
    """What an outcome counts as: pass True, fail False, inconclusive as configured (skip: None)."""
    if outcome is None:
        return None
    if outcome == "inconclusive":
        return {"fail": False, "pass": True, "skip": None}[inconclusive]
    return outcome == "pass"


def episode_check(task: Task) -> Any:
    """Whether a kept episode is one this task can produce: the seed of its index, one reward per
    agent the policy plays, steps within max_steps, a finite score inside the score range."""
    from pytest_policyeval.seeding import episode_seed
    from pytest_policyeval.task import scored_agents

    agents = scored_agents(task.settings.policy_agents_pct, num_agents(task))
    low, high = score_range(task) or (-math.inf, math.inf)

    def check(episode: Any) -> bool:
        if episode.index < 0 or episode.seed != episode_seed(task.seed, task.name, episode.index):
            return False
        if len(episode.rewards) != agents or not 1 <= episode.steps <= task.settings.max_steps:
            return False
        return math.isfinite(episode.score) and low <= episode.score <= high

    return check
