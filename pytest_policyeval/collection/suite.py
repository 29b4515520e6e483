"""Suite files: YAML that lists evaluation tasks, validated into `Suite` objects.

A suite has a name, a seed, `defaults` that every task inherits, and `tasks`. Each task is
`category/name` with step and episode budgets, an optional score threshold and its gate
(task.py), and what its engine plays: the engine (`engine:`, default mettagrid) owns and checks
every other key (a map for mettagrid, an environment id for gymnasium).
`include` lists other suite files whose tasks join this suite as they are (their own defaults and
seed), so a combined suite such as `full_eval` never copies its parts; a task included twice
with the same definition counts once.
This module knows nothing about pytest; engines are reached through the registry.
"""

from __future__ import annotations

import fnmatch
import re
import reprlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pytest_policyeval.task import DEFAULT_ENGINE, Task, TaskSettings

TASK_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class SuiteError(Exception):
    """A suite file that cannot be used; the message names the file, the task and the key."""


class TaskModel(TaskSettings):
    """A task entry's own keys; the rest belong to its engine (`engine`, default mettagrid)."""

    name: str
    description: str = ""
    engine: str = Field(default=DEFAULT_ENGINE, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

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


def _hint(context: str, error: dict[str, Any]) -> str:
    """A task's setting written at the suite's top level: where it goes instead."""
    loc = tuple(error["loc"])
    top_level = context == "suite" and error["type"] == "extra_forbidden" and len(loc) == 1
    if top_level and loc[0] in TaskModel.model_fields:  # TaskSettings' keys included
        return " (a task setting: put it under 'defaults:' for every task, or in a task)"
    return ""


def _errors(path: Path, context: str, exc: ValidationError) -> SuiteError:
    errors = exc.errors()
    lines = [
        f"{path}: {context}: {_describe(err, tuple(err['loc']))}{_hint(context, err)}" for err in errors[:5]
    ]
    if len(errors) > 5:
        lines.append(f"{path}: {context}: and {len(errors) - 5} more problems")
    return SuiteError("\n".join(lines))


class _SuiteLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: `1e-3` and `5E2` are numbers (YAML
    1.1 wants a dot and a signed exponent, and would hand the suite a string)."""

    yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML keeps the last of two equal keys; a suite that says `threshold` twice (or
        # `tasks` twice, dropping a list) is a mistake to name, not one to guess at. Keys merged
        # in with `<<` may be overridden, as YAML means them to be.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_SuiteLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)$"),
    list("-+.0123456789"),
)


def read_yaml(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SUITE_BYTES + 1)
        if len(data) > MAX_SUITE_BYTES:
            raise SuiteError(f"{path}: over {MAX_SUITE_BYTES >> 20} MB: not a suite")
        return yaml.load(data.decode("utf-8"), Loader=_SuiteLoader)  # a SafeLoader: no objects
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


def _engine(path: Path, label: str, name: str) -> Any:
    from pytest_policyeval.engines import engine_named
    from pytest_policyeval.registry import RegistryError

    try:
        return engine_named(name)
    except RegistryError as exc:
        raise SuiteError(f"{path}: {label}: key 'engine': {exc}") from None


def _check_defaults(path: Path, defaults: dict[str, Any]) -> None:
    """Keys in `defaults` are checked with the first task that uses them; an unknown one now."""
    try:
        TaskSettings.model_validate({k: v for k, v in defaults.items() if k in TaskSettings.model_fields})
    except ValidationError as exc:
        raise SuiteError(
            "\n".join(f"{path}: defaults: {_describe(e, tuple(e['loc']))}" for e in exc.errors())
        ) from None
    engine = _engine(path, "defaults", str(defaults.get("engine", DEFAULT_ENGINE)))
    for key in defaults:
        if key not in TaskModel.model_fields and key not in engine.settings_model.model_fields:
            raise SuiteError(f"{path}: defaults: unknown key '{_where((key,))}'")


def _check_task(path: Path, label: str, engine: Any, task: Task) -> None:
    """The engine's own checks (files it names, ids it knows), then the gate's."""
    from pytest_policyeval.engines.base import EngineError
    from pytest_policyeval.gates.decide import gate_for
    from pytest_policyeval.gating import ScoreRangeError, check_cap, check_score_range
    from pytest_policyeval.registry import RegistryError

    try:
        engine.check_task(task)
    except EngineError as exc:
        raise SuiteError(f"{path}: {label}: {exc}") from None
    try:
        gate_for(task.settings.gate)
    except RegistryError as exc:
        raise SuiteError(f"{path}: {label}: key 'gate': {exc}") from None
    try:
        paired = task.settings.baseline_uri is not None
        if not paired:  # the baseline's gate is on differences, whatever the threshold
            check_score_range(task)
        check_cap(task, paired_gate=paired)
    except ScoreRangeError as exc:
        raise SuiteError(f"{path}: {label}: {exc}") from None


def _check_caps(path: Path, tasks: list[Task]) -> None:
    """The caps again, now that the suite's K is known: beta / K needs more episodes to fail."""
    from pytest_policyeval.gating import ScoreRangeError, check_cap

    for task in tasks:
        try:
            check_cap(task, paired_gate=task.settings.baseline_uri is not None)
        except ScoreRangeError as exc:
            raise SuiteError(
                f"{path}: task '{task.name}': {exc} (at beta / {task.gated_tasks}, for its suite's "
                f"{task.gated_tasks} gated tasks)"
            ) from None


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

    _check_defaults(path, suite.defaults)

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
        merged = {**suite.defaults, **entry}
        try:
            model = TaskModel.model_validate({k: v for k, v in merged.items() if k in TaskModel.model_fields})
        except ValidationError as exc:
            raise _errors(path, label, exc) from None
        if model.name in seen:
            raise SuiteError(f"{path}: {label}: key 'name': duplicate task name '{model.name}'")
        seen.add(model.name)
        engine = _engine(path, label, model.engine)
        try:
            env = engine.settings_model.model_validate(
                {k: v for k, v in merged.items() if k not in TaskModel.model_fields}
            )
        except ValidationError as exc:
            raise _errors(path, label, exc) from None
        task = Task(
            suite=suite.name,
            name=model.name,
            # What the suite set, validated again; defaults are not (a default cap of 1000 is
            # no mistake beside num_episodes 1500, a declared one is).
            settings=TaskSettings.model_validate(
                model.model_dump(include=set(TaskSettings.model_fields), exclude_unset=True)
            ),
            seed=suite.seed,
            engine=model.engine,
            env=env,
            folder=path.parent,
            description=model.description,
            pytorch_config=pytorch_config,
            metta_preset=suite.metta_preset,
        )
        _check_task(path, label, engine, task)
        tasks.append(task)
    # Gated: a threshold or the suite's own baseline (with --baseline-uri every task is gated).
    gated = sum(1 for t in tasks if t.settings.threshold is not None or t.settings.baseline_uri)
    tasks = [
        replace(task, gated_tasks=max(1, gated), suite_tasks=len(tasks), multiplicity=suite.multiplicity)
        for task in tasks
    ]
    _check_caps(path, tasks)
    return Suite(
        name=suite.name, path=path, seed=suite.seed, tasks=tuple(tasks), description=suite.description
    )
