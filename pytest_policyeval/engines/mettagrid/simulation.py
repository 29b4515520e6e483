"""mettagrid itself: the only module that imports mettagrid.

It turns a `Task` into a `MettaGridConfig` and runs many episodes of it side by side. Every
simulation writes its observations into one slice of a shared array and reads its actions from
one slice of another (mettagrid's `set_buffers`), so the runner sees all live agents of all
episodes as one batch without copying per episode. A mettagrid version bump touches this file only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

os.environ.setdefault("METTAGRID_LOG_LEVEL", "WARNING")

from mettagrid import Simulator
from mettagrid.config.filter import sharedTagPrefix
from mettagrid.config.game_value import InventoryValue
from mettagrid.config.handler_config import (
    Handler,
    isNot,
    logStat,
    targetHas,
    updateActor,
    updateTarget,
    withdraw,
)
from mettagrid.config.mettagrid_config import (
    ActionsConfig,
    AgentConfig,
    ChangeVibeActionConfig,
    GameConfig,
    GlobalObsConfig,
    GridObjectConfig,
    InventoryConfig,
    MettaGridConfig,
    MoveActionConfig,
    NoopActionConfig,
    ObsConfig,
    ResourceLimitsConfig,
    WallConfig,
)
from mettagrid.config.reward_config import reward
from mettagrid.map_builder.ascii import AsciiMapBuilder
from mettagrid.mettagrid_c import (
    dtype_actions,
    dtype_masks,
    dtype_observations,
    dtype_rewards,
    dtype_terminals,
    dtype_truncations,
)
from mettagrid.policy.policy_env_interface import PolicyEnvInterface
from mettagrid.simulator.interface import SimulatorEventHandler
from mettagrid.simulator.replay_log_writer import EpisodeReplay
from mettagrid.simulator.simulator import Buffers

from pytest_policyeval.engines.mettagrid.gridmap import (
    AGENT,
    GOAL,
    TEAM_CHARS,
    GridMap,
    task_grid,
)
from pytest_policyeval.engines.mettagrid.scores import goals_to_finish
from pytest_policyeval.spec import TokenSpec
from pytest_policyeval.task import Task

# mettagrid configures the root logger on import; keep a test run's output quiet.
logging.getLogger().setLevel(logging.WARNING)

GOAL_OBJECT = "altar"
GOAL_STAT = "goals_reached"
REWARD_ITEM = "heart"
# laser_tag: an agent can act while it holds `freeze_steps` READY; a tag empties it and it refills
# by one a step. Each tag gives the tagger one TAGS item, its reward.
READY_ITEM = "ready"
TAGS_ITEM = "tags"
TAG_STAT = "tags"
TEAM_NAMES = ("red", "blue")


def _navigation(task: Task, grid: GridMap) -> dict:
    """Walls and goals that pay one heart each."""
    # A goal holds one heart; walking into it moves the heart to the agent (the reward),
    # counts a game stat and removes the goal, so each goal pays once.
    goal = GridObjectConfig(
        name=GOAL_OBJECT,
        map_name=GOAL_OBJECT,
        inventory=InventoryConfig(initial={REWARD_ITEM: 1}),
        on_use_handler=Handler(
            mutations=[withdraw({REWARD_ITEM: 1}, remove_when_empty=True), logStat(GOAL_STAT)]
        ),
    )
    end_after = goals_to_finish(task.env, grid)
    return {
        "resource_names": [REWARD_ITEM],
        "objects": {"wall": WallConfig(), GOAL_OBJECT: goal},
        "actions": ActionsConfig(
            noop=NoopActionConfig(),
            move=MoveActionConfig(),
            change_vibe=ChangeVibeActionConfig(enabled=False),
        ),
        "agent": AgentConfig(rewards={REWARD_ITEM: reward(InventoryValue(item=REWARD_ITEM))}),
        "end_episode_on_game_stats": {GOAL_STAT: end_after} if end_after else {},
    }


def _laser_tag(task: Task, grid: GridMap) -> dict:
    """Two teams; moving into an opponent tags it (contact: mettagrid 0.26's attack action is inert)."""
    freeze = task.env.freeze_steps
    tag = Handler(
        filters=[isNot(sharedTagPrefix("team:")), targetHas({READY_ITEM: freeze})],
        mutations=[updateTarget({READY_ITEM: -freeze}), updateActor({TAGS_ITEM: 1}), logStat(TAG_STAT)],
    )
    refill = Handler(mutations=[updateActor({READY_ITEM: 1})])
    inventory = InventoryConfig(
        initial={READY_ITEM: freeze},
        limits={READY_ITEM: ResourceLimitsConfig(resources=[READY_ITEM], base=freeze, max=freeze)},
    )

    return {
        "resource_names": [READY_ITEM, TAGS_ITEM],
        "objects": {"wall": WallConfig()},
        "actions": ActionsConfig(
            noop=NoopActionConfig(),
            # A frozen agent lacks the full READY stock, so its moves (and tags) fail.
            move=MoveActionConfig(required_resources={READY_ITEM: freeze}),
            change_vibe=ChangeVibeActionConfig(enabled=False),
        ),
        "agent": AgentConfig(
            inventory=inventory,
            rewards={TAGS_ITEM: reward(InventoryValue(item=TAGS_ITEM))},
            on_use_handler=tag,
            on_tick=refill,
        ),
    }


GAMES = {"navigation": _navigation, "laser_tag": _laser_tag}


def build_config(task: Task, grid: GridMap | None = None) -> MettaGridConfig:
    """The mettagrid config of a grid task: the map, the game's rules, observations."""
    grid = grid or task_grid(task)
    settings, env = task.settings, task.env
    rules = GAMES[env.game](task, grid)
    template: AgentConfig = rules.pop("agent")
    # One agent config per agent, grouped by team; with two teams each carries a `team:` tag.
    agents = [
        template.model_copy(
            update={"team_id": team, "tags": [f"team:{TEAM_NAMES[team]}"] if grid.num_teams > 1 else []}
        )
        for team in sorted(grid.agent_teams)
    ]
    # mettagrid maps '@' to agent.agent itself (an alias of the first team).
    cells = {char: f"agent.{TEAM_NAMES[team]}" for char, team in TEAM_CHARS.items() if char != AGENT}
    game = GameConfig(
        num_agents=grid.num_agents,
        max_steps=settings.max_steps,
        obs=ObsConfig(
            width=env.obs_window,
            height=env.obs_window,
            num_tokens=env.num_tokens,
            global_obs=GlobalObsConfig(local_position=True),
        ),
        map_builder=AsciiMapBuilder.Config(
            map_data=[list(row) for row in grid.rows],
            char_to_map_name={GOAL: GOAL_OBJECT, **cells},
        ),
        agents=agents,
        **rules,
    )
    return MettaGridConfig(label=task.name, game=game)


def equivalent_features(task: Task) -> tuple[tuple[str, str, float, float], ...]:
    """What this project's games mean in the terms of features other engines name directly."""
    if task.env.game == "laser_tag":
        return (("agent:frozen", f"inv:{READY_ITEM}", -1.0, float(task.env.freeze_steps)),)
    return ()


def env_spec_of(
    config: MettaGridConfig,
    agent_teams: tuple[int, ...] = (),
    equivalents: tuple[tuple[str, str, float, float], ...] = (),
) -> TokenSpec:
    interface = PolicyEnvInterface.from_mg_cfg(config)
    names = [""] * (max((f.id for f in interface.obs_features), default=-1) + 1)
    for feature in interface.obs_features:
        names[feature.id] = feature.name
    height, width = interface.egocentric_shape
    return TokenSpec(
        engine="mettagrid",
        feature_names=tuple(names),
        tag_names=tuple(interface.tags),
        action_names=tuple(interface.action_names),
        num_agents=config.game.num_agents,
        num_tokens=config.game.obs.num_tokens,
        obs_height=int(height),
        obs_width=int(width),
        max_steps=config.game.max_steps,
        resource_names=tuple(config.game.resource_names),
        agent_teams=agent_teams,
        equivalent_features=equivalents,
    )


@lru_cache(maxsize=64)
def _task_config(task: Task) -> tuple[MettaGridConfig, TokenSpec, int]:
    grid = task_grid(task)
    config = build_config(task, grid)
    spec = env_spec_of(config, grid.agent_teams, equivalent_features(task))
    return config, spec, goals_to_finish(task.env, grid)


def task_env_spec(task: Task) -> TokenSpec:
    return _task_config(task)[1]


class ReplayRecorder(SimulatorEventHandler):
    """Records one episode with mettagrid's own `EpisodeReplay`: the format MettaScope reads."""

    replay: EpisodeReplay

    def on_episode_start(self) -> None:
        self.replay = EpisodeReplay(self._sim)

    def on_step(self) -> None:
        c_sim = self._sim._c_sim
        self.replay.log_step(self._sim.current_step, c_sim.actions(), c_sim.rewards())


class EpisodeBatch:
    """All episodes of one task, stepped in lockstep over shared observation/action arrays.

    Agent `a` of episode `e` is row `e * num_agents + a` of `observations` and `actions`.
    Episodes listed in `record` are stepped through mettagrid's Python `Simulation.step` so its
    event handlers record a replay; the rest call the engine directly (recording costs ~3x).
    """

    def __init__(self, task: Task, seeds: Sequence[int], record: Sequence[int] = ()):
        config, self.spec, self._goals_to_finish = _task_config(task)
        self.num_episodes = len(seeds)
        agents = self.spec.num_agents
        rows = self.num_episodes * agents
        self.observations = np.zeros((rows, self.spec.num_tokens, 3), dtype=dtype_observations)
        self.actions = np.zeros(rows, dtype=dtype_actions)
        self._terminals = np.zeros(rows, dtype=dtype_terminals)
        self._truncations = np.zeros(rows, dtype=dtype_truncations)
        self._rewards = np.zeros(rows, dtype=dtype_rewards)
        self._masks = np.ones(rows, dtype=dtype_masks)
        self._vibe_actions = np.zeros(rows, dtype=dtype_actions)
        self._sims = []
        self._recorders: dict[int, ReplayRecorder] = {}
        for episode, seed in enumerate(seeds):
            part = slice(episode * agents, (episode + 1) * agents)
            buffers = Buffers(
                self.observations[part],
                self._terminals[part],
                self._truncations[part],
                self._rewards[part],
                self._masks[part],
                self.actions[part],
                self._vibe_actions[part],
            )
            # A fresh Simulator per episode: map seeds then depend on the episode seed alone.
            simulator = Simulator()
            if episode in record:
                self._recorders[episode] = ReplayRecorder()
                simulator.add_event_handler(self._recorders[episode])
            self._sims.append(simulator.new_simulation(config, seed=int(seed), buffers=buffers))
        self._c_sims = [sim._c_sim for sim in self._sims]
        self._steppers = [
            sim.step if episode in self._recorders else c_sim.step
            for episode, (sim, c_sim) in enumerate(zip(self._sims, self._c_sims, strict=True))
        ]
        self._done_rows = (self._terminals.reshape(-1, agents), self._truncations.reshape(-1, agents))
        self._task_name = task.name

    def _check_actions(self, episodes: Sequence[int]) -> None:
        """The engine reads an unknown action id as no action at all: a broken policy (or
        baseline) would play on as if idle, so an id outside the action list is refused."""
        agents, count = self.spec.num_agents, len(self.spec.action_names)
        rows = (np.asarray(episodes, dtype=np.int64)[:, None] * agents + np.arange(agents)).ravel()
        taken = self.actions[rows]
        bad = np.flatnonzero((taken < 0) | (taken >= count))
        if bad.size:
            raise ValueError(
                f"task {self._task_name}: action {int(taken[bad[0]])} of agent {int(rows[bad[0]]) % agents} "
                f"is outside the action space: {count} actions (0..{count - 1})"
            )

    def step(self, episodes: Sequence[int]) -> list[int]:
        """Advance the given episodes one step (actions already written); return those that ended."""
        self._check_actions(episodes)
        terminals, truncations = self._done_rows
        ended = []
        for episode in episodes:
            c_sim = self._c_sims[episode]
            self._steppers[episode]()
            if terminals[episode].all() or truncations[episode].all():
                ended.append(episode)
            elif self._goals_to_finish:
                reached = c_sim.get_game_stat(GOAL_STAT)
                if reached is not None and reached >= self._goals_to_finish:
                    ended.append(episode)
        return ended

    @property
    def rewards(self) -> np.ndarray:
        """Each row's reward from the last step."""
        return self._rewards

    def episode_rewards(self, episode: int) -> np.ndarray:
        return np.asarray(self._c_sims[episode].get_episode_rewards(), dtype=np.float64)

    def episode_steps(self, episode: int) -> int:
        return int(self._c_sims[episode].current_step)

    def replay(self, episode: int) -> dict | None:
        """The finished episode's replay in mettagrid's format (a dict), if it was recorded."""
        recorder = self._recorders.pop(episode, None)
        return recorder.replay.get_replay_data() if recorder is not None else None

    def close(self) -> None:
        for sim in self._sims:
            sim.close()
        self._sims.clear()
        self._c_sims.clear()
        self._steppers.clear()
        self._recorders.clear()
