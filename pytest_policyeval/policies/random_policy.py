"""`random://`: uniform random actions, the baseline every suite threshold must beat."""

from __future__ import annotations

import numpy as np

from pytest_policyeval.envs.spec import EnvSpec
from pytest_policyeval.policies.base import Actor, Policy
from pytest_policyeval.seeding import uniforms


class RandomActor(Actor):
    def __init__(self, num_actions: int):
        self._num_actions = num_actions
        self._seeds = np.zeros(0, dtype=np.uint64)

    def reset(self, slot_seeds: np.ndarray) -> None:
        self._seeds = np.asarray(slot_seeds, dtype=np.uint64)

    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        u = uniforms(self._seeds[slots], step, 1)[:, 0]
        return np.minimum((u * self._num_actions).astype(np.int32), self._num_actions - 1)


class RandomPolicy(Policy):
    def __init__(self, uri: str = "random://"):
        self.uri = uri
        self.name = "random"
        self.info = {"kind": "random"}

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        return RandomActor(len(env.action_names))
