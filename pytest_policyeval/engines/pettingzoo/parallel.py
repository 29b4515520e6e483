"""PettingZoo environments themselves: the only module of the engine that imports one.

A task's environment module is imported only after its name passed the allow-list (settings.py),
and only through `environment_module`. `layout` builds one environment to read its agents and
spaces (cached per environment and step budget); `ParallelBatch` plays many episodes of it side by
side, one `parallel_env` per episode, over shared arrays.

Rows are agents in `possible_agents` order. An agent that leaves the episode early (terminated or
truncated while others play on) keeps its last observation; its actions are ignored and it gets no
reward after. An episode ends when no agent is left or after the task's `max_steps` steps.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from pytest_policyeval.engines.base import EngineError, checked_observation, checked_reward
from pytest_policyeval.engines.pettingzoo.settings import ENV_PATTERN, FAMILIES, PettingZooSettings
from pytest_policyeval.spec import EnvSpec
from pytest_policyeval.task import Task

# pygame (MPE's and butterfly's renderer) greets on import; an evaluation's output stays quiet.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

ACTION_KINDS = ("Discrete", "MultiDiscrete", "Box")
OBSERVATION_KINDS = ("Box", "Discrete", "MultiDiscrete", "MultiBinary")
PETTINGZOO_HINT = "pip install 'pytest-policyeval[pettingzoo]'"


@dataclass(frozen=True, kw_only=True)
class PettingZooSpec(EnvSpec):
    """An `EnvSpec` that also gives every agent's own observation space.

    `observation_space` is the space of the batch's rows. Where agents observe differently sized
    flat vectors and the task sets `pad_observations`, rows are the longest size and agent `a`'s
    own observation is `row[:observation_sizes[a]]`, zeros after it; otherwise `observation_sizes`
    is empty and every agent's space is `observation_space`.
    """

    agent_observation_spaces: tuple[Any, ...] = ()
    observation_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Layout:
    """What one task's batches are built from."""

    spec: PettingZooSpec
    make: Callable[[], Any]  # a fresh parallel_env
    agents: tuple[Any, ...]  # possible_agents, the environment's own ids, in row order
    observation_shape: tuple[int, ...]
    observation_dtype: np.dtype
    action_shape: tuple[int, ...]
    action_dtype: np.dtype
    discrete_actions: tuple[int, int] | None  # (start, n) for Discrete actions


def environment_module(settings: PettingZooSettings) -> ModuleType:
    """The environment module a task names, imported only if its name is on the allow-list."""
    match = ENV_PATTERN.match(settings.env)
    if match is None:  # the settings model refuses these already; never import on a bad name
        raise EngineError(f"key 'env': {settings.env[:120]!r} is not an allow-listed environment")
    family = match["family"]
    hint = FAMILIES[family]
    top = family.split(".")[0]
    if top != "pettingzoo" and importlib.util.find_spec("pettingzoo") is None:
        raise EngineError(f"key 'env': {settings.env} needs pettingzoo, not installed ({PETTINGZOO_HINT})")
    if importlib.util.find_spec(top) is None:
        raise EngineError(
            f"key 'env': {settings.env} needs {top}, not installed "
            f"({PETTINGZOO_HINT if top == 'pettingzoo' else hint})"
        )
    try:
        # Imports the family's package (known code), not the module: does the environment exist?
        found = importlib.util.find_spec(settings.env)
    except ImportError as exc:
        raise EngineError(f"key 'env': {settings.env}: cannot import {family}: {exc} ({hint})") from None
    if found is None:
        raise EngineError(f"key 'env': {family} has no environment '{match['module']}'")
    try:
        module = importlib.import_module(settings.env)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)[:120]
        raise EngineError(f"key 'env': {settings.env} needs {missing}, not installed ({hint})") from None
    except Exception as exc:  # a family's own dependency check (gymnasium's DependencyNotInstalled)
        raise EngineError(
            f"key 'env': importing {settings.env} failed: {type(exc).__name__}: {str(exc)[:200]} ({hint})"
        ) from None
    if not callable(getattr(module, "parallel_env", None)):
        raise EngineError(f"key 'env': {settings.env} has no parallel API (parallel_env); only those play")
    return module


def _constructor_kwargs(module: ModuleType, settings: PettingZooSettings, max_steps: int) -> dict[str, Any]:
    """The suite's arguments, checked by name against the constructor, plus the step budget."""
    kwargs: dict[str, Any] = settings.kwargs()
    # parallel_env(**kwargs) hides the signature; the underlying class, where there is one, shows it.
    target = getattr(module, "raw_env", None) or module.parallel_env
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return kwargs
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not open_ended:
        accepted = sorted(name for name in parameters if name not in ("self", "render_mode", "max_cycles"))
        for name in kwargs:
            if name not in parameters or name == "self":
                raise EngineError(
                    f"key 'env_kwargs.{name}': not an argument of {settings.env} (it takes: {accepted})"
                )
    if "max_cycles" in parameters:
        # The environment's own episode limit is the task's, so both end an episode at one step.
        kwargs["max_cycles"] = max_steps
    return kwargs


