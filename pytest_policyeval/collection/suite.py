"""Suite files: YAML that lists evaluation tasks, validated into `Suite` objects.

A suite has a name, a seed, `defaults` that every task inherits, and `tasks`. Each task is
`category/name`, an ASCII map, step and episode budgets and an optional score threshold.
`include` lists other suite files whose tasks join this suite as they are (their own defaults and
seed), so a combined suite such as `full_eval` never copies its parts; a task included twice
with the same definition counts once.
This module knows nothing about pytest or the engine; it only reads and checks files.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import reprlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pytest_policyeval.envs.gridmap import MapError, read_map

TASK_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class SuiteError(Exception):
    """A suite file that cannot be used; the message names the file, the task and the key."""


class TaskSettings(BaseModel):
    """Fields a task may set itself or inherit from the suite's `defaults`."""

    # NaN or infinite numbers cannot gate anything nor be written to the results (strict JSON).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Episodes of a fixed gate; a sequential gate's first round (and the fewest it runs).
    num_episodes: int = Field(default=10, ge=1, le=100_000)
    max_steps: int = Field(default=200, ge=1)
    max_time_s: float = Field(default=600.0, gt=0)
    threshold: float | None = None
    higher_is_better: bool = True
    # How the threshold is applied (gates/design.py). "sequential": episodes are added in rounds
    # until an anytime-valid test passes or fails the task, with false pass <= alpha a margin
    # below the threshold and false fail <= beta a margin above it. "ci": a fixed num_episodes, the
    # one-sided (1 - alpha) bound must clear the threshold. "mean": Metta's rule, no guarantee.
    gate: Literal["sequential", "mean", "ci"] = "sequential"
    # Every per-episode score lies in [low, high]; the guarantees rest on it. Default: the game's
    # own bound (envs/scores.py).
    score_range: tuple[float, float] | None = None
    margin: float | None = Field(default=None, gt=0)  # delta in score units; default below
    margin_fraction: float = Field(default=0.1, gt=0, le=0.5)  # delta as a share of the range
    alpha: float = Field(default=0.05, gt=0, lt=0.5)  # false pass, a margin below the threshold
    beta: float = Field(default=0.01, gt=0, lt=0.5)  # false fail, a margin above the threshold
    max_episodes: int = Field(default=1000, ge=1, le=100_000, strict=True)  # a sequential gate's cap
    # What a sequential gate that reaches its cap undecided (the mean within the margin) reports.
    inconclusive: Literal["fail", "pass", "skip"] = "fail"
    # Gate on per-seed differences to this policy instead (it plays the same seeds); --baseline-uri wins.
    baseline_uri: str | None = Field(default=None, min_length=1)
    obs_window: int = Field(default=11, ge=3, le=15)
    num_tokens: int = Field(default=200, ge=16, le=1000)
    # What is played on the map: reach goals (navigation) or tag the other team (laser_tag).
    game: Literal["navigation", "laser_tag"] = "navigation"
    # navigation: how many goals end an episode; "all" = every goal on the map.
    goals_to_finish: int | Literal["all"] = 1
    # laser_tag: steps a tagged agent stays frozen (it can neither move nor tag, nor be tagged).
    freeze_steps: int = Field(default=10, ge=1, le=1000)
    # Share of a task's agents that the policy under test controls; the rest play `npc_policy_uri`.
    # Only the policy's agents are scored. Whole teams go to the policy first, alternating by episode.
    policy_agents_pct: float = Field(default=1.0, gt=0.0, le=1.0)
    npc_policy_uri: str | None = None

    @field_validator("obs_window")
    @classmethod
    def _odd_window(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("must be odd, so the agent sits at the centre of its view")
        return value

    @field_validator("score_range", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise ValueError("must be two numbers, [low, high]")
        return value

    @field_validator("score_range")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError("must be [low, high] with low < high")
        if value is not None and not math.isfinite(value[1] - value[0]):
            raise ValueError("its width must be a finite number")
        return value

    @field_validator("goals_to_finish")
    @classmethod
    def _positive_goals(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1 or 'all'")
        return value


class TaskModel(TaskSettings):
    name: str
    map: str
    description: str = ""

    @field_validator("name")
    @classmethod
    def _category_slash_task(cls, value: str) -> str:
        if not TASK_NAME.match(value):
            raise ValueError("must look like 'category/task' (letters, digits, _ . -)")
        return value


class IncludeModel(BaseModel):
    """`include` entry: a suite file, optionally only the tasks matching `tasks` (names or globs)."""

    model_config = ConfigDict(extra="forbid")

    suite: str
    tasks: list[str] | None = None


class SuiteModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = Field(default=0, ge=0)
    include: list[str | IncludeModel] = Field(default_factory=list)
    # Architecture config for pytorch:// policies (relative to the suite file); --pytorch-config wins.
    pytorch_config: str | None = None
    # What Metta checkpoints' channels and actions mean (policies/metta/presets.py); --metta-preset wins.
    metta_preset: str | None = None
    # The suite verdict's control over its K gated tasks: "bonferroni" runs each task's gate with
    # beta / K, so a policy a margin above every threshold fails the suite with probability <= beta.
    multiplicity: Literal["bonferroni", "none"] = "bonferroni"
    defaults: dict[str, Any] = Field(default_factory=dict)
    tasks: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class Task:
    """One evaluation task, with every default resolved."""

    suite: str
    name: str
    map_path: Path
    settings: TaskSettings
    seed: int
    description: str = ""
    pytorch_config: Path | None = None
    metta_preset: str | None = None
    # Gated tasks in the suite this task was run as part of, and how the suite verdict divides
    # its false-fail rate among them (the task's gate runs at beta / gated_tasks for "bonferroni").
    gated_tasks: int = 1
    suite_tasks: int = 1  # all of the suite's tasks: each is gated when a baseline is given
    multiplicity: str = "bonferroni"

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split("/", 1)[1]

    def with_overrides(self, *, num_episodes: int | None = None, seed: int | None = None) -> Task:
        settings = self.settings
        if num_episodes is not None:
            settings = settings.model_copy(update={"num_episodes": num_episodes})
        return replace(self, settings=settings, seed=self.seed if seed is None else seed)

    def with_settings(self, **changes: Any) -> Task:
        return replace(self, settings=self.settings.model_copy(update=changes))


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    seed: int
    tasks: tuple[Task, ...]
    description: str = ""


# A bad value is quoted as a short excerpt: a 1 KB file of YAML aliases can stand for gigabytes.
_EXCERPT = reprlib.Repr()
_EXCERPT.maxlevel, _EXCERPT.maxstring, _EXCERPT.maxother = 2, 60, 60
_EXCERPT.maxdict = _EXCERPT.maxlist = _EXCERPT.maxtuple = _EXCERPT.maxset = 4
MAX_SUITE_BYTES = 1 << 20


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(
        _EXCERPT.repr(part) if not isinstance(part, str | int) else str(part)[:60] for part in loc
    ) or ("(top level)")


def _describe(error: dict[str, Any], loc: tuple[Any, ...]) -> str:
    if error["type"] == "extra_forbidden":
        return f"unknown key '{_where(loc)}'"
    if error["type"] == "missing":
        return f"missing required key '{_where(loc)}'"
    return f"key '{_where(loc)}': {error['msg']} (got {_EXCERPT.repr(error.get('input'))})"


def _errors(path: Path, context: str, exc: ValidationError) -> SuiteError:
    errors = exc.errors()
    lines = [f"{path}: {context}: {_describe(err, tuple(err['loc']))}" for err in errors[:5]]
    if len(errors) > 5:
        lines.append(f"{path}: {context}: and {len(errors) - 5} more problems")
    return SuiteError("\n".join(lines))


def read_yaml(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SUITE_BYTES + 1)
        if len(data) > MAX_SUITE_BYTES:
            raise SuiteError(f"{path}: over {MAX_SUITE_BYTES >> 20} MB: not a suite")
        return yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SuiteError(
            f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        ) from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {str(exc)[:300]}") from None
    except RecursionError:
        raise SuiteError(f"{path}: not valid YAML: it nests too deeply") from None
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None


MAP_ROOTS_VAR = "POLICYEVAL_MAP_ROOTS"  # more folders maps may come from (os.pathsep-separated)


def _map_path(suite_path: Path, label: str, name: str) -> Path:
    """A map file inside the suite's folder (or an allowed root); a refusal reads nothing."""
    where = f"{suite_path}: {label}: key 'map'"
    try:
        path = (suite_path.parent / name).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop, say
        raise SuiteError(f"{where}: {name[:120]}: cannot resolve the path ({exc})") from None
    roots = [suite_path.parent.resolve()]
    roots += [Path(root).resolve() for root in os.environ.get(MAP_ROOTS_VAR, "").split(os.pathsep) if root]
    if not any(path.is_relative_to(root) for root in roots):
        raise SuiteError(
            f"{where}: {name[:120]} is outside the suite's folder {roots[0]} (allow more folders "
            f"with ${MAP_ROOTS_VAR})"
        )
    if not path.is_file():
        raise SuiteError(f"{where}: map file not found: {name[:120]} (looked at {path})")
    return path


def load_suite(path: str | Path, _including: tuple[Path, ...] = ()) -> Suite:
    """Read and validate a suite file. Raises SuiteError naming the file, task and key."""
    path = Path(path)
    if path.resolve() in _including:
        chain = " -> ".join(str(p) for p in (*_including, path.resolve()))
        raise SuiteError(f"{path}: suites include each other in a cycle: {chain}")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: a suite must be a mapping with 'name' and 'tasks'")
    try:
        suite = SuiteModel.model_validate(raw)
    except ValidationError as exc:
        raise _errors(path, "suite", exc) from None
    if not suite.tasks and not suite.include:
        raise SuiteError(f"{path}: suite: key 'tasks': a suite needs 'tasks' or 'include'")
    pytorch_config = (path.parent / suite.pytorch_config).resolve() if suite.pytorch_config else None
    if suite.metta_preset is not None:
        from pytest_policyeval.policies.metta.presets import known_presets

        if suite.metta_preset not in known_presets():
            raise SuiteError(
                f"{path}: suite: key 'metta_preset': unknown preset {suite.metta_preset[:80]!r}; "
                f"known: {known_presets()}"
            )

    try:
        TaskSettings.model_validate(suite.defaults)
    except ValidationError as exc:
        raise SuiteError(
            "\n".join(f"{path}: defaults: {_describe(e, tuple(e['loc']))}" for e in exc.errors())
        ) from None

    tasks: list[Task] = []
    seen: set[str] = set()
    for number, entry in enumerate(suite.include):
        part = entry if isinstance(entry, IncludeModel) else IncludeModel(suite=entry)
        included = path.parent / part.suite
        where = f"{path}: key 'include.{number}'"
        if not included.is_file():
            raise SuiteError(f"{where}: suite file not found: {part.suite} (looked at {included})")
        chosen = load_suite(included, (*_including, path.resolve())).tasks
        if part.tasks is not None:
            chosen = tuple(t for t in chosen if any(fnmatch.fnmatchcase(t.name, p) for p in part.tasks))
            if not chosen:
                raise SuiteError(f"{where}: no task of {part.suite} matches {part.tasks}")
        for task in chosen:
            task = replace(
                task,
                suite=suite.name,
                pytorch_config=pytorch_config or task.pytorch_config,
                metta_preset=suite.metta_preset or task.metta_preset,
                gated_tasks=1,  # counted again over this suite below
                suite_tasks=1,
                multiplicity=suite.multiplicity,
            )
            if task.name in seen:
                if task != next(t for t in tasks if t.name == task.name):
                    raise SuiteError(f"{where}: task '{task.name}' is defined differently twice")
                continue
            seen.add(task.name)
            tasks.append(task)
    for index, entry in enumerate(suite.tasks):
        label = (
            f"task '{entry.get('name')}' (tasks[{index}])" if isinstance(entry, dict) else f"tasks[{index}]"
        )
        if not isinstance(entry, dict):
            raise SuiteError(f"{path}: {label}: must be a mapping")
        try:
            model = TaskModel.model_validate({**suite.defaults, **entry})
        except ValidationError as exc:
            raise _errors(path, label, exc) from None
        if model.name in seen:
            raise SuiteError(f"{path}: {label}: key 'name': duplicate task name '{model.name}'")
        seen.add(model.name)
        map_path = _map_path(path, label, model.map)
        try:
            grid = read_map(map_path)
        except MapError as exc:
            raise SuiteError(f"{path}: {label}: key 'map': {model.map}: {exc}") from None
        if model.game == "navigation" and grid.num_goals == 0:
            raise SuiteError(f"{path}: {label}: key 'map': {model.map}: a navigation map needs a goal ('_')")
        wanted = model.goals_to_finish
        if model.game == "navigation" and isinstance(wanted, int) and wanted > grid.num_goals:
            raise SuiteError(
                f"{path}: {label}: key 'goals_to_finish': {wanted} but the map has {grid.num_goals} goal(s)"
            )
        if model.game == "laser_tag" and grid.num_teams < 2:
            raise SuiteError(
                f"{path}: {label}: key 'map': {model.map}: laser_tag needs agents of two teams ('1' and '2')"
            )
        settings = TaskSettings.model_validate(model.model_dump(include=set(TaskSettings.model_fields)))
        from pytest_policyeval.envs.scores import ScoreRangeError, check_score_range

        try:
            check_score_range(settings, grid)
        except ScoreRangeError as exc:
            raise SuiteError(f"{path}: {label}: {exc}") from None
        tasks.append(
            Task(
                suite=suite.name,
                name=model.name,
                map_path=map_path,
                settings=settings,
                seed=suite.seed,
                description=model.description,
                pytorch_config=pytorch_config,
                metta_preset=suite.metta_preset,
            )
        )
    # Gated: a threshold or the suite's own baseline (with --baseline-uri every task is gated).
    gated = sum(1 for t in tasks if t.settings.threshold is not None or t.settings.baseline_uri)
    tasks = [
        replace(task, gated_tasks=max(1, gated), suite_tasks=len(tasks), multiplicity=suite.multiplicity)
        for task in tasks
    ]
    return Suite(
        name=suite.name, path=path, seed=suite.seed, tasks=tuple(tasks), description=suite.description
    )
