"""The evaluation session: one per pytest process, in `config.stash` and registered as a plugin.

It holds the resolved options, loads each policy once per process and runs tasks. On the
controller (the only process in a serial run; the xdist controller otherwise) its hooks gather
every task's result from the test reports, write the result files and print the summary.
"""

from __future__ import annotations

import math
import platform
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_policyeval import __version__

if TYPE_CHECKING:
    from pytest_policyeval.collection.suite import Task
    from pytest_policyeval.policies.base import Policy
    from pytest_policyeval.results import TaskResult


@dataclass(frozen=True)
class EvalOptions:
    policy_uris: tuple[str, ...] = ()
    num_episodes: int | None = None
    seed: int | None = None
    device: str = "cpu"
    gate: str | None = None
    json_path: Path | None = None
    yaml_path: Path | None = None
    npc_policy_uri: str | None = None  # overrides the suite's npc_policy_uri
    pytorch_config: Path | None = None  # overrides the suite's pytorch_config


@dataclass(eq=False)
class EvalSession:
    options: EvalOptions
    is_controller: bool = True
    explicit_paths: frozenset[Path] = frozenset()
    results: list[TaskResult] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    suites_without_policy: list[Path] = field(default_factory=list)
    _policies: dict[str, Any] = field(default_factory=dict)
    _suites: dict[Path, int] = field(default_factory=dict)

    # -- running ---------------------------------------------------------------------------------

    def suite_index(self, path: Path) -> int:
        """A stable number per suite file, in collection order (identical on every xdist worker)."""
        return self._suites.setdefault(Path(path).resolve(), len(self._suites))

    def policy(self, uri: str, task: Task | None = None) -> Policy:
        """Load a policy once per process; a failed load fails every task of that policy alike."""
        from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy

        config = self.options.pytorch_config or (task.pytorch_config if task else None)
        key = (uri, config)
        if key not in self._policies:
            try:
                self._policies[key] = load_policy(uri, LoadOptions(pytorch_config=config))
            except PolicyLoadError as exc:
                self._policies[key] = exc
        loaded = self._policies[key]
        if isinstance(loaded, PolicyLoadError):
            raise loaded
        return loaded

    def npc_uri(self, task: Task) -> str | None:
        if task.settings.policy_agents_pct >= 1.0:
            return None
        return self.options.npc_policy_uri or task.settings.npc_policy_uri

    def resolve(self, task: Task) -> Task:
        """The task as it will run: command-line and ini overrides applied."""
        task = task.with_overrides(num_episodes=self.options.num_episodes, seed=self.options.seed)
        if self.options.gate is not None:
            task = task.with_settings(gate=self.options.gate)
        return task

    def evaluate(self, task: Task, uri: str, label: str, order: tuple[int, int, int]) -> TaskResult:
        """Run one task for one policy. An error becomes a result with `error` set, never lost."""
        from pytest_policyeval.policies import PolicyLoadError
        from pytest_policyeval.results import TaskResult
        from pytest_policyeval.runner import run_task
        from pytest_policyeval.scoring import Gate, score_task

        settings = task.settings
        result = TaskResult(
            suite=task.suite,
            task=task.name,
            policy_uri=uri,
            policy_label=label,
            order=order,
            threshold=settings.threshold,
            higher_is_better=settings.higher_is_better,
            gate=settings.gate,
            num_episodes=settings.num_episodes,
            seed=task.seed,
            policy_agents_pct=settings.policy_agents_pct,
            npc_policy_uri=self.npc_uri(task),
        )
        try:
            policy = self.policy(uri, task)
            result.policy = policy.describe()
        except PolicyLoadError as exc:
            result.error = f"policy could not be loaded: {exc}"
            return result
        try:
            npc = self.policy(result.npc_policy_uri, task) if result.npc_policy_uri else None
        except PolicyLoadError as exc:
            result.error = f"npc policy could not be loaded: {exc}"
            return result
        try:
            rollout = run_task(task, policy, self.options.device, npc=npc)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            result.traceback = traceback.format_exc(limit=8)
            return result
        rewards = [episode.rewards for episode in rollout.episodes]
        score = score_task(rewards, Gate(settings.threshold, settings.higher_is_better, settings.gate))
        result.score = score.score
        result.ci_low, result.ci_high = score.interval
        result.passed = score.passed
        result.seeds = [episode.seed for episode in rollout.episodes]
        result.episode_scores = [episode.score for episode in rollout.episodes]
        result.episode_rewards = rewards
        result.episode_steps = [episode.steps for episode in rollout.episodes]
        result.wall_time_s = rollout.wall_time_s
        result.agent_steps = rollout.agent_steps
        if math.isnan(result.score):
            result.error = "no agent-episodes were scored"
        return result

    # -- reporting (controller) -----------------------------------------------------------------

    def run_info(self) -> dict[str, Any]:
        import numpy

        return {
            "device": self.options.device,
            "seed_override": self.options.seed,
            "num_episodes_override": self.options.num_episodes,
            "versions": {
                "pytest_policyeval": __version__,
                "python": platform.python_version(),
                "numpy": numpy.__version__,
                "pytest": pytest.__version__,
            },
        }

    def write_files(self) -> None:
        from pytest_policyeval.reporting.atomic import write_text_atomic
        from pytest_policyeval.reporting.documents import (
            dump_json,
            dump_yaml,
            evaluation_yaml,
            evaluator_json,
        )

        run = self.run_info()
        if self.options.json_path is not None:
            text = dump_json(evaluator_json(self.results, run))
            self.written.append(write_text_atomic(self.options.json_path, text))
        if self.options.yaml_path is not None:
            text = dump_yaml(evaluation_yaml(self.results, run))
            self.written.append(write_text_atomic(self.options.yaml_path, text))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "policyeval", None)
        if data is not None and self.is_controller:
            from pytest_policyeval.results import TaskResult

            self.results.append(TaskResult.from_dict(data))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_controller and self.results:
            self.write_files()

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if not (self.is_controller and self.results):
            return
        from pytest_policyeval.reporting.terminal import summary_lines

        terminalreporter.write_sep("=", "policy evaluation")
        for line in summary_lines(self.results):
            terminalreporter.write_line(line)
        for path in self.written:
            terminalreporter.write_line(f"results written to {path}")
