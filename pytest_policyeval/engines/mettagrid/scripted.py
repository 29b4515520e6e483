"""Hand-written policies: the "competent" references that suite thresholds are set against.

`scripted://navigator` reads only its observations: wall and goal tags in its window, and its
offset from spawn (the `lp:*` global tokens). It remembers every cell it has seen, walks by
breadth-first search to the nearest goal it knows of, and otherwise to the nearest seen cell that
borders unseen ground.

`scripted://tagger` plays laser_tag the same way, with opponents as goals: it walks into the
nearest visible opponent that is not frozen (an opponent's `ready` stock below the full one),
going around walls and team mates, and explores, then wanders, when it sees none.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from pytest_policyeval.policies.base import Actor, Policy, PolicyLoadError, token_spec
from pytest_policyeval.seeding import uniforms
from pytest_policyeval.spec import EnvSpec, TokenSpec

MOVES = {"move_north": (-1, 0), "move_south": (1, 0), "move_west": (0, -1), "move_east": (0, 1)}
WALL_TAG, GOAL_TAG = "type:wall", "type:altar"
Cell = tuple[int, int]


class _Memory:
    def __init__(self) -> None:
        self.walls: set[tuple[int, int]] = set()
        self.free: set[tuple[int, int]] = set()
        self.goals: set[tuple[int, int]] = set()


class NavigatorActor(Actor):
    def __init__(self, env: TokenSpec):
        missing = [name for name in MOVES if name not in env.action_names]
        if missing:
            raise PolicyLoadError(f"scripted://navigator needs actions {missing}, the environment lacks them")
        self.action_ids = {name: env.action_names.index(name) for name in MOVES}
        self.noop = (
            env.action_names.index("noop") if "noop" in env.action_names else self.action_ids["move_north"]
        )
        self.tag_id = env.feature_id("tag")
        self.offset_ids = {name: env.feature_id(f"lp:{name}") for name in ("north", "south", "west", "east")}
        if self.tag_id is None or None in self.offset_ids.values():
            raise PolicyLoadError("scripted://navigator needs tag and lp:* (local position) observations")
        self.wall_tag = env.tag_names.index(WALL_TAG) if WALL_TAG in env.tag_names else -1
        self.goal_tag = env.tag_names.index(GOAL_TAG) if GOAL_TAG in env.tag_names else -1
        self.centre = (env.obs_height // 2, env.obs_width // 2)
        self.memory: list[_Memory] = []

    def reset(self, slot_seeds: np.ndarray) -> None:
        self.memory = [_Memory() for _ in range(len(slot_seeds))]

    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        return np.array(
            [self._act_one(obs, self.memory[slot]) for obs, slot in zip(observations, slots, strict=True)],
            dtype=np.int32,
        )

    def _observe(self, tokens: np.ndarray, memory: _Memory) -> tuple[Cell, np.ndarray]:
        """Update the map memory; return the agent's cell and its spatial tokens."""
        tokens = tokens[tokens[:, 0] != 0xFF]
        globals_ = tokens[tokens[:, 0] == 0xFE]
        offset = {
            name: int(globals_[globals_[:, 1] == fid, 2].sum()) for name, fid in self.offset_ids.items()
        }
        here = (offset["south"] - offset["north"], offset["east"] - offset["west"])
        spatial = tokens[tokens[:, 0] != 0xFE]
        for coord, feature, value in spatial:
            if feature == self.tag_id and value == self.wall_tag:
                memory.walls.add(self._cell(here, coord))
            elif feature == self.tag_id and value == self.goal_tag:
                memory.goals.add(self._cell(here, coord))
        # The window is square around the agent; every cell in it is seen, objects or not.
        radius_r, radius_c = self.centre
        for dr in range(-radius_r, radius_r + 1):
            for dc in range(-radius_c, radius_c + 1):
                cell = (here[0] + dr, here[1] + dc)
                if cell not in memory.walls:
                    memory.free.add(cell)
        return here, spatial

    def _cell(self, here: Cell, coord: int) -> Cell:
        return (here[0] + (int(coord) >> 4) - self.centre[0], here[1] + (int(coord) & 0xF) - self.centre[1])

    def _act_one(self, tokens: np.ndarray, memory: _Memory) -> int:
        here, _ = self._observe(tokens, memory)
        memory.goals.discard(here)  # walking into a goal uses it up
        # Head for a known goal; if none is reachable through known ground yet, explore.
        first_step = self._path_to_target(here, memory, to_goal=True) if memory.goals else None
        if first_step is None:
            first_step = self._path_to_target(here, memory, to_goal=False)
        if first_step is None:
            return self.noop
        return self.action_ids[first_step]

    def _path_to_target(
        self, start: Cell, memory: _Memory, to_goal: bool, blocked: frozenset[Cell] = frozenset()
    ) -> str | None:
        def is_target(cell: tuple[int, int]) -> bool:
            if to_goal:
                return cell in memory.goals
            return any(
                (cell[0] + dr, cell[1] + dc) not in memory.free
                and (cell[0] + dr, cell[1] + dc) not in memory.walls
                for dr, dc in MOVES.values()
            )

        queue = deque([(start, None)])
        parents: dict[tuple[int, int], str | None] = {start: None}
        while queue:
            cell, first = queue.popleft()
            if cell != start and is_target(cell):
                return first
            for name, (dr, dc) in MOVES.items():
                nxt = (cell[0] + dr, cell[1] + dc)
                if nxt in parents or nxt in memory.walls or nxt not in memory.free:
                    continue
                if nxt in blocked and not (to_goal and nxt in memory.goals):
                    continue
                parents[nxt] = first or name
                queue.append((nxt, first or name))
        return None


