"""What the runner needs from any environment family: the engine protocol.

An `Engine` owns a task's engine-specific keys (its `settings_model`), checks them against what
they name (a map file, a registered environment id), describes the task to policies (`spec`) and
plays many episodes of it side by side (`batch`). An `EpisodeBatch` steps its episodes in lockstep
over shared arrays, so the runner makes one policy call per step for every live agent of every
live episode, whatever the engine.

Determinism is the engine's promise: episode `e` seeded with `seeds[e]` plays the same whatever
else shares its batch, given the same actions.

Optional, where an engine records replays: `replay_file(replay) -> bytes` (what --save-replays
writes) and `film(replay, title, policy_agents) -> reporting.film.Film` (what the HTML report's
player draws); `num_agents(task)` where it is cheaper than building the spec; and
`task_files(task) -> list[Path]`, the files under the task's folder that playing it reads (a map),
which the Ray backend takes to the nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from pydantic import BaseModel

    from pytest_policyeval.spec import EnvSpec
    from pytest_policyeval.task import Task


class EngineError(ValueError):
    """A task this engine cannot play as written: the message names the key and the cause."""


class EnvironmentContractError(EngineError):
    """An environment broke its own API while playing (an observation of another shape than its
    space's, a reward that is not a number, reset/step returning other tuples): named as the
    environment's fault, not the policy's."""


def checked_observation(
    observation: Any, shape: tuple[int, ...], where: str, finite: bool = True
) -> np.ndarray:
    """`observation` as an array of the space's shape (with finite values, unless the caller
    checks a whole step's at once: `finite_rows`), or the error saying how it is not (numpy would
    broadcast a (1,) observation into a (3,) row without a word)."""
    array = np.asarray(observation)
    if array.shape != tuple(shape):
        raise EnvironmentContractError(
            f"{where} returned an observation of shape {array.shape}, not its observation space's "
            f"{tuple(shape)}"
        )
    if finite:
        finite_rows(array[None], where)
    return array


def finite_rows(rows: np.ndarray, where: str) -> None:
    """Every value of these observation rows finite (one check for a whole step's episodes)."""
    if rows.dtype.kind not in "fc" or np.isfinite(rows).all():
        return
    flat = rows.ravel()
    raise EnvironmentContractError(
        f"{where} returned a non-finite observation value ({flat[~np.isfinite(flat)][0]})"
    )


def checked_reward(reward: Any, where: str) -> float:
    """A reward as a float: any one number (a Python or numpy number, a one-element array or
    tensor); a string, None or several values are refused, where float() would take "1.0"."""
    import numbers

    if isinstance(reward, numbers.Real | np.bool_):
        return float(reward)
    numel = getattr(reward, "numel", None)  # a tensor's count; numpy's is `size`
    count = numel() if callable(numel) else getattr(reward, "size", None)
    if count == 1 and hasattr(reward, "item"):
        item = reward.item()
        if isinstance(item, numbers.Real):
            return float(item)
    raise EnvironmentContractError(f"{where} returned a reward that is not a number: {reward!r:.80}")


@runtime_checkable
class EpisodeBatch(Protocol):
    """Episodes of one task stepping in lockstep. Agent `a` of episode `e` is row `e * agents + a`."""

    spec: EnvSpec
    observations: np.ndarray  # [episodes * agents, *observation shape], current observations
    actions: np.ndarray  # [episodes * agents, *action shape], written by the runner before `step`
    rewards: np.ndarray  # [episodes * agents], each row's reward from the last step

    def step(self, episodes: Sequence[int]) -> list[int]:
        """Advance these episodes one step with the actions written; return those that ended."""
        ...

    def episode_rewards(self, episode: int) -> np.ndarray:
        """Each agent's total reward in the episode so far, [agents]."""
        ...

    def episode_steps(self, episode: int) -> int: ...

    def replay(self, episode: int) -> dict[str, Any] | None:
        """A finished, recorded episode's replay (a JSON-able dict in the engine's format), else None."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    """An environment family. Implementations are cheap to construct: import the simulator lazily."""

    name: str
    settings_model: type[BaseModel]  # the task keys this engine owns (frozen, extra keys refused)

    def check_task(self, task: Task) -> None:
        """Raise EngineError if the task's settings name something unusable (a bad map, an unknown id)."""
        ...

    def spec(self, task: Task) -> EnvSpec: ...

    def batch(self, task: Task, seeds: Sequence[int], record: Sequence[int] = ()) -> EpisodeBatch:
        """Fresh episodes seeded with `seeds`; those at positions `record` record a replay."""
        ...

    def score_range(self, task: Task) -> tuple[float, float] | None:
        """Bounds every per-episode score of the task obeys by the game's rules, or None if unknown."""
        ...

    def identity(self, task: Task) -> dict[str, Any]:
        """What besides the settings makes an episode what it is (file digests, engine version)."""
        ...


class EngineBase:
    """Defaults an engine may inherit: no extra checks, no known range, its package's version."""

    name: str = ""
    package: str = ""  # the distribution whose version is part of every episode's identity

    def check_task(self, task: Task) -> None:
        return None

    def score_range(self, task: Task) -> tuple[float, float] | None:
        return None

    def identity(self, task: Task) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return {"engine_version": version(self.package)} if self.package else {}
        except PackageNotFoundError:
            return {}
