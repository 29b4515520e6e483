"""`random://`: uniform random actions, the baseline every suite threshold must beat.

Each agent slot draws from its own seeded stream (`seeding.uniforms`), so an episode's actions do
not depend on which other episodes share its batch. Discrete, multi-discrete and bounded box
action spaces are drawn uniformly; mettagrid's actions are its action names.
"""

from __future__ import annotations

import numpy as np

from pytest_policyeval.policies.base import Actor, Policy, PolicyLoadError
from pytest_policyeval.seeding import uniforms
from pytest_policyeval.spec import EnvSpec, TokenSpec


class RandomActor(Actor):
    def __init__(
        self,
        high: int | np.ndarray,
        low: int | np.ndarray = 0,
        discrete: bool = True,
        shape: tuple[int, ...] = (),
    ):
        # Per dimension: integers in [low, high) if discrete, else floats in [low, high].
        self._low = np.atleast_1d(np.asarray(low)).ravel()
        self._high = np.atleast_1d(np.asarray(high)).ravel()
        self._discrete, self._shape = discrete, shape
        self._seeds = np.zeros(0, dtype=np.uint64)

    def reset(self, slot_seeds: np.ndarray) -> None:
        self._seeds = np.asarray(slot_seeds, dtype=np.uint64)

    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        u = uniforms(self._seeds[slots], step, self._low.size)
        span = self._high - self._low
        if self._discrete:
            drawn = np.minimum((u * span).astype(np.int64), span - 1) + self._low
            drawn = drawn.astype(np.int32)
        else:
            drawn = (self._low + u * span).astype(np.float32)
        return drawn.reshape((len(slots), *self._shape))


class RandomPolicy(Policy):
    uses_torch = False

    def __init__(self, uri: str = "random://"):
        self.uri = uri
        self.name = "random"
        self.info = {"kind": "random"}

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        if isinstance(env, TokenSpec):
            return RandomActor(len(env.action_names))
        space = env.action_space
        kind = type(space).__name__
        if kind == "Discrete":
            start = int(space.start)
            return RandomActor(start + int(space.n), start)
        if kind == "MultiBinary":
            shape = tuple(np.atleast_1d(space.n).tolist())
            return RandomActor(np.full(shape, 2), np.zeros(shape, dtype=np.int64), True, shape)
        if kind == "MultiDiscrete":
            nvec = np.asarray(space.nvec, dtype=np.int64)
            start = np.asarray(getattr(space, "start", np.zeros_like(nvec)), dtype=np.int64)
            return RandomActor(start + nvec, start, True, tuple(nvec.shape))
        if kind == "Box" and np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
            low = np.asarray(space.low, dtype=np.float64)
            return RandomActor(np.asarray(space.high, dtype=np.float64), low, False, tuple(space.shape))
        raise PolicyLoadError(
            f"{self.uri}: cannot draw uniform actions from {space} (task engine {env.engine})"
        )
