"""The runner: one batched policy call per step covering every live agent, time limits, light imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_suite

from pytest_policyeval.collection.suite import load_suite
from pytest_policyeval.policies.base import Actor, Policy
from pytest_policyeval.policies.random_policy import RandomActor
from pytest_policyeval.runner import TaskTimeout, play_episodes
from pytest_policyeval.spec import EnvSpec

SUITE = """
name: r
defaults: {num_episodes: 5, max_steps: 40}
tasks:
  - {name: nav/coin, map: maps/coin.map}
  - {name: nav/duo, map: maps/duo.map}
"""
MAPS = {"coin": "#########\n#_..@...#\n#########", "duo": "#######\n#@...@#\n#..._.#\n#######"}


class Recording(Policy):
    """Random actions, recording every call the runner makes."""

    def __init__(self) -> None:
        self.uri, self.name, self.calls = "test://recording", "recording", []

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        policy = self

        class _Actor(RandomActor):
            def act(self, observations, slots, step):
                policy.calls.append((step, observations.shape, np.asarray(slots).copy()))
                return super().act(observations, slots, step)

        return _Actor(len(env.action_names))


@pytest.fixture
def tasks(tmp_path: Path):
    return load_suite(write_suite(tmp_path, SUITE, maps=MAPS)).tasks


def test_one_call_per_step_for_all_live_agents(tasks) -> None:
    policy = Recording()
    rollout = play_episodes(tasks[1], policy)  # 2 agents x 5 episodes
    steps = [call[0] for call in policy.calls]
    assert steps == list(range(len(steps)))  # exactly one call per step
    assert policy.calls[0][1][0] == 10  # every agent of every episode in the first call
    longest = max(e.steps for e in rollout.episodes)
    assert len(steps) == longest
    for step, shape, slots in policy.calls:
        live = [e.index for e in rollout.episodes if e.steps > step]
        expected = [e * 2 + a for e in live for a in range(2)]
        assert slots.tolist() == expected and shape[0] == len(expected)
    assert rollout.agent_steps == sum(2 * e.steps for e in rollout.episodes)


def test_episode_rewards_are_per_agent(tasks) -> None:
    rollout = play_episodes(tasks[1], Recording())
    assert all(len(e.rewards) == 2 for e in rollout.episodes)


def test_time_limit_turns_a_hung_task_into_a_clear_error(tasks) -> None:
    ticks = iter(range(10_000))
    task = tasks[0].with_settings(max_time_s=3.0)
    with pytest.raises(TaskTimeout, match=r"nav/coin ran past max_time_s=3s at step \d+"):
        play_episodes(task, Recording(), clock=lambda: float(next(ticks)))


def test_importing_the_plugin_stays_light() -> None:
    heavy = ("torch", "mettagrid", "wandb", "boto3", "scipy", "pydantic")
    code = f"import sys, pytest_policyeval.plugin; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