def _space_kind(space: Any) -> str:
    return type(space).__name__


def _team_ids(names: Sequence[str], settings: PettingZooSettings) -> tuple[int, ...]:
    if settings.teams is not None:
        teams = []
        for name in names:
            team = next((i for i, prefix in enumerate(settings.teams) if name.startswith(prefix)), None)
            if team is None:
                raise EngineError(
                    f"key 'teams': agent '{name}' matches none of the prefixes {list(settings.teams)}"
                )
            teams.append(team)
        return tuple(teams)
    # Default: "adversary_0" and "adversary_1" are one team, "agent_0" another, by first appearance.
    order: dict[str, int] = {}
    return tuple(order.setdefault(re.sub(r"_?\d+$", "", name), len(order)) for name in names)


def _observation_layout(
    env_name: str, names: Sequence[str], spaces_: Sequence[Any], pad: bool
) -> tuple[Any, tuple[int, ...], np.dtype, tuple[int, ...]]:
    """The rows' observation space, shape and dtype, and each agent's size where padded."""
    from gymnasium import spaces

    for name, space in zip(names, spaces_, strict=True):
        if _space_kind(space) not in OBSERVATION_KINDS:
            raise EngineError(
                f"key 'env': {env_name}: agent '{name}' observes {space}; the engine batches only "
                f"{'/'.join(OBSERVATION_KINDS)} observations"
            )
    first = spaces_[0]
    if all(space == first and space.dtype == first.dtype for space in spaces_):
        shape = tuple(first.shape) if first.shape is not None else ()
        return first, shape, np.dtype(first.dtype), ()
    flat = all(_space_kind(s) == "Box" and len(s.shape) == 1 for s in spaces_)
    described = ", ".join(f"{name}: {space}" for name, space in list(zip(names, spaces_, strict=True))[:6])
    if not pad or not flat:
        advice = (
            "set pad_observations: true to zero-pad them to the longest"
            if flat
            else "only flat (1-D Box) observations can be padded"
        )
        raise EngineError(
            f"key '{'pad_observations' if flat else 'env'}': the agents of {env_name} observe different "
            f"spaces ({described}) and one batch holds them all: {advice}"
        )
    sizes = tuple(int(s.shape[0]) for s in spaces_)
    width = max(sizes)
    dtype = np.result_type(*(s.dtype for s in spaces_))
    # Each bound covers every agent's value at that position, and the zeros of the padding.
    low = np.min(
        [np.concatenate([s.low.astype(dtype), np.zeros(width - len(s.low), dtype)]) for s in spaces_], 0
    )
    high = np.max(
        [np.concatenate([s.high.astype(dtype), np.zeros(width - len(s.high), dtype)]) for s in spaces_], 0
    )
    return spaces.Box(low=low, high=high, shape=(width,), dtype=dtype), (width,), np.dtype(dtype), sizes


def _action_layout(
    env_name: str, names: Sequence[str], spaces_: Sequence[Any]
) -> tuple[tuple[int, ...], np.dtype, tuple[int, int] | None]:
    first = spaces_[0]
    if _space_kind(first) not in ACTION_KINDS:
        raise EngineError(
            f"key 'env': {env_name}: actions are {first}; the engine plays {'/'.join(ACTION_KINDS)} actions"
        )
    for name, space in zip(names, spaces_, strict=True):
        # An action row cannot be padded: what a policy draws must be valid for every agent it plays.
        if not (space == first and space.dtype == first.dtype):
            raise EngineError(
                f"key 'env': {env_name}: agent '{name}' acts in {space}, agent '{names[0]}' in {first}; "
                "the engine plays environments whose agents share one action space"
            )
    kind = _space_kind(first)
    if kind == "Discrete":
        return (), np.dtype(np.int64), (int(first.start), int(first.n))
    if kind == "MultiDiscrete":
        return tuple(first.shape), np.dtype(np.int64), None
    return tuple(first.shape), np.dtype(first.dtype), None


@lru_cache(maxsize=32)
def layout(settings: PettingZooSettings, max_steps: int) -> Layout:
    """Build one environment of the task to read its agents and spaces; EngineError if unplayable."""
    module = environment_module(settings)
    kwargs = _constructor_kwargs(module, settings, max_steps)

    def make() -> Any:
        return module.parallel_env(**kwargs)

    try:
        env = make()
    except Exception as exc:  # the environment's own argument checks (asserts, ValueErrors)
        detail = f"{type(exc).__name__}: {str(exc)[:200]}".rstrip(": ")
        raise EngineError(f"key 'env_kwargs': {settings.env} refused them: {detail}") from None
    try:
        agents = tuple(env.possible_agents)
        if not agents:
            raise EngineError(f"key 'env': {settings.env} has no agents")
        names = tuple(str(agent) for agent in agents)
        observation_spaces = tuple(env.observation_space(agent) for agent in agents)
        action_spaces = tuple(env.action_space(agent) for agent in agents)
    finally:
        env.close()
    row_space, obs_shape, obs_dtype, sizes = _observation_layout(
        settings.env, names, observation_spaces, settings.pad_observations
    )
    act_shape, act_dtype, discrete = _action_layout(settings.env, names, action_spaces)
    spec = PettingZooSpec(
        engine="pettingzoo",
        num_agents=len(agents),
        max_steps=max_steps,
        observation_space=row_space,
        action_space=action_spaces[0],
        env_id=settings.env,
        agent_names=names,
        agent_teams=_team_ids(names, settings),
        agent_observation_spaces=observation_spaces,
        observation_sizes=sizes,
    )
    return Layout(spec, make, agents, obs_shape, obs_dtype, act_shape, act_dtype, discrete)


