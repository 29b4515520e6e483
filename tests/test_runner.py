"""The runner: one batched policy call per step covering every live agent, time limits, light imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import task_details, write_suite

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
    heavy = ("torch", "mettagrid", "wandb", "boto3", "scipy", "pydantic", "ray")
    code = f"import sys, pytest_policyeval.plugin; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


NAN_ENV = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Flaky(gym.Env):
    """Rewards 1 a step; its fourth step's reward is NaN when constructed with nan=True."""

    observation_space = spaces.Box(-1, 1, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, nan=False):
        self.nan = nan

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float("nan") if self.nan and self.t == 4 else 1.0
        return np.zeros(2, np.float32), reward, self.t >= 6, False, {}


gym.register("PolicyevalFlaky-v0", entry_point=Flaky, max_episode_steps=10)
'''
NAN_SUITE = """
name: flaky
defaults: {engine: gymnasium, env: PolicyevalFlaky-v0, num_episodes: 3, max_steps: 10, gate: mean}
tasks:
  - {name: t/fine, threshold: 5}
  - {name: t/nan, env_kwargs: {nan: true}, threshold: 5}
  - {name: t/ungated, env_kwargs: {nan: true}}
"""


def test_a_nan_reward_is_the_tasks_error_and_every_other_result_is_written(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(NAN_ENV)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites/flaky.yaml").write_text(NAN_SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", "random://", "--eval-json", "r.json"
    )
    result.assert_outcomes(passed=1, failed=2)
    details = {task: detail for (task, _), detail in task_details(pytester.path / "r.json").items()}
    # With no gate to hold it to a range, a NaN is still no score (and the file is still written).
    assert details["t/ungated"]["error"].startswith("RangeError: episode 0: score is nan")
    assert details["t/fine"]["error"] is None and details["t/fine"]["episode_scores"] == [6.0] * 3
    assert details["t/nan"]["error"].startswith("RangeError: episode 0: score is nan, not a finite number")
    assert "the environment returned a NaN or infinite reward" in details["t/nan"]["error"]
    assert details["t/nan"]["passed"] is None and details["t/nan"]["episode_scores"] == []


LATE_NAN_ENV = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Late(gym.Env):
    """Rewards 1 a step for 6 steps; NaN on the third step of the episode seeded `bad_seed`."""

    observation_space = spaces.Box(-1, 1, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, bad_seed=-1):
        self.bad_seed = bad_seed

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.bad = 0, seed == self.bad_seed
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float("nan") if self.bad and self.t == 3 else 1.0
        return np.zeros(2, np.float32), reward, self.t >= 6, False, {}


gym.register("PolicyevalLate-v0", entry_point=Late, max_episode_steps=10)
'''


@pytest.mark.parametrize(("episode", "error"), [(9, False), (2, True)])
def test_a_nan_reward_after_the_sequential_gate_decided_leaves_the_decision(
    pytester: pytest.Pytester, episode: int, error: bool
) -> None:
    # Scores of 6 on [0, 10] pass a threshold of 3 within the first round of 10 episodes; a NaN
    # in that round after the decision is never used, as a score outside the range would not be.
    from pytest_policyeval.seeding import episode_seed

    pytester.makeconftest(LATE_NAN_ENV)
    bad_seed = episode_seed(0, "v/late", episode)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites/late.yaml").write_text(
        "name: late\nseed: 0\n"
        "defaults: {engine: gymnasium, env: PolicyevalLate-v0, num_episodes: 10, max_steps: 10}\n"
        "tasks:\n  - {name: v/late, score_range: [0, 10], threshold: 3, "
        f"env_kwargs: {{bad_seed: {bad_seed}}}}}\n"
    )
    pytester.runpytest_subprocess("-p", "no:importnb", "--policy-uri", "random://", "--eval-json", "r.json")
    (detail,) = task_details(pytester.path / "r.json").values()
    if error:
        assert detail["error"].startswith(f"RangeError: episode {episode}: score is nan, not a finite number")
    else:
        assert detail["error"] is None and detail["outcome"] == "pass"
        assert episode >= detail["num_episodes"] and set(detail["episode_scores"]) == {6.0}
