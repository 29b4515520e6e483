"""Batched rollouts: every episode of a task steps in lockstep, one policy call per step.

Each step gathers the observations of every live agent of every live episode, makes a single
`Actor.act` call, writes the actions back and steps the engines. Episodes that end drop out of
the batch; their rewards are final. Nothing here depends on the engine beyond `EpisodeBatch`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pytest_policyeval.collection.suite import Task
from pytest_policyeval.policies.base import Policy
from pytest_policyeval.seeding import episode_seed, slot_seeds


class TaskTimeout(RuntimeError):
    """A task ran past its `max_time_s`."""


@dataclass
class EpisodeResult:
    index: int
    seed: int
    rewards: list[float]  # one per scored agent
    steps: int

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


def run_task(
    task: Task,
    policy: Policy,
    device: str = "cpu",
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> Rollout:
    from pytest_policyeval.envs.mettagrid_env import EpisodeBatch

    settings = task.settings
    seeds = [episode_seed(task.seed, task.name, i) for i in range(settings.num_episodes)]
    start = clock()
    batch = EpisodeBatch(task, seeds)
    try:
        agents = batch.spec.num_agents
        actor = policy.actor(batch.spec, device)
        actor.reset(slot_seeds(seeds, agents))
        live = list(range(len(seeds)))
        rows = np.arange(len(seeds) * agents)
        results: dict[int, EpisodeResult] = {}
        agent_steps = 0
        policy_time = 0.0
        step = 0
        while live:
            if clock() - start > settings.max_time_s:
                raise TaskTimeout(
                    f"task {task.name} ran past max_time_s={settings.max_time_s:g}s at step {step} "
                    f"with {len(live)} of {len(seeds)} episodes unfinished"
                )
            observations = (
                batch.observations if len(rows) == len(batch.observations) else batch.observations[rows]
            )
            tick = clock()
            batch.actions[rows] = actor.act(observations, rows, step)
            policy_time += clock() - tick
            agent_steps += len(rows)
            ended = batch.step(live)
            step += 1
            if ended:
                for episode in ended:
                    results[episode] = EpisodeResult(
                        index=episode,
                        seed=seeds[episode],
                        rewards=batch.episode_rewards(episode).tolist(),
                        steps=batch.episode_steps(episode),
                    )
                finished = set(ended)
                live = [episode for episode in live if episode not in finished]
                rows = (np.asarray(live, dtype=np.int64)[:, None] * agents + np.arange(agents)).ravel()
    finally:
        batch.close()
    return Rollout(
        task=task,
        episodes=[results[i] for i in range(len(seeds))],
        wall_time_s=clock() - start,
        agent_steps=agent_steps,
        policy_time_s=policy_time,
    )
