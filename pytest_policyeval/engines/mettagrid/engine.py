"""The mettagrid `Engine`: a task's map and game checked, described and played.

Importing this module does not import mettagrid; `spec` and `batch` do (simulation.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_policyeval.engines.base import EngineBase, EngineError, EpisodeBatch
from pytest_policyeval.engines.mettagrid.gridmap import MapError, read_map, resolve_map, task_grid
from pytest_policyeval.engines.mettagrid.scores import game_score_range
from pytest_policyeval.engines.mettagrid.settings import MettagridSettings
from pytest_policyeval.spec import EnvSpec
from pytest_policyeval.task import Task

MAX_STEPS = 2**32 - 1  # GameConfig.max_steps is a C++ uint32


class MettagridEngine(EngineBase):
    name = "mettagrid"
    package = "mettagrid"
    settings_model = MettagridSettings

    def check_task(self, task: Task) -> None:
        env: MettagridSettings = task.env
        if task.settings.max_steps > MAX_STEPS:
            raise EngineError(
                f"key 'max_steps': {task.settings.max_steps} is more than mettagrid can count "
                f"({MAX_STEPS}, a 32-bit step counter)"
            )
        path = resolve_map(task.folder, env.map)
        try:
            grid = read_map(path)
        except MapError as exc:
            raise EngineError(f"key 'map': {env.map}: {exc}") from None
        if env.game == "navigation" and grid.num_goals == 0:
            raise EngineError(f"key 'map': {env.map}: a navigation map needs a goal ('_')")
        wanted = env.goals_to_finish
        if env.game == "navigation" and isinstance(wanted, int) and wanted > grid.num_goals:
            raise EngineError(f"key 'goals_to_finish': {wanted} but the map has {grid.num_goals} goal(s)")
        if env.game == "laser_tag" and grid.num_teams < 2:
            raise EngineError(f"key 'map': {env.map}: laser_tag needs agents of two teams ('1' and '2')")

    def spec(self, task: Task) -> EnvSpec:
        from pytest_policyeval.engines.mettagrid.simulation import task_env_spec

        return task_env_spec(task)

    def batch(self, task: Task, seeds: Sequence[int], record: Sequence[int] = ()) -> EpisodeBatch:
        from pytest_policyeval.engines.mettagrid.simulation import EpisodeBatch as MettagridBatch

        return MettagridBatch(task, seeds, record=record)

    def num_agents(self, task: Task) -> int:
        return task_grid(task).num_agents

    def score_range(self, task: Task) -> tuple[float, float] | None:
        return game_score_range(task.env, task.settings, task_grid(task))

    def identity(self, task: Task) -> dict[str, Any]:
        # The bytes the grid was parsed from (read once per process), not the file as it is now.
        return {**super().identity(task), "map_sha256": task_grid(task).sha256}

    def task_files(self, task: Task) -> list[Path]:
        return [resolve_map(task.folder, task.env.map)]

    def replay_file(self, replay: dict[str, Any]) -> bytes:
        from pytest_policyeval.engines.mettagrid.replay import encode_replay_file

        return encode_replay_file(replay)

    def film(self, replay: dict[str, Any], title: str, policy_agents: list[int]) -> Any:
        from pytest_policyeval.engines.mettagrid.replay import film_from_replay

        return film_from_replay(replay, title, policy_agents)
