"""Suite files become pytest items: one `pytest.Function` per (task, policy).

Items are real `pytest.Function`s whose function takes fixtures, so `-k`, `--lf`, junitxml,
xdist and user fixtures all behave as for Python tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_policyeval.collection.suite import SuiteError, load_suite
from pytest_policyeval.keys import FILMS_KEY, PLAYED_KEY, RESULT_KEY, evaluation_of
from pytest_policyeval.policies.naming import policy_label
from pytest_policyeval.results import TaskResult
from pytest_policyeval.task import Task


def unique_labels(uris: Sequence[str]) -> list[str]:
    labels: list[str] = []
    for uri in uris:
        label = policy_label(uri)
        candidate, n = label, 2
        while candidate in labels:
            candidate, n = f"{label}-{n}", n + 1
        labels.append(candidate)
    return labels


@dataclass(eq=False)
class Collecting:
    """What collection keeps per process: which files are suites, and their order."""

    explicit_paths: frozenset[Path] = frozenset()  # named on the command line: suites wherever they are
    suites_without_policy: list[Path] = field(default_factory=list)
    _suites: dict[Path, int] = field(default_factory=dict)

    def suite_index(self, path: Path) -> int:
        """A stable number per suite file, in collection order (identical on every xdist worker)."""
        return self._suites.setdefault(Path(path).resolve(), len(self._suites))


COLLECTING_KEY = pytest.StashKey[Collecting]()


def gate_properties(result: TaskResult) -> list[tuple[str, object]]:
    """What junitxml and other consumers of user_properties get: the gate's evidence (for an
    errored task, the outcome `error` and the error, nothing it did not measure)."""
    # A baseline gate's verdict is relative: to what, said wherever the verdict is.
    baseline = [("policyeval_baseline_uri", result.baseline_uri)] if result.baseline_uri else []
    if result.error is not None:
        return [
            ("policyeval_outcome", "error"),
            ("policyeval_episodes", result.num_episodes),
            ("policyeval_error", result.error),
            *baseline,
        ]
    if baseline:
        baseline.append(("policyeval_baseline_score", result.baseline_score))
    return [
        ("policyeval_score", result.score),
        ("policyeval_outcome", result.outcome or "-"),
        ("policyeval_episodes", result.num_episodes),
        ("policyeval_estimate", result.estimate),
        ("policyeval_interval", f"[{result.ci_low:.6g}, {result.ci_high:.6g}]"),
        ("policyeval_interval_method", f"{result.interval_method} ({result.interval_level})"),
        ("policyeval_evidence_pass", result.evidence.get("pass")),
        ("policyeval_evidence_fail", result.evidence.get("fail")),
        ("policyeval_reason", result.reason),
        *baseline,
    ]


def make_task_test(task: Task, uri: str, label: str, order: tuple[int, int, int]) -> Callable[..., None]:
    def evaluate_task(policyeval, request: pytest.FixtureRequest) -> None:
        played = request.node.stash.get(PLAYED_KEY, None)  # by a Ray worker (ray_backend/)
        if played is not None:
            result, films = played
        else:
            resolved = policyeval.resolve(task)
            result, films = policyeval.evaluate(resolved, uri, label, order, request.node.nodeid)
        request.node.stash[RESULT_KEY] = result.to_dict()
        request.node.stash[FILMS_KEY] = films
        for name, value in gate_properties(result):
            request.node.user_properties.append((name, value))
        if result.error is not None:
            pytest.fail(f"{task.name} [{label}]: {result.error}", pytrace=False)
        if result.passed is False:
            pytest.fail(f"gate failed: {result.summary_line()}", pytrace=False)
        if result.outcome == "inconclusive" and result.passed is None:
            pytest.skip(f"inconclusive: {result.summary_line()}")

    evaluate_task.__doc__ = task.description or f"Evaluate {task.name}"
    return evaluate_task


class TaskItem(pytest.Function):
    """One task for one policy. Reports name the suite file and the task, not this module."""

    task: Task  # as written in the suite (command-line overrides are applied when it runs)
    uri: str
    label: str
    order: tuple[int, int, int]  # (suite, task, policy) in collection order

    def planned_result(self) -> TaskResult:
        """The task's result before it runs: what it is and how it will be gated."""
        evaluation = evaluation_of(self.config)
        return evaluation.new_result(evaluation.resolve(self.task), self.uri, self.label, self.order)

    @property
    def task_id(self) -> str:
        """The task's identity across runs and machines: suite file and task name."""
        return f"{self.parent.nodeid}::{self.task.name}"

    def cost(self) -> float:
        """A rough estimate of the work, for balancing shards: episodes x steps x agents."""
        from pytest_policyeval.gating import num_agents

        settings = evaluation_of(self.config).resolve(self.task).settings
        try:
            agents = num_agents(self.task)  # reads the map, which may be gone since collection
        except Exception:  # the task's own run reports why; ordering must not crash the session
            agents = 1
        return settings.num_episodes * settings.max_steps * agents

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


class SuiteFile(pytest.File):
    """A suite YAML file; its items are the suite's tasks times the policies under test."""

    suite_index: int = 0

    def collect(self) -> Iterator[pytest.Item]:
        uris = evaluation_of(self.config).options.policy_uris
        if not uris:
            self.config.stash[COLLECTING_KEY].suites_without_policy.append(self.path)
            return
        suite = load_suite(self.path)
        labels = unique_labels(uris)
        for task_index, task in enumerate(suite.tasks):
            for policy_index, (uri, label) in enumerate(zip(uris, labels, strict=True)):
                order = (self.suite_index, task_index, policy_index)
                item = TaskItem.from_parent(
                    self,
                    name=f"{task.name}[{label}]",
                    callobj=make_task_test(task, uri, label, order),
                )
                item.task, item.uri, item.label, item.order = task, uri, label, order
                yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        if isinstance(excinfo.value, SuiteError):
            return f"invalid suite: {excinfo.value}"
        return super().repr_failure(excinfo)


def suite_nodeid(path: Path, rootpath: Path) -> str | None:
    """The node id of a suite file: pytest's own (None) below the rootdir; FOLDER/NAME.yaml outside it.

    pytest names a file outside the rootdir that was given as a path "", which leaves its tests
    only "::TASK[POLICY]"; a suite shipped with the package reads `suites/NAME.yaml` instead.
    """
    if path.is_relative_to(rootpath):
        return None
    return f"{path.parent.name}/{path.name}"


def is_suite_path(path: Path, explicit: frozenset[Path], patterns: Sequence[str], rootpath: Path) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    if path.resolve() in explicit or path.parent.name == "suites":
        return True
    try:
        relative = path.resolve().relative_to(rootpath.resolve())
    except ValueError:
        return False
    return any(relative.match(pattern) for pattern in patterns)
