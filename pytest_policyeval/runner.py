"""Batched rollouts: every episode of a task steps in lockstep, one policy call per step.

Each step gathers the observations of every live agent of every live episode, makes a single
`Actor.act` call, writes the actions back and steps the engines. Episodes that end drop out of
the batch; their rewards are final. Nothing here depends on the engine beyond its protocol
(engines/base.py: `Engine.batch` and the `EpisodeBatch` it returns).

Mixed episodes: with `policy_agents_pct` below 1 some agents play an "npc" policy (one more
batched call per step). Only the policy's agents are scored. `policy_agents` decides which agents
those are so that no side of a map favours the policy: whole teams first, and the starting team
alternates with the episode index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pytest_policyeval import signals
from pytest_policyeval.engines import engine_for
from pytest_policyeval.policies.base import Policy
from pytest_policyeval.seeding import episode_seed, slot_seeds
from pytest_policyeval.task import Task, scored_agents


class TaskTimeout(RuntimeError):
    """A task ran past its `max_time_s`."""


def policy_agents(teams: Sequence[int], share: float, episode: int, count: int | None = None) -> np.ndarray:
    """Boolean mask over an episode's `count` agents (default: one per team entry): True where the
    policy under test plays. Agents without a team entry are of team 0."""
    count = len(teams) if count is None else count
    wanted = scored_agents(share, count)
    team_ids = sorted(set(teams)) or [0]
    start = episode % len(team_ids)
    order = [
        agent
        for team in team_ids[start:] + team_ids[:start]
        for agent in range(count)
        if (teams[agent] if agent < len(teams) else 0) == team
    ]
    chosen = order[:wanted]
    mask = np.zeros(count, dtype=bool)
    mask[chosen] = True
    return mask


@dataclass
class EpisodeResult:
    index: int
    seed: int
    rewards: list[float]  # one per scored agent (the policy's)
    steps: int
    policy_agents: list[int]  # the agents the policy under test played (the rest: the npc)
    replay: dict | None = None  # the engine's replay, for recorded episodes

    @property
    def score(self) -> float:
        return float(np.mean(self.rewards)) if self.rewards else float("nan")


@dataclass
class Rollout:
    task: Task
    episodes: list[EpisodeResult]
    wall_time_s: float
    agent_steps: int
    policy_time_s: float
    started: float = 0.0  # the `clock` reading the task's time budget counted from


def play_episodes(
    task: Task,
    policy: Policy,
    device: str = "cpu",
    *,
    npc: Policy | None = None,
    record: int = 0,
    clock: Callable[[], float] = time.perf_counter,
    progress: Callable[[int, int, int], None] | None = None,
    indices: Sequence[int] | None = None,
    started: float | None = None,
) -> Rollout:
    """Episodes of `task` (by default its first num_episodes; else those `indices`), all in one
    batch; `npc` plays the agents the policy does not (policy_agents_pct < 1).

    Episode i always has the same seed and the same agents for the policy, whatever batch it runs
    in. Episodes with an index below `record` also record a replay (recording changes no result).
    `progress` is called after every step with (episodes finished, episodes, steps taken).
    `started` (a `clock` reading) is when the task began, for `max_time_s` over several rounds.
    """
    settings = task.settings
    indices = list(range(settings.num_episodes)) if indices is None else list(indices)
    seeds = [episode_seed(task.seed, task.name, i) for i in indices]
    engine = engine_for(task)
    engine.spec(task)  # the engine's first import and set-up do not count against max_time_s
    start = clock()
    started = start if started is None else started
    deadline = started + settings.max_time_s
    batch = engine.batch(task, seeds, record=[k for k, i in enumerate(indices) if i < record])
    try:
        agents = batch.spec.num_agents
        scored = np.concatenate(
            [policy_agents(batch.spec.agent_teams, settings.policy_agents_pct, i, agents) for i in indices]
        )
        actors = [(policy.actor(batch.spec, device), scored)]
        if scored.all() and settings.policy_agents_pct < 1 and npc is not None:
            # The npc would be named in every output without playing a step.
            raise ValueError(
                f"task {task.name} gives the policy {settings.policy_agents_pct:g} of {agents} agent(s), "
                "which leaves the npc policy none (policy_agents_pct rounds down, at least one agent)"
            )
        if not scored.all():
            if npc is None:
                raise ValueError(
                    f"task {task.name} gives the policy {settings.policy_agents_pct:.0%} of the agents "
                    "but names no npc policy for the rest (npc_policy_uri in the suite, or --npc-policy-uri)"
                )
            actors.append((npc.actor(batch.spec, device), ~scored))
        for actor, _ in actors:
            actor.reset(slot_seeds(seeds, agents))
        live = list(range(len(seeds)))
        rows = np.arange(len(seeds) * agents)

        def scored_in(episode: int) -> np.ndarray:
            return scored[episode * agents : (episode + 1) * agents]

        results: dict[int, EpisodeResult] = {}
        agent_steps = 0
        policy_time = 0.0
        step = 0
        while live:
            signals.stop_if_signalled()  # a Ctrl-C an engine or a policy swallowed
            if clock() > deadline:
                raise TaskTimeout(
                    f"task {task.name} ran past max_time_s={settings.max_time_s:g}s at step {step} "
                    f"with {len(live)} of {len(seeds)} episodes unfinished"
                )
            observations = (
                batch.observations if len(rows) == len(batch.observations) else batch.observations[rows]
            )
            tick = clock()
            if len(actors) == 1:
                batch.actions[rows] = actors[0][0].act(observations, rows, step)
            else:
                for actor, mine in actors:
                    pick = mine[rows]
                    if pick.any():
                        batch.actions[rows[pick]] = actor.act(observations[pick], rows[pick], step)
            policy_time += clock() - tick
            agent_steps += len(rows)
            ended = batch.step(live)
            for actor, mine in actors:
                rewarded = getattr(actor, "rewarded", None)  # optional: duck-typed actors may lack it
                if rewarded is not None:
                    pick = rows[mine[rows]]
                    rewarded(batch.rewards[pick], pick)
            step += 1
            if ended:
                for episode in ended:
                    rewards = np.asarray(batch.episode_rewards(episode), dtype=np.float64)
                    mine = rewards[scored_in(episode)]
                    if not np.all(np.isfinite(rewards)):
                        # Kept, as NaN: the gate, which sees episodes in index order, makes it the
                        # task's error unless it had decided before this episode (as for a score
                        # outside the range), so where rounds end never matters. An npc's NaN
                        # counts too: the environment that returned it is not to be trusted.
                        mine = np.full(mine.shape, np.nan)
                    results[episode] = EpisodeResult(
                        index=indices[episode],
                        seed=seeds[episode],
                        rewards=mine.tolist(),
                        steps=batch.episode_steps(episode),
                        policy_agents=np.flatnonzero(scored_in(episode)).tolist(),
                        replay=batch.replay(episode),
                    )
                finished = set(ended)
                live = [episode for episode in live if episode not in finished]
                rows = (np.asarray(live, dtype=np.int64)[:, None] * agents + np.arange(agents)).ravel()
            if progress is not None:
                progress(len(seeds) - len(live), len(seeds), step)
    finally:
        batch.close()
    return Rollout(
        task=task,
        episodes=[results[i] for i in range(len(seeds))],
        wall_time_s=clock() - start,
        agent_steps=agent_steps,
        policy_time_s=policy_time,
        started=started,
    )
