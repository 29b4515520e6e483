"""The gymnasium `Engine`: single-agent environments from gymnasium's registry, by id.

Importing this module does not import gymnasium (the plugin's import stays light); its methods
do, through envs.py and batch.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pytest_policyeval.engines.base import EngineBase, EngineError, EpisodeBatch
from pytest_policyeval.engines.gymnasium.settings import GymnasiumSettings
from pytest_policyeval.spec import EnvSpec
from pytest_policyeval.task import Task


def _gymnasium() -> None:
    try:
        import gymnasium  # noqa: F401
    except ImportError:
        raise EngineError("key 'engine': this engine needs gymnasium (pip install gymnasium)") from None


# Simulators some of gymnasium's own environments run on: their version is part of an episode too.
SIMULATORS = {"gymnasium.envs.box2d.": "box2d", "gymnasium.envs.mujoco.": "mujoco"}


class GymnasiumEngine(EngineBase):
    name = "gymnasium"
    package = "gymnasium"
    settings_model = GymnasiumSettings

    def check_task(self, task: Task) -> None:
        _gymnasium()
        from pytest_policyeval.engines.gymnasium.envs import env_facts

        env_facts(task.env)  # makes the environment once: an unknown id or bad arguments fail here

    def spec(self, task: Task) -> EnvSpec:
        from pytest_policyeval.engines.gymnasium.envs import task_spec

        return task_spec(task)

    def batch(self, task: Task, seeds: Sequence[int], record: Sequence[int] = ()) -> EpisodeBatch:
        from pytest_policyeval.engines.gymnasium.batch import GymnasiumBatch

        return GymnasiumBatch(task, seeds, record=record)

    def num_agents(self, task: Task) -> int:
        return 1

    def score_range(self, task: Task) -> tuple[float, float] | None:
        _gymnasium()
        from pytest_policyeval.engines.gymnasium.envs import env_facts, episode_limit
        from pytest_policyeval.engines.gymnasium.scores import rules_score_range

        facts = env_facts(task.env)
        if facts.extra_wrappers:  # a registration's own wrappers may reshape rewards
            return None
        return rules_score_range(facts.entry_point, dict(facts.kwargs), episode_limit(task))

    def identity(self, task: Task) -> dict[str, Any]:
        from pytest_policyeval.engines.gymnasium.envs import env_facts

        facts = env_facts(task.env)
        # The registration decides episodes as much as the suite: its arguments, time limit and
        # wrappers, the package its entry point comes from (a third party's environment) and the
        # source of the classes it makes (an environment of one's own has no version).
        identity = {
            **super().identity(task),
            "entry_point": facts.entry_point,
            "kwargs": [list(pair) for pair in facts.kwargs],
            "time_limit": facts.time_limit,
            "extra_wrappers": facts.extra_wrappers,
            "code": [list(pair) for pair in facts.code],
        }
        top = facts.entry_point.split(":", 1)[0].split(".", 1)[0]
        if top and top != "gymnasium":
            with suppress(PackageNotFoundError):
                identity["entry_point_version"] = f"{top} {version(top)}"
        for prefix, package in SIMULATORS.items():
            if identity["entry_point"].startswith(prefix):
                with suppress(PackageNotFoundError):
                    identity["simulator_version"] = f"{package} {version(package)}"
        return identity
