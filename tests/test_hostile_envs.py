"""Environments that break their own API: each is one short error naming the environment and what
it returned, as the task's error, and every other task keeps its result."""

from __future__ import annotations

import json

import pytest
from helpers import task_details, write_suite

ENVS = """
import gymnasium as gym
import numpy as np


class Base(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def observe(self):
        return np.zeros(3, np.float32)

    def reward(self):
        return 1.0

    def step(self, action):
        self.t += 1
        return self.observe(), self.reward(), self.t >= 3, False, {}


class ShortObs(Base):
    def observe(self):
        return np.zeros(1, np.float32) if self.t >= 2 else np.zeros(3, np.float32)


class NanObs(Base):
    def observe(self):
        return np.array([0.0, np.nan, 0.0], np.float32)


class OldReset(Base):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, seed=None, options=None):
        return np.zeros(2, np.float32)  # gym < 0.26: no info


class FourTuple(Base):
    def step(self, action):
        return self.observe(), 1.0, True, {}


class TextReward(Base):
    def reward(self):
        return "1.0"


class Huge(Base):
    def reward(self):
        return 1e308

    def step(self, action):
        return self.observe(), self.reward(), True, False, {}


for name in ("ShortObs", "NanObs", "OldReset", "FourTuple", "TextReward", "Huge"):
    gym.register(f"Hostile{name}-v0", entry_point=f"hostile_envs:{name}", max_episode_steps=10,
                 disable_env_checker=True)
"""

SUITE = """
name: hostile
defaults: {engine: gymnasium, num_episodes: 4, max_steps: 10, gate: mean}
tasks:
  - {name: h/short, env: HostileShortObs-v0}
  - {name: h/nan, env: HostileNanObs-v0}
  - {name: h/old_reset, env: HostileOldReset-v0}
  - {name: h/four, env: HostileFourTuple-v0}
  - {name: h/text, env: HostileTextReward-v0}
  - {name: h/huge, env: HostileHuge-v0, threshold: 0}
  - {name: h/fine, env: CartPole-v1, max_steps: 20}
"""

EXPECTED = {
    "h/short": "environment 'HostileShortObs-v0': step() returned an observation of shape (1,), not its "
    "observation space's (3,)",
    "h/nan": "environment 'HostileNanObs-v0': step() returned a non-finite observation value (nan)",
    "h/old_reset": "environment 'HostileOldReset-v0': reset() returned a ndarray, not (observation, info)",
    "h/four": "environment 'HostileFourTuple-v0': step() did not return (observation, reward, "
    "terminated, truncated, info)",
    "h/text": "environment 'HostileTextReward-v0': step() returned a reward that is not a number: '1.0'",
    "h/huge": "the task's score overflows to infinity: episode scores as large as 1e+308 cannot be averaged",
}


def test_each_broken_environment_is_its_tasks_error_and_the_rest_is_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(hostile_envs=ENVS)
    pytester.makeconftest(
        "import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\nimport hostile_envs\n"
    )
    write_suite(pytester.path, SUITE)
    run = pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", "random://", "--eval-json", "r.json", "--no-eval-cache"
    )
    run.assert_outcomes(failed=6, passed=1)
    details = {task: detail for (task, _), detail in task_details(pytester.path / "r.json").items()}
    for task, message in EXPECTED.items():
        assert message in details[task]["error"], (task, details[task]["error"])
        assert details[task]["passed"] is None  # an error passes nothing
    assert details["h/fine"]["error"] is None and details["h/fine"]["num_episodes"] == 4
    document = json.loads((pytester.path / "r.json").read_text())
    assert document["passed"] is False
    assert "Traceback" not in run.stdout.str()


def test_a_reward_is_any_one_number_and_nothing_else() -> None:
    import numpy as np
    import torch

    from pytest_policyeval.engines.base import EnvironmentContractError, checked_reward

    for one in (
        1,
        1.5,
        True,
        np.float32(2),
        np.array(3.0),
        np.array([4.0]),
        torch.tensor(5.0),
        torch.tensor([6.0]),
    ):
        assert checked_reward(one, "env") == float(
            np.asarray(one).item() if not isinstance(one, torch.Tensor) else one.item()
        )
    for bad in ("1.0", None, np.array([1.0, 2.0]), torch.tensor([1.0, 2.0]), object()):
        with pytest.raises(EnvironmentContractError, match="env returned a reward that is not a number"):
            checked_reward(bad, "env")
