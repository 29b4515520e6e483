"""The controller: the one process that gathers every task's result and writes the run's files.

In a serial run it is the only process; under xdist it is the controller, which evaluates
nothing itself. It is registered as a plugin only there. Each task item's result rides on its
test report (plugin.py); a task whose worker died or whose setup failed has no result, so its
planned result (what it is and how it will be gated, sent with its setup report) becomes an
error result: nothing is re-read from the suites.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_policyeval import signals
from pytest_policyeval.evaluation import EvalOptions
from pytest_policyeval.redact import redact_text, redact_uri
from pytest_policyeval.results import TaskResult


def load_conftests(config: pytest.Config, suite_files: set[str]) -> None:
    """Loads the conftests of these suite files (node ids' paths) where pytest had not, as it does
    when it collects them. The xdist controller collects nothing itself, yet it writes and
    publishes: a conftest's sinks and results-document hooks must be known there as in a serial
    run. pytest has no public call for it; its own is stable within the pinned pytest 8."""
    manager = config.pluginmanager
    load = getattr(manager, "_loadconftestmodules", None)
    if load is None:
        return
    importmode = config.getoption("importmode")
    namespaces = bool(config.getini("consider_namespace_packages"))
    # A suite outside the rootdir has a made-up id (FOLDER/NAME.yaml, collection/items.py): only
    # ids naming a real file below the rootdir say where its conftests are.
    found = {(config.rootpath / name) for name in suite_files if (config.rootpath / name).is_file()}
    for directory in sorted({path.parent for path in found}):
        load(directory, importmode, config.rootpath, consider_namespace_packages=namespaces)


@dataclass(eq=False)
class Controller:
    options: EvalOptions
    rootpath: Path = Path()
    hang_verdict: Any = None  # watchdog.HangWatch.verdict of this run, when workers can hang
    results: list[TaskResult] = field(default_factory=list)
    films: dict[str, list[Any]] = field(default_factory=dict)  # "LABEL/TASK" -> film JSON, for W&B
    written: list[Path] = field(default_factory=list)
    write_errors: list[str] = field(default_factory=list)  # results files that could not be written
    publishing: Any = None  # reporting.publishing.Publishing, once published
    split: dict[str, Any] | None = None  # what a shard's split was cut from (plugin._record_split)
    # Node ids of the task items this run collected (None: not known yet) and whether pytest was
    # interrupted: what the results files say about their completeness.
    expected_tasks: set[str] | None = None
    interrupted: bool = False
    interrupted_late: bool = False  # Ctrl-C while the results were written or published
    _reported: set[str] = field(default_factory=set)  # node ids whose result was gathered
    _planned: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> planned result
    _document: dict[str, Any] | None = None

    # -- gathering -------------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        planned = getattr(report, "policyeval_planned", None)
        if planned is not None:
            self._planned[report.nodeid] = planned
        data = getattr(report, "policyeval", None)
        if data is not None:
            result = TaskResult.from_dict(data)
            self.results.append(result)
            self._reported.add(report.nodeid)
            films = getattr(report, "policyeval_films", None)
            if films:
                from pytest_policyeval.reporting.film import decode

                self.films[f"{result.policy_label}/{result.task}"] = [decode(film) for film in films]
        elif report.failed and report.nodeid not in self._reported:
            # The task failed without a result: its xdist worker died (when "???"), or its setup
            # failed. It still belongs in the files, as an error, next to every other task.
            lost = self.lost_result(report)
            if lost is not None:
                self.results.append(lost)
                self._reported.add(report.nodeid)

    def lost_result(self, report: pytest.TestReport) -> TaskResult | None:
        """An error result for a task item that produced none."""
        planned = self._planned.get(report.nodeid)
        if planned is not None:
            result = TaskResult.from_dict(planned)
        else:  # it died before its setup was reported: only its node id is known
            parsed = parse_node_id(report.nodeid)
            if parsed is None:
                return None
            result = unplanned_result(*parsed, len(self.results))
        text = report.longreprtext.strip().splitlines()
        cause = text[-1] if text else "no details"
        hung = self.hang_verdict(report.nodeid) if self.hang_verdict else None
        if hung is not None:
            result.error, result.traceback = hung
        elif report.when == "???":
            result.error = f"the test process died while running this task ({cause})"
        else:
            result.error = f"no result ({report.when} failed: {cause})"
        result.passed = None
        return result

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from pytest_policyeval.completeness import is_task_id

        # Under xdist the controller collects nothing itself; its workers report their ids below.
        if session.items:
            self._check_destination()  # before the run counts as started: no files for it
            self.expected_tasks = {item.nodeid for item in session.items if is_task_id(item.nodeid)}
            self._mark_started()
        elif self.options.shard and self.expected_tasks is None:
            self.expected_tasks = set()  # a shard can be given no task; it still says so in its files

    def _mark_started(self) -> None:
        """The results files say at once that a run is under way and has passed nothing, so a run
        killed outright (SIGKILL: the OOM killer, a grace period run out) leaves no earlier run's
        `passed: true` in their place. The run's end writes them again (and reports what it
        cannot write, so what cannot be written now is not reported twice)."""
        from pytest_policyeval.reporting.documents import (
            dump_json,
            dump_yaml,
            evaluation_yaml,
            evaluator_json,
        )

        run = {**self.run_status(), "in_progress": True}
        self._write_outputs(
            lambda: dump_json(evaluator_json([], run, extend=False)),
            lambda: dump_yaml(evaluation_yaml([], run)),
        )

    def _check_destination(self) -> None:
        """A destination no sink takes is a usage error before any task runs, not news after
        all of them (every conftest's sinks are registered once collection is done)."""
        from pytest_policyeval.reporting.sinks import SinkError, sink_for

        if self.options.output_uri:
            try:
                sink_for(self.options.output_uri)
            except SinkError as exc:
                raise pytest.UsageError(
                    f"--eval-output-uri: {redact_text(str(exc), [self.options.output_uri])}"
                ) from None

    def _empty_shard(self) -> bool:
        return bool(self.options.shard) and self.expected_tasks == set() and not self.results

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        split = getattr(node, "workeroutput", {}).get("policyeval_split")
        if split is not None:
            self.split = split  # every worker collects the same items: any one's will do

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        from pytest_policyeval.completeness import is_task_id

        tasks = {nodeid for nodeid in ids if is_task_id(nodeid)}
        load_conftests(node.config, {nodeid.split("::", 1)[0] for nodeid in tasks})
        first = self.expected_tasks is None
        if first:
            self._check_destination()  # as a serial run does, before the run counts as started
        self.expected_tasks = (self.expected_tasks or set()) | tasks
        if first and tasks:
            self._mark_started()

    # -- files and publishing --------------------------------------------------------------------

    def run_status(self) -> dict[str, Any]:
        from pytest_policyeval.completeness import status

        return status(self.expected_tasks, self._reported, self.interrupted)

    def run_info(self) -> dict[str, Any]:
        from pytest_policyeval.provenance import git_revision, package_versions

        return {
            **self.run_status(),
            "device": self.options.device,
            "seed_override": self.options.seed,
            "num_episodes_override": self.options.num_episodes,
            "git_sha": git_revision(self.rootpath),
            "versions": package_versions(),
            "shard": {"id": self.options.shard[0], "count": self.options.shard[1], "split": self.split}
            if self.options.shard
            else None,
            # Options that change every task's result: shards must agree on them to be one run.
            "baseline_uri": redact_uri(self.options.baseline_uri) if self.options.baseline_uri else None,
            "gate_override": self.options.gate,
            "npc_policy_uri_override": redact_uri(self.options.npc_policy_uri)
            if self.options.npc_policy_uri
            else None,
            "metta_preset_override": self.options.metta_preset,
        }

    def hook_error(self) -> str | None:
        """A plugin's results-document hook that raised, as the document records it."""
        return (self._document or {}).get("document_hook_error")

    def document(self, run: dict[str, Any]) -> dict[str, Any]:
        """The results JSON's content, made once: the file and the publishers get the same one."""
        if self._document is None:
            from pytest_policyeval.reporting.documents import evaluator_json

            self._document = evaluator_json(self.results, run)
        return self._document

    def write_files(self, run: dict[str, Any]) -> None:
        from pytest_policyeval.reporting.documents import dump_json, dump_yaml, evaluation_yaml

        written, errors = self._write_outputs(
            lambda: dump_json(self.document(run)),
            lambda: dump_yaml(evaluation_yaml(self.results, run)),
        )
        self.written += written
        self.write_errors += errors

    def _write_outputs(
        self, render_json: Callable[[], str], render_yaml: Callable[[], str]
    ) -> tuple[list[Path], list[str]]:
        """Each results file asked for, atomically: (written paths, errors naming the path)."""
        from pytest_policyeval.atomic import write_text_atomic

        written, errors = [], []
        for path, render in ((self.options.json_path, render_json), (self.options.yaml_path, render_yaml)):
            if path is None:
                continue
            # One output that cannot be written (a full disk, a folder gone) loses only itself.
            try:
                written.append(write_text_atomic(path, render()))
            except (OSError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                errors.append(f"{path}: {reason}")
        return written, errors

    def publish(self, hook: Any, run: dict[str, Any]) -> None:
        """The `pytest_policyeval_publish` hook (W&B and the output URI built in, plugins' own)."""
        from pytest_policyeval.reporting.publishing import PublishError, Publishing

        results = sorted(self.results, key=lambda r: r.order)
        options = self.options
        self.publishing = publishing = Publishing(
            run=run,
            films=self.films,
            replay_dir=options.replay_dir,
            output_uri=options.output_uri,
            wandb=options.wandb,
            wandb_run_name=options.wandb_run_name,
            wandb_entity=options.wandb_entity,
            wandb_project=options.wandb_project,
        )
        argv = sys.argv
        # W&B records the command line with the run: not the passwords of the URIs on it.
        sys.argv = [redact_text(arg, list(options.policy_uris)) for arg in argv]
        arguments = {"document": self.document(run), "results": results, "publishing": publishing}
        try:
            # Each publisher on its own: one that fails (a plugin's bug, an unreachable store) is
            # reported and the others still publish. Called in pluggy's order (tryfirst first).
            for impl in reversed(hook.pytest_policyeval_publish.get_hookimpls()):
                try:
                    impl.function(*(arguments[name] for name in impl.argnames))
                except PublishError as exc:
                    publishing.errors.append(str(exc))
                except Exception as exc:
                    publishing.errors.append(f"{impl.plugin_name}: {type(exc).__name__}: {exc}")
        finally:
            sys.argv = argv
            try:
                publishing.close()
            except Exception as exc:  # the W&B client's own error when it finishes the run
                publishing.errors.append(f"W&B run not finished: {type(exc).__name__}: {exc}")
            # An error may quote a URI of the run (URLs in the text are redacted in any case):
            # never with its password or token.
            secret_bearing = [
                *options.policy_uris,
                *(u for u in (options.output_uri, options.baseline_uri, options.npc_policy_uri) if u),
            ]
            publishing.errors[:] = [redact_text(error, secret_bearing) for error in publishing.errors]

    # Before junitxml's, which writes its report then: the suite's verdict goes into it.
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not (self.results or self.expected_tasks or self._empty_shard()):
            return
        if self._empty_shard() and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            # Tasks are split after -k, so a shard may get none: its share of the run is complete
            # (the merge refuses a run in which no shard had any task).
            session.exitstatus = pytest.ExitCode.OK
        # A second Ctrl-C during pytest's handling of the first leaves another exit status.
        self.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or signals.signalled()
        from pytest_policyeval.reporting.junit import add_suite_properties

        run = self.run_info()  # once: it asks git for the revision
        add_suite_properties(session.config, self.results, run)
        try:
            self.write_files(run)
            if (self.write_errors or self.hook_error()) and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.publish(session.config.hook, run)
        except KeyboardInterrupt:
            # Ctrl-C while the files were written or published: the files say what happened (each
            # write is atomic, so none is half-written), and nothing more is published.
            self.interrupted = self.interrupted_late = True
            self._document, self.written, self.write_errors = None, [], []
            self.write_files({**run, **self.run_status()})
            session.exitstatus = pytest.ExitCode.INTERRUPTED
            return
        if self.publishing.errors and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        # (a shard whose collection failed is no empty shard: pytest reports the errors)
        if self._empty_shard() and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            shard_id, count = self.options.shard
            terminalreporter.write_sep("=", "policy evaluation")
            terminalreporter.write_line(f"shard {shard_id} of {count} has no task")
            for path in self.written:
                terminalreporter.write_line(f"results written to {path}")
            return
        if not (self.results or self.expected_tasks):
            return
        from pytest_policyeval.completeness import describe
        from pytest_policyeval.reporting.terminal import summary_lines

        terminalreporter.write_sep("=", "policy evaluation")
        for line in summary_lines(self.results, self.run_status()):
            terminalreporter.write_line(line)
        incomplete = describe(self.run_status())
        if incomplete:
            terminalreporter.write_line(incomplete, red=True)
        for path in self.written:
            terminalreporter.write_line(f"results written to {path}")
        for error in self.write_errors:
            terminalreporter.write_line(f"results NOT written to {error}", red=True)
        if self.hook_error():
            terminalreporter.write_line(
                f"a pytest_policyeval_results_document hook failed ({self.hook_error()}): the files "
                "hold the evaluator's keys only",
                red=True,
            )
        if self.interrupted_late:
            terminalreporter.write_line(
                "interrupted while the results were written or published: nothing more was published",
                red=True,
            )
        replays = sum(len(r.replay_urls) for r in self.results)
        if replays:
            terminalreporter.write_line(f"{replays} replays written under {self.options.replay_dir}")
        publishing = self.publishing
        if publishing is not None and publishing.wandb_url:
            terminalreporter.write_line(f"W&B run: {publishing.wandb_url}")
        if publishing is not None and publishing.published:
            terminalreporter.write_line(f"results published to {publishing.published[0]}")
        for error in publishing.errors if publishing is not None else []:
            terminalreporter.write_line(f"results NOT published: {error}", red=True)


def parse_node_id(nodeid: str) -> tuple[str, str, str] | None:
    """`suites/x.yaml::category/task[label]` -> (suite path, task name, policy label)."""
    path, _, name = nodeid.partition("::")
    match = re.fullmatch(r"(.+)\[(.+)\]", name)
    if match is None or Path(path).suffix not in (".yaml", ".yml"):
        return None
    return path, match.group(1), match.group(2)


def unplanned_result(path: str, task: str, label: str, position: int) -> TaskResult:
    """What can be said of a task known only by its node id (it died before its setup ended)."""
    return TaskResult(
        suite=Path(path).stem,
        task=task,
        policy_uri=label,
        policy_label=label,
        order=(999, position, 0),
        threshold=None,
        higher_is_better=True,
        gate="-",
        num_episodes=0,
        seed=0,
    )
