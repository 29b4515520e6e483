"""Hand-written MPE players: the references the pettingzoo suite's thresholds are set against.

Both read only their agent's own observation (mpe2's layouts, full observability) and steer with
MPE's discrete actions: 0 stay, 1 push -x, 2 push +x, 3 push -y, 4 push +y. Steering aims at a
point corrected for the agent's velocity (MPE agents glide: velocity decays by a quarter a step),
so they brake before their target instead of circling it.

`scripted-mpe://spread` (simple_spread_v3): observation [vel, pos, landmarks - pos, others - pos,
comms]. Every agent solves the same assignment of agents to landmarks (the one of least total
distance) from its own view, and heads for its landmark.

`scripted-mpe://tag` (simple_tag_v3): observation [vel, pos, obstacles - pos, others - pos, prey
velocities], others in world order (predators first, then prey). A predator ("adversary_*")
chases the nearest prey, aiming where it is heading; prey flee the predators, weighted by
closeness, and keep away from the edge of the arena (MPE fines prey beyond 0.9).
"""

from __future__ import annotations

import itertools

import numpy as np

from pytest_policyeval.policies.base import Actor, Policy, PolicyLoadError
from pytest_policyeval.spec import EnvSpec

# Unit pushes of MPE's discrete actions, by action id.
PUSHES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.float64)
GLIDE = 0.3  # how far (x velocity) an agent glides once it stops pushing: 0.1 * (0.75 + 0.75**2 + ...)
DEAD_ZONE = 0.02  # closer than this to its aim, an agent stays put


def steer(aim: np.ndarray, velocity: np.ndarray) -> int:
    """The action that pushes an agent toward `aim` (relative), allowing for its glide."""
    wanted = aim - GLIDE * velocity
    if np.hypot(*wanted) < DEAD_ZONE:
        return 0
    return int(np.argmax(PUSHES @ wanted))


def _mpe_spec(env: EnvSpec, who: str, env_id: str) -> None:
    if env.engine != "pettingzoo" or env.env_id != env_id:
        raise PolicyLoadError(f"{who} plays {env_id} only; this task is {env.engine} {env.env_id or '?'}")
    space = env.action_space
    if type(space).__name__ != "Discrete" or int(space.n) != len(PUSHES) or int(space.start) != 0:
        raise PolicyLoadError(f"{who} needs MPE's discrete actions (Discrete(5)); the task has {space}")


def _observation_sizes(env: EnvSpec) -> tuple[int, ...]:
    sizes = getattr(env, "observation_sizes", ())
    return tuple(sizes) or (int(env.observation_space.shape[0]),) * env.num_agents


class SpreadActor(Actor):
    def __init__(self, env: EnvSpec, who: str):
        _mpe_spec(env, who, "mpe2.simple_spread_v3")
        self.n = env.num_agents
        # vel, pos, n landmarks, n - 1 others, n - 1 two-channel messages: 6n numbers.
        if _observation_sizes(env) != (6 * self.n,) * self.n:
            raise PolicyLoadError(f"{who} needs simple_spread's full observations (6 x {self.n} numbers)")
        # Assignments of agents to landmarks, tried in full for small teams.
        self.permutations = np.array(list(itertools.permutations(range(self.n)))) if self.n <= 6 else None

    def reset(self, slot_seeds: np.ndarray) -> None:
        return None

    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        return np.array([self._act_one(np.asarray(obs, dtype=np.float64)) for obs in observations], np.int64)

    def _act_one(self, obs: np.ndarray) -> int:
        n = self.n
        velocity = obs[0:2]
        landmarks = obs[4 : 4 + 2 * n].reshape(n, 2)
        others = obs[4 + 2 * n : 4 + 2 * n + 2 * (n - 1)].reshape(n - 1, 2)
        agents = np.vstack([np.zeros((1, 2)), others])  # this agent first, at the origin
        distances = np.linalg.norm(agents[:, None, :] - landmarks[None, :, :], axis=2)
        if self.permutations is not None:
            # Total distance of every assignment; ties are broken the same way by every agent.
            totals = distances[np.arange(n)[None, :], self.permutations].sum(axis=1)
            mine = int(self.permutations[int(np.argmin(totals)), 0])
        else:
            mine = _greedy_assignment(distances)
        return steer(landmarks[mine], velocity)