def task_layout(task: Task) -> Layout:
    return layout(task.env, task.settings.max_steps)


class ParallelBatch:
    """Episodes of one task, one `parallel_env` each, stepped in lockstep over shared arrays.

    Agent `a` of episode `e` is row `e * num_agents + a`. Each environment is reset with its
    episode's seed and nothing else is shared between them, so an episode plays the same whatever
    else is in the batch.
    """

    def __init__(self, task: Task, seeds: Sequence[int], record: Sequence[int] = ()):
        found = task_layout(task)
        self._layout = found
        self.spec: PettingZooSpec = found.spec
        agents = self.spec.num_agents
        rows = len(seeds) * agents
        self.observations = np.zeros((rows, *found.observation_shape), dtype=found.observation_dtype)
        self.actions = np.zeros((rows, *found.action_shape), dtype=found.action_dtype)
        self.rewards = np.zeros(rows, dtype=np.float64)
        self._totals = np.zeros((len(seeds), agents), dtype=np.float64)
        self._steps = np.zeros(len(seeds), dtype=np.int64)
        self._max_steps = task.settings.max_steps
        self._index = {agent: i for i, agent in enumerate(found.agents)}
        self._sizes = self.spec.observation_sizes
        # What an error names, made once: they are passed on every step for every agent.
        self._said = {
            (agent, where): f"environment '{self.spec.env_id}': {where} for agent '{agent}'"
            for agent in found.agents
            for where in ("reset()", "step()")
        }
        self._envs: list[Any] = []
        try:
            for episode, seed in enumerate(seeds):
                env = found.make()
                self._envs.append(env)
                observations, _ = env.reset(seed=int(seed))
                self._write(episode, observations)
        except BaseException:  # the environments already made are closed, not leaked
            self.close()
            raise

    def _write(self, episode: int, observations: dict[Any, Any], where: str = "reset()") -> None:
        base = episode * self.spec.num_agents
        for agent, observation in observations.items():
            index = self._index[agent]
            said = self._said[agent, where]
            if self._sizes:  # agents' observations differ in size: each fills the front of its row
                flat = np.asarray(observation).ravel()
                row = checked_observation(flat, (self._sizes[index],), said)
                self.observations[base + index, : self._sizes[index]] = row
            else:
                self.observations[base + index] = checked_observation(
                    observation, self.observations.shape[1:], said
                )

    def _action(self, row: int, agent: Any) -> Any:
        value = self.actions[row]
        if self._layout.discrete_actions is None:
            space = self.spec.action_space
            if not np.all(np.isfinite(value)):
                raise ValueError(f"action {value.tolist()} for agent '{agent}' (row {row}) is not finite")
            if type(space).__name__ == "Box":  # as SB3's predict and the gymnasium engine do
                return np.clip(value, space.low, space.high).astype(space.dtype)
            return np.array(value, copy=True)
        start, n = self._layout.discrete_actions
        action = int(value)
        if not start <= action < start + n:
            raise ValueError(
                f"action {action} for agent '{agent}' (row {row}) is not in {self.spec.action_space}"
            )
        return action

    def step(self, episodes: Sequence[int]) -> list[int]:
        agents = self.spec.num_agents
        ended = []
        for episode in episodes:
            env = self._envs[episode]
            base = episode * agents
            live = list(env.agents)
            actions = {agent: self._action(base + self._index[agent], agent) for agent in live}
            observations, rewards, terminations, truncations, _ = env.step(actions)
            self.rewards[base : base + agents] = 0.0
            for agent in live:  # agents that left before this step get nothing more
                index = self._index[agent]
                reward = checked_reward(rewards.get(agent, 0.0), self._said[agent, "step()"])
                self.rewards[base + index] = reward
                self._totals[episode, index] += reward
            self._write(episode, observations, "step()")
            self._steps[episode] += 1
            everyone_done = all(terminations.get(a, False) or truncations.get(a, False) for a in live)
            if not env.agents or everyone_done or self._steps[episode] >= self._max_steps:
                ended.append(episode)
        return ended

    def episode_rewards(self, episode: int) -> np.ndarray:
        return self._totals[episode].copy()

    def episode_steps(self, episode: int) -> int:
        return int(self._steps[episode])

    def replay(self, episode: int) -> dict[str, Any] | None:
        return None  # PettingZoo has no replay format; recording is not offered

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs.clear()
