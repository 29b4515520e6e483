"""gymnasium itself, with batch.py the only modules that import it: making and checking environments.

Only ids already in `gymnasium.registry` are made (settings.py refuses the "module:Env" form), so
making an environment imports nothing but the entry point its registration names.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import gymnasium
from gymnasium import spaces

from pytest_policyeval.engines.base import EngineError
from pytest_policyeval.engines.gymnasium.settings import GymnasiumSettings
from pytest_policyeval.spec import EnvSpec
from pytest_policyeval.task import Task

# Spaces whose values are one fixed-shape array each, so a batch holds them as one array.
ARRAY_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


@dataclass(frozen=True)
class EnvFacts:
    observation_space: Any
    action_space: Any
    time_limit: int | None  # the registration's TimeLimit (None: the env has none)
    entry_point: str  # what the registration makes, "module:Class" (or a callable's name)
    # The constructor's arguments: the registration's, then the suite's on top (as make merges them).
    kwargs: tuple[tuple[str, Any], ...]
    extra_wrappers: bool  # the registration adds wrappers of its own (they may change rewards)
    # Each class of the made environment, wrappers first, with a digest of the file defining it:
    # an environment of one's own (a conftest's, a project's) has no version to tell an edit by.
    code: tuple[tuple[str, str | None], ...] = ()


def make_env(settings: GymnasiumSettings) -> gymnasium.Env:
    """A new environment, wrapped as gymnasium.make wraps it (TimeLimit, order and passive checks)."""
    if settings.env not in gymnasium.registry:  # checked again: make() must never parse the id itself
        raise EngineError(f"key 'env': unknown gymnasium environment '{settings.env}'")
    with warnings.catch_warnings():
        # Deprecation notes on older versions of an id: the suite pins the version it names.
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        # Box2D (imported by the first LunarLander) warns about its own SWIG types: not ours to act on.
        warnings.filterwarnings("ignore", message=r"builtin type (SwigPy|swig)\w* has no __module__")
        return gymnasium.make(settings.env, **settings.kwargs)


def _unknown(env_id: str) -> EngineError:
    close = difflib.get_close_matches(env_id, list(gymnasium.registry), n=3, cutoff=0.6)
    hint = (
        f"did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else "gymnasium.pprint_registry() lists the registered ids"
    )
    return EngineError(f"key 'env': unknown gymnasium environment '{env_id[:120]}'; {hint}")


def _make_error(settings: GymnasiumSettings, exc: Exception) -> EngineError:
    """Why the environment could not be made, naming the key that has to change."""
    text = " ".join(str(exc).split())[:300]
    if isinstance(exc, gymnasium.error.DependencyNotInstalled):
        return EngineError(f"key 'env': '{settings.env}' needs a package that is not installed: {text}")
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        package = exc.name.split(".")[0]
        return EngineError(
            f"key 'env': '{settings.env}' needs the Python package '{package}', which is not installed "
            f"(pip install {package})"
        )
    if isinstance(exc, ImportError | gymnasium.error.Error) or not settings.env_kwargs:
        return EngineError(f"key 'env': cannot make '{settings.env}': {type(exc).__name__}: {text}")
    return EngineError(
        f"key 'env_kwargs': '{settings.env}' does not accept {settings.kwargs!r:.200}: "
        f"{type(exc).__name__}: {text}"
    )


@lru_cache(maxsize=256)
def env_facts(settings: GymnasiumSettings) -> EnvFacts:
    """What the environment is, found by making it once; EngineError naming the key otherwise."""
    if settings.env not in gymnasium.registry:
        raise _unknown(settings.env)
    registered = gymnasium.registry[settings.env]
    try:
        env = make_env(settings)
    except Exception as exc:  # whatever the entry point raises for these arguments
        raise _make_error(settings, exc) from None
    try:
        observation_space, action_space = env.observation_space, env.action_space
        code = _code(env) + _factory_code(registered.entry_point)
    finally:
        env.close()
    for key, space in (("observation", observation_space), ("action", action_space)):
        if not isinstance(space, ARRAY_SPACES):
            raise EngineError(
                f"key 'env': '{settings.env}' has a {key} space the engine cannot batch: {space!s:.200} "
                "(Box, Discrete, MultiDiscrete and MultiBinary are supported)"
            )
    entry = registered.entry_point
    return EnvFacts(
        observation_space=observation_space,
        action_space=action_space,
        time_limit=registered.max_episode_steps,
        entry_point=entry if isinstance(entry, str) else getattr(entry, "__qualname__", repr(entry)),
        kwargs=tuple(sorted({**registered.kwargs, **settings.kwargs}.items())),
        extra_wrappers=bool(registered.additional_wrappers),
        code=code,
    )


def _code(env: gymnasium.Env) -> tuple[tuple[str, str | None], ...]:
    from pytest_policyeval.provenance import outside_code_digest

    classes, layer = [], env
    for _ in range(64):  # a wrapper chain is short; a cycle must not hang
        # The class and every base it inherits behaviour from (an edited base changes episodes).
        classes += [c for c in type(layer).__mro__ if c is not object and c not in classes]
        if not isinstance(layer, gymnasium.Wrapper):
            break
        layer = layer.env
    return tuple((f"{c.__module__}.{c.__qualname__}", outside_code_digest(c)) for c in classes)


def _factory_code(entry: Any) -> tuple[tuple[str, str | None], ...]:
    """A registration whose entry point is a function (a factory, not the class it makes): its
    code decides the environment too (the arguments it passes), so its source counts."""
    import inspect
    import sys

    from pytest_policyeval.provenance import outside_code_digest

    if isinstance(entry, str) and ":" in entry:
        module_name, _, attribute = entry.partition(":")
        module = sys.modules.get(module_name)  # it made the environment: imported already
        entry = getattr(module, attribute, None) if module is not None else None
    if not inspect.isfunction(entry):
        return ()  # a class: its source is in _code with the made environment's
    return ((f"factory {entry.__module__}.{entry.__qualname__}", outside_code_digest(entry)),)


def episode_limit(task: Task) -> int:
    """Steps an episode of the task can last: its max_steps, capped by the env's own TimeLimit."""
    limit = env_facts(task.env).time_limit
    steps = task.settings.max_steps
    return min(steps, limit) if limit is not None and limit > 0 else steps


@lru_cache(maxsize=256)
def task_spec(task: Task) -> EnvSpec:
    facts = env_facts(task.env)
    return EnvSpec(
        engine="gymnasium",
        env_id=task.env.env,
        num_agents=1,
        # One team of one: the runner counts an episode's agents by their teams (runner.policy_agents).
        agent_teams=(0,),
        max_steps=task.settings.max_steps,
        observation_space=facts.observation_space,
        action_space=facts.action_space,
    )