class TaggerActor(NavigatorActor):
    def __init__(self, env: TokenSpec):
        super().__init__(env)
        self.group_id = env.feature_id("agent:group")
        self.ready_id = env.feature_id("inv:ready")
        if self.group_id is None:
            raise PolicyLoadError("scripted://tagger needs agent:group observations (a laser_tag task)")
        self.seeds = np.zeros(0, dtype=np.uint64)
        self.full_ready = 0

    def reset(self, slot_seeds: np.ndarray) -> None:
        super().reset(slot_seeds)
        self.seeds = np.asarray(slot_seeds, dtype=np.uint64)

    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        wander = uniforms(self.seeds[slots], step, 1)[:, 0]
        return np.array(
            [
                self._tag_one(obs, self.memory[slot], roll)
                for obs, slot, roll in zip(observations, slots, wander, strict=True)
            ],
            dtype=np.int32,
        )

    def _tag_one(self, tokens: np.ndarray, memory: _Memory, roll: float) -> int:
        here, spatial = self._observe(tokens, memory)
        groups: dict[Cell, int] = {}
        ready: dict[Cell, int] = {}
        for coord, feature, value in spatial:
            if feature == self.group_id:
                groups[self._cell(here, coord)] = int(value)
            elif feature == self.ready_id:
                ready[self._cell(here, coord)] = int(value)
        self.full_ready = max(self.full_ready, *ready.values(), 0)
        mine = groups.get(here, 0)
        # Opponents worth walking into: not frozen. Every other agent is in the way.
        memory.goals = {
            cell for cell, group in groups.items() if group != mine and ready.get(cell, 0) >= self.full_ready
        }
        others = frozenset(cell for cell in groups if cell != here)
        first_step = (
            self._path_to_target(here, memory, to_goal=True, blocked=others) if memory.goals else None
        )
        if first_step is None:
            first_step = self._path_to_target(here, memory, to_goal=False, blocked=others)
        if first_step is None:
            return self.action_ids[list(MOVES)[min(int(roll * len(MOVES)), len(MOVES) - 1)]]
        return self.action_ids[first_step]


ACTORS: dict[str, type[NavigatorActor]] = {"navigator": NavigatorActor, "tagger": TaggerActor}


class ScriptedPolicy(Policy):
    """`scripted://<name>`: one of the hand-written actors above."""

    uses_torch = False

    def __init__(self, uri: str, name: str):
        self.uri = uri
        self.name = name
        self._actor_class = ACTORS[name]
        self.info = {"kind": "scripted"}

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        return self._actor_class(token_spec(env, self.uri))


def load_scripted(uri: str, rest: str, options: object) -> Policy:
    """The `scripted://` scheme's loader."""
    name = rest.strip("/")
    if name not in ACTORS:
        raise PolicyLoadError(f"{uri}: unknown scripted policy '{name}'; known: {sorted(ACTORS)}")
    return ScriptedPolicy(uri, name)
