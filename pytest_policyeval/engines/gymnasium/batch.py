"""Episodes of one gymnasium task in lockstep: one environment per episode, stepped in a Python loop.

Each episode has its own environment, reset with its own seed, so its course depends on its seed
and its actions alone, never on what else shares the batch. Returns are summed in float64 the way
`total += float(reward)` does over a plain reset/step loop (Stable-Baselines3's Monitor sums the
same float(reward)s).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from pytest_policyeval.engines.base import (
    EnvironmentContractError,
    checked_observation,
    checked_reward,
    finite_rows,
)
from pytest_policyeval.engines.gymnasium.envs import make_env, task_spec
from pytest_policyeval.task import Task


class GymnasiumBatch:
    """Episode `e` is row `e` of `observations`, `actions` and `rewards` (one agent per episode)."""

    def __init__(self, task: Task, seeds: Sequence[int], record: Sequence[int] = ()) -> None:
        self.spec = task_spec(task)
        self._task_name = task.name
        self._max_steps = task.settings.max_steps
        observation_space, action_space = self.spec.observation_space, self.spec.action_space
        count = len(seeds)
        self.observations = np.zeros((count, *observation_space.shape), dtype=observation_space.dtype)
        self.actions = np.zeros((count, *action_space.shape), dtype=action_space.dtype)
        self.rewards = np.zeros(count, dtype=np.float64)
        self._returns = [0.0] * count
        self._steps = [0] * count
        self._bounds = _action_bounds(action_space)
        self._envs: list[Any] = []
        self._where = f"environment '{task.env.env}'"
        self._at_step = f"{self._where}: step()"  # made once: step() runs per episode per step
        self._shape = tuple(observation_space.shape)
        try:
            for episode, seed in enumerate(seeds):
                env = make_env(task.env)
                self._envs.append(env)
                answer = env.reset(seed=int(seed))
                if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[1], dict)):
                    raise EnvironmentContractError(
                        f"{self._where}: reset() returned {_shape_of(answer)}, not (observation, info) "
                        "(the gymnasium >= 0.26 API)"
                    )
                self.observations[episode] = checked_observation(
                    answer[0], self._shape, f"{self._where}: reset()"
                )
        except BaseException:
            self.close()
            raise

    def _actions(self, episodes: Sequence[int]) -> np.ndarray:
        """These episodes' actions as their envs take them, checked once for the whole step."""
        actions = self.actions[np.asarray(episodes, dtype=np.int64)]  # a copy: the envs keep theirs
        if self._bounds is None:
            return actions
        low, high, discrete = self._bounds
        rows = actions.reshape(len(episodes), -1)
        if discrete:
            bad = np.flatnonzero(((actions < low) | (actions > high)).reshape(len(episodes), -1).any(axis=1))
            if bad.size:
                raise ValueError(
                    f"task {self._task_name}: the policy's action {rows[bad[0]].tolist()} is outside "
                    f"the action space {self.spec.action_space}"
                )
            return actions
        bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
        if bad.size:
            raise ValueError(
                f"task {self._task_name}: the policy's action {rows[bad[0]].tolist()} is not finite"
            )
        # As Stable-Baselines3's predict does; the engine's score bounds assume it
        # (MountainCarContinuous charges for the action as given).
        return np.clip(actions, low, high)

    def step(self, episodes: Sequence[int]) -> list[int]:
        ended = []
        actions = self._actions(episodes)
        for k, episode in enumerate(episodes):
            # A Discrete action is a scalar, any other one an array of its own.
            try:
                answer = self._envs[episode].step(actions[k])
            except ValueError as exc:  # a wrapper (TimeLimit) unpacking an old-API 4-tuple
                if "values to unpack" not in str(exc):
                    raise
                raise EnvironmentContractError(
                    f"{self._where}: step() did not return (observation, reward, terminated, "
                    f"truncated, info) (the gymnasium >= 0.26 API): {exc}"
                ) from None
            if not (isinstance(answer, tuple) and len(answer) == 5):
                raise EnvironmentContractError(
                    f"{self._where}: step() returned {_shape_of(answer)}, not (observation, reward, "
                    "terminated, truncated, info) (the gymnasium >= 0.26 API)"
                )
            observation, reward, terminated, truncated, _ = answer
            self.observations[episode] = checked_observation(
                observation, self._shape, self._at_step, finite=False
            )
            reward = checked_reward(reward, self._at_step)
            self.rewards[episode] = reward
            self._returns[episode] += reward
            self._steps[episode] += 1
            # truncated: the env's own TimeLimit; max_steps: the task's, when it is shorter.
            if terminated or truncated or self._steps[episode] >= self._max_steps:
                ended.append(episode)
        finite_rows(self.observations[np.asarray(episodes, dtype=np.int64)], self._at_step)
        return ended

    def episode_rewards(self, episode: int) -> np.ndarray:
        return np.array([self._returns[episode]], dtype=np.float64)

    def episode_steps(self, episode: int) -> int:
        return self._steps[episode]

    def replay(self, episode: int) -> dict[str, Any] | None:
        return None  # gymnasium has no replay format of its own

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs.clear()


def _shape_of(answer: Any) -> str:
    """What reset/step returned, in a few words: '4 values', 'a ndarray'."""
    if isinstance(answer, tuple):
        return f"{len(answer)} values"
    return f"a {type(answer).__name__}"


def _action_bounds(space: Any) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(low, high, discrete) that every action must lie in (discrete) or is clipped to (Box)."""
    if isinstance(space, spaces.Discrete):
        return np.asarray(space.start), np.asarray(space.start + space.n - 1), True
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start), np.asarray(space.start + space.nvec - 1), True
    if isinstance(space, spaces.MultiBinary):
        return np.zeros(space.shape, dtype=np.int8), np.ones(space.shape, dtype=np.int8), True
    if isinstance(space, spaces.Box):
        return np.asarray(space.low), np.asarray(space.high), False
    return None