def _greedy_assignment(distances: np.ndarray) -> int:
    """Landmark of agent 0 when the closest free (agent, landmark) pairs are matched first."""
    taken_agents: set[int] = set()
    taken_landmarks: set[int] = set()
    for flat in np.argsort(distances, axis=None):
        agent, landmark = divmod(int(flat), distances.shape[1])
        if agent in taken_agents or landmark in taken_landmarks:
            continue
        if agent == 0:
            return landmark
        taken_agents.add(agent)
        taken_landmarks.add(landmark)
    return 0


class TagActor(Actor):
    def __init__(self, env: EnvSpec, who: str):
        _mpe_spec(env, who, "mpe2.simple_tag_v3")
        names = env.agent_names
        self.n = env.num_agents
        self.predator = np.array([name.startswith("adversary") for name in names])
        self.predators = int(self.predator.sum())
        self.prey = self.n - self.predators
        sizes = _observation_sizes(env)
        # Obstacles: what is left of a predator's observation after vel, pos, others and prey velocities.
        obstacles = (sizes[0] - 4 - 2 * (self.n - 1) - 2 * self.prey) // 2 if self.predator[0] else -1
        if self.predators == 0 or self.prey == 0 or obstacles < 0:
            raise PolicyLoadError(f"{who} needs simple_tag with predators listed first and prey")
        expected = tuple(
            4 + 2 * obstacles + 2 * (self.n - 1) + 2 * (self.prey - (0 if is_predator else 1))
            for is_predator in self.predator
        )
        if sizes != expected:
            raise PolicyLoadError(
                f"{who} needs simple_tag's full observations (sizes {expected}, got {sizes})"
            )
        self.obstacles = obstacles
        self.sizes = sizes

    def reset(self, slot_seeds: np.ndarray) -> None:
        return None

    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        actions = np.zeros(len(slots), dtype=np.int64)
        for i, (obs, slot) in enumerate(zip(observations, slots, strict=True)):
            agent = int(slot) % self.n
            own = np.asarray(obs[: self.sizes[agent]], dtype=np.float64)
            actions[i] = self._chase(own) if self.predator[agent] else self._flee(own)
        return actions

    def _others(self, obs: np.ndarray) -> np.ndarray:
        start = 4 + 2 * self.obstacles
        return obs[start : start + 2 * (self.n - 1)].reshape(self.n - 1, 2)

    def _chase(self, obs: np.ndarray) -> int:
        others = self._others(obs)
        prey = others[self.predators - 1 :]  # others are the other predators, then every prey
        velocities = obs[4 + 2 * self.obstacles + 2 * (self.n - 1) :].reshape(self.prey, 2)
        nearest = int(np.argmin(np.linalg.norm(prey, axis=1)))
        # Lead the target by the time it takes to close the gap at a predator's top speed (1.0).
        lead = min(np.hypot(*prey[nearest]), 0.5)
        return steer(prey[nearest] + lead * velocities[nearest], obs[0:2])

    def _flee(self, obs: np.ndarray) -> int:
        velocity, position = obs[0:2], obs[2:4]
        predators = self._others(obs)[: self.predators]
        distances = np.maximum(np.linalg.norm(predators, axis=1), 1e-3)
        away = -(predators / distances[:, None] ** 3).sum(axis=0)  # inverse-square repulsion
        ahead = position + GLIDE * velocity
        # Past 0.5 from the centre the walls' pull outweighs a predator's push at ~0.5 distance.
        inward = -np.sign(ahead) * np.maximum(np.abs(ahead) - 0.5, 0.0) * 40.0
        wanted = away + inward
        if np.hypot(*wanted) < 1e-6:
            return 0
        return int(np.argmax(PUSHES @ wanted))


ACTORS: dict[str, type[SpreadActor] | type[TagActor]] = {"spread": SpreadActor, "tag": TagActor}


class ScriptedMpePolicy(Policy):
    """`scripted-mpe://<name>`: one of the hand-written MPE actors above."""

    uses_torch = False

    def __init__(self, uri: str, name: str):
        self.uri = uri
        self.name = f"scripted-mpe-{name}"
        self._actor_class = ACTORS[name]
        self.info = {"kind": "scripted"}

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        return self._actor_class(env, self.uri)


def load_scripted_mpe(uri: str, rest: str, options: object) -> Policy:
    """The `scripted-mpe://` scheme's loader."""
    name = rest.strip("/")
    if name not in ACTORS:
        raise PolicyLoadError(f"{uri}: unknown scripted-mpe policy '{name}'; known: {sorted(ACTORS)}")
    return ScriptedMpePolicy(uri, name)
