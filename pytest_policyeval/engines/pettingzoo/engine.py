"""The pettingzoo `Engine`: multi-agent environments of PettingZoo's parallel API.

A task names an environment module of an allow-listed family (settings.py) and its constructor's
arguments; the engine plays one `parallel_env` per episode, all agents of all episodes as one batch
(parallel.py). Importing this module imports neither pettingzoo nor any environment.

One batch holds every agent of an episode, so all agents must share one action space (an action
row cannot be padded into something every agent can play: such environments are refused). Agents
whose flat observations differ in length (MPE simple_tag's predators and prey) are refused as
well, unless the task sets `pad_observations: true`: each row is then zero-padded to the longest
observation, and the spec (`PettingZooSpec.observation_sizes`, `agent_observation_spaces`) says
how long each agent's own observation is, so a policy can cut its agent's part back out. Nothing is
padded silently.

Scores: an agent's episode score is the sum of its rewards. PettingZoo's environments set their
own rewards (MPE's are distances and collision counts, without a bound the rules guarantee), so the
engine knows no score range: suites declare `score_range` or use `gate: mean`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from pytest_policyeval.engines.base import EngineBase, EngineError, EpisodeBatch
from pytest_policyeval.engines.pettingzoo.settings import PettingZooSettings
from pytest_policyeval.spec import EnvSpec
from pytest_policyeval.task import Task


class PettingZooEngine(EngineBase):
    name = "pettingzoo"
    package = "pettingzoo"
    settings_model = PettingZooSettings

    def check_task(self, task: Task) -> None:
        # Allow-listed (the settings model), importable, arguments accepted, spaces batchable.
        self.spec(task)

    def spec(self, task: Task) -> EnvSpec:
        from pytest_policyeval.engines.pettingzoo.parallel import task_layout

        if not isinstance(task.env, PettingZooSettings):
            raise EngineError(f"task {task.name} has no pettingzoo settings (key 'env')")
        return task_layout(task).spec

    def batch(self, task: Task, seeds: Sequence[int], record: Sequence[int] = ()) -> EpisodeBatch:
        from pytest_policyeval.engines.pettingzoo.parallel import ParallelBatch

        return ParallelBatch(task, seeds, record=record)

    def identity(self, task: Task) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        identity = super().identity(task)
        family = task.env.family.split(".")[0]
        if family != "pettingzoo":  # a family of its own distribution (mpe2) versions its games
            with contextlib.suppress(PackageNotFoundError):
                identity["env_package_version"] = version(family)
        return identity
