"""The evaluation session: one per pytest process, in `config.stash` and registered as a plugin.

It holds the resolved options, loads each policy once per process and runs tasks. On the
controller (the only process in a serial run; the xdist controller otherwise) its hooks gather
every task's result from the test reports, write the result files and print the summary.
"""

from __future__ import annotations

import gc
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_policyeval.redact import redact_data, redact_text, redact_uri

if TYPE_CHECKING:
    from pytest_policyeval.policies.base import Policy
    from pytest_policyeval.reporting.film import Film
    from pytest_policyeval.results import TaskResult
    from pytest_policyeval.task import Task
    from pytest_policyeval.watchdog import HangWatch


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
    metta_preset: str | None = None  # overrides the suite's metta_preset
    replay_dir: Path | None = None  # --save-replays: write the recorded episodes here
    replay_episodes: int = 1  # episodes recorded per task when replays are wanted
    report_replays: bool = False  # an HTML report or W&B run wants films of the recorded episodes
    shard: tuple[int, int] | None = None  # (shard id, number of shards) of a split run
    data_dir: Path | None = None  # cache of downloaded policies (None: the default cache)
    output_uri: str | None = None  # --eval-output-uri: publish the results there
    wandb: bool = False  # --wandb: log the run to W&B from the controller
    progress: bool = False  # --eval-progress: a live line per task (serial runs)
    wandb_run_name: str | None = None
    baseline_uri: str | None = None  # --baseline-uri: gate on per-seed differences to this policy
    eval_cache: bool = True  # keep and reuse per-episode results (episode_cache.py)
    wandb_entity: str | None = None  # defaults for wandb://run/NAME (else the WANDB_* variables)
    wandb_project: str | None = None

    @property
    def recorded_episodes(self) -> int:
        return self.replay_episodes if (self.replay_dir is not None or self.report_replays) else 0


@dataclass(eq=False)
class EvalSession:
    options: EvalOptions
    is_controller: bool = True
    explicit_paths: frozenset[Path] = frozenset()
    rootpath: Path = Path()
    worker_count: int = 1  # processes evaluating side by side (xdist workers), sharing the cores
    worker_index: int = 0  # this xdist worker's number (gwN)
    shared_tmp: Callable[[], Path] | None = None  # a temp dir all of this run's processes share
    config: Any = None  # the pytest config, for the terminal (live progress)
    results: list[TaskResult] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    suites_without_policy: list[Path] = field(default_factory=list)
    _policies: dict[str, Any] = field(default_factory=dict)
    _suites: dict[Path, int] = field(default_factory=dict)
    _reported: set[str] = field(default_factory=set)  # node ids whose result was gathered
    films: dict[str, list[Any]] = field(default_factory=dict)  # "LABEL/TASK" -> film JSON, for W&B
    published: list[str] = field(default_factory=list)  # URLs written by --eval-output-uri
    publish_error: str | None = None
    write_errors: list[str] = field(default_factory=list)  # results files that could not be written
    wandb_url: str | None = None
    # Node ids of the task items this run collected (None: not known in this process) and
    # whether pytest was interrupted: what the results files say about their completeness.
    expected_tasks: set[str] | None = None
    interrupted: bool = False
    _heap_frozen: bool = False
    _episode_cache: Any = None

    # -- running ---------------------------------------------------------------------------------

    def suite_index(self, path: Path) -> int:
        """A stable number per suite file, in collection order (identical on every xdist worker)."""
        return self._suites.setdefault(Path(path).resolve(), len(self._suites))

    def policy(self, uri: str, task: Task | None = None) -> Policy:
        """Load a policy once per process; a failed load fails every task of that policy alike."""
        from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy

        config = self.options.pytorch_config or (task.pytorch_config if task else None)
        preset = self.options.metta_preset or (task.metta_preset if task else None)
        key = (uri, config, preset)
        if key not in self._policies:
            try:
                options = LoadOptions(
                    pytorch_config=config,
                    metta_preset=preset,
                    data_dir=self.options.data_dir,
                    wandb_entity=self.options.wandb_entity,
                    wandb_project=self.options.wandb_project,
                    run_dir=self.shared_tmp() if self.shared_tmp else None,
                )
                self._policies[key] = load_policy(uri, options)
            except PolicyLoadError as exc:
                self._policies[key] = exc
            self._share_cores()
            self.pin_to_cores()
        loaded = self._policies[key]
        if isinstance(loaded, PolicyLoadError):
            raise loaded
        return loaded

    def pin_to_cores(self) -> None:
        """Bind xdist worker i to its own slice of the allowed cores (Linux; N workers <= cores).

        Each worker then keeps its caches and never has the scheduler move it onto the core the
        other worker is using: -n 2 on 2 cores ran about 5% faster. Done when a worker first loads
        a policy, so test runs that evaluate none are never bound (processes they start would
        inherit it). An explicit OMP_NUM_THREADS means the user manages threads: left alone.
        """
        if not hasattr(os, "sched_setaffinity") or self.worker_count <= 1 or "OMP_NUM_THREADS" in os.environ:
            return
        allowed = sorted(os.sched_getaffinity(0))
        share = len(allowed) // self.worker_count
        if share < 1:
            return
        slot = self.worker_index % self.worker_count
        os.sched_setaffinity(0, allowed[slot * share : (slot + 1) * share])

    def _share_cores(self) -> None:
        """Give each of N worker processes 1/N of the cores for torch's thread pool.

        torch starts one thread per core in every process; with xdist workers on the same cores
        they oversubscribe them (on 2 cores, `-n 2` ran 2.5x slower than serial). An explicit
        OMP_NUM_THREADS is left alone.
        """
        torch = sys.modules.get("torch")  # only policies that use torch load it
        if torch is None or self.worker_count <= 1 or "OMP_NUM_THREADS" in os.environ:
            return
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.worker_count))

    def npc_uri(self, task: Task) -> str | None:
        if task.settings.policy_agents_pct >= 1.0:
            return None
        return self.options.npc_policy_uri or task.settings.npc_policy_uri

    def resolve(self, task: Task) -> Task:
        """The task as it will run: command-line and ini overrides applied."""
        task = task.with_overrides(num_episodes=self.options.num_episodes, seed=self.options.seed)
        if self.options.num_episodes is not None:
            # Asked for N episodes: play exactly N; a sequential gate that cannot decide on them
            # says inconclusive rather than guess.
            task = task.with_settings(max_episodes=self.options.num_episodes)
        if self.options.gate is not None:
            task = task.with_settings(gate=self.options.gate)
        return task

    def new_result(self, task: Task, uri: str, label: str, order: tuple[int, int, int]) -> TaskResult:
        """The result of `task` for `uri` before it runs: what it is and how it will be gated."""
        from pytest_policyeval.results import TaskResult

        settings = task.settings
        return TaskResult(
            suite=task.suite,
            task=task.name,
            policy_uri=redact_uri(uri),
            policy_label=label,
            order=order,
            threshold=settings.threshold,
            higher_is_better=settings.higher_is_better,
            gate=settings.gate,
            num_episodes=settings.num_episodes,
            seed=task.seed,
            policy_agents_pct=settings.policy_agents_pct,
            npc_policy_uri=redact_uri(self.npc_uri(task) or "") or None,
            engine=task.engine,
        )

    def progress_line(self, task: Task, label: str) -> Any:
        if not (self.options.progress and self.is_controller and self.config is not None):
            return None
        from pytest_policyeval.reporting.progress import ProgressLine

        return ProgressLine(self.config, f"{task.name} [{label}]", task.settings.max_steps)

    def hang_watch(self) -> HangWatch | None:
        from pytest_policyeval.watchdog import HangWatch

        return HangWatch(self.shared_tmp()) if self.shared_tmp else None

    @contextmanager
    def hard_limit(self, nodeid: str, task: Task) -> Iterator[None]:
        """On an xdist worker, end the process if the rollout outlives its hard limit (watchdog.py)."""
        watch = self.hang_watch() if not self.is_controller and nodeid else None
        if watch is None:
            yield
            return
        from pytest_policyeval.watchdog import hard_limit_s

        limit = hard_limit_s(task.settings.max_time_s)
        message = (
            f"the task hung: still running {limit:g}s after it started (max_time_s="
            f"{task.settings.max_time_s:g}), so its worker was stopped; the stack it was stuck in:"
        )
        with watch.armed(nodeid, limit, message):
            yield

    def evaluate(
        self, task: Task, uri: str, label: str, order: tuple[int, int, int], nodeid: str = ""
    ) -> tuple[TaskResult, list[Film]]:
        """Run one task for one policy: its result and, for the report, its recorded episodes.

        An error becomes a result with `error` set, never lost.
        """
        result = self.new_result(task, uri, label, order)
        npc_uri = self.npc_uri(task)
        secret_bearing = [u for u in (uri, npc_uri) if u]
        result, films = self._evaluate(task, uri, npc_uri, label, nodeid, result)
        # Results leave this process: no password or signature of a URI goes with them.
        result.policy = redact_data(result.policy, secret_bearing)
        result.error = redact_text(result.error, secret_bearing) if result.error else result.error
        result.traceback = (
            redact_text(result.traceback, secret_bearing) if result.traceback else result.traceback
        )
        return result, films

    def baseline_uri(self, task: Task) -> str | None:
        return self.options.baseline_uri or task.settings.baseline_uri

    def episode_cache(self) -> Any:
        if not self.options.eval_cache:
            return None
        if self._episode_cache is None:
            from pytest_policyeval.episode_cache import EpisodeCache
            from pytest_policyeval.policies.sources.cache import default_data_dir

            self._episode_cache = EpisodeCache(self.options.data_dir or default_data_dir())
        return self._episode_cache

    def _evaluate(
        self, task: Task, uri: str, npc_uri: str | None, label: str, nodeid: str, result: TaskResult
    ) -> tuple[TaskResult, list[Film]]:
        import time

        from pytest_policyeval.gating import episode_check, episodes_key, fill_result, gate_design
        from pytest_policyeval.policies import PolicyLoadError
        from pytest_policyeval.rounds import Episodes, gate_task

        baseline_uri = self.baseline_uri(task)
        try:
            policy = self.policy(uri, task)
            result.policy = policy.describe()
        except PolicyLoadError as exc:
            result.error = f"policy could not be loaded: {exc}"
            return result, []
        try:
            npc = self.policy(npc_uri, task) if npc_uri else None
        except PolicyLoadError as exc:
            result.error = f"npc policy could not be loaded: {exc}"
            return result, []
        try:
            baseline = self.policy(baseline_uri, task) if baseline_uri else None
        except PolicyLoadError as exc:
            result.error = f"baseline policy could not be loaded: {exc}"
            return result, []
        started = time.perf_counter()
        first_round: list[float] = []  # when the first round began: the start of max_time_s
        cache = self.episode_cache()
        recorded = frozenset(range(self.options.recorded_episodes))

        def episodes(player: Policy, fresh: frozenset[int]) -> Episodes:
            key, meta = episodes_key(task, player, npc, self.options.device)
            play = self._player(task, player, npc, label, first_round)
            return Episodes(play, cache, key, meta, fresh, check=episode_check(task))

        try:
            design = gate_design(task, paired=baseline is not None)
            with self.hard_limit(nodeid, task):
                run = gate_task(
                    design,
                    episodes(policy, recorded),
                    task.settings.num_episodes,
                    episodes(baseline, frozenset()) if baseline is not None else None,
                )
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            result.traceback = traceback.format_exc(limit=8)
            return result, []
        self._freeze_heap_once()
        fill_result(result, task, run, baseline_uri)
        result.wall_time_s = time.perf_counter() - started
        if math.isnan(result.score):
            result.error = "no agent-episodes were scored"
        try:
            films = self._keep_replays(result, run.episodes, self.options.recorded_episodes)
        except Exception as exc:  # the score stands; the missing replay is the task's error
            result.error = f"replays could not be saved: {type(exc).__name__}: {exc}"
            films = []
        if result.error is not None:
            result.passed = None  # an errored task passed nothing, whatever its gate said
        return result, films

    def _player(self, task: Task, policy: Policy, npc: Policy | None, label: str, clock: list[float]) -> Any:
        """Plays episode indices of `task` in one batch (one round), with live progress if asked.

        `clock` holds when the task's first round began (set by the first call): max_time_s
        counts the task's rounds together, not the set-up before them.
        """
        from pytest_policyeval.runner import run_task

        def play(indices: list[int]) -> tuple[list[Any], float, int]:
            progress = self.progress_line(task, label)
            try:
                rollout = run_task(
                    task,
                    policy,
                    self.options.device,
                    npc=npc,
                    record=self.options.recorded_episodes,
                    progress=progress,
                    indices=indices,
                    started=clock[0] if clock else None,  # the first round starts the budget
                )
            finally:
                if progress is not None:
                    progress.close()
            if not clock:
                clock.append(rollout.started)
            return rollout.episodes, rollout.wall_time_s, rollout.agent_steps

        return play

    def _freeze_heap_once(self) -> None:
        """After the first rollout, move every object alive out of the cyclic collector's sight.

        By then torch, mettagrid and the policies are loaded, and they live until the process
        ends. Each full collection otherwise rescans them (about 0.15 s here), and pytest collects
        five times at exit before Python's own shutdown: the exit of every process (each xdist
        worker too) took about 1.3 s, now 0.2 s. Frozen objects are still freed by reference
        counting; only reference cycles among them are kept.
        """
        if self._heap_frozen:
            return
        self._heap_frozen = True
        gc.collect(1)  # the young garbage first, so little of it is kept
        gc.freeze()

    def _keep_replays(self, result: TaskResult, episodes: list[Any], recorded: int) -> list[Film]:
        """Save the recorded episodes as replay files and/or films for the HTML report."""
        from pytest_policyeval.atomic import write_bytes_atomic
        from pytest_policyeval.engines import engine_named
        from pytest_policyeval.reporting.replays import replay_path, replay_url

        engine = engine_named(result.engine)
        replay_file, film = getattr(engine, "replay_file", None), getattr(engine, "film", None)
        films = []
        for episode in episodes[:recorded]:
            if episode.replay is None:
                continue
            if self.options.replay_dir is not None and replay_file is not None:
                path = replay_path(
                    self.options.replay_dir, result.suite, result.policy_label, result.task, episode.index
                )
                write_bytes_atomic(path, replay_file(episode.replay))
                result.replay_urls.append(replay_url(path))
            if self.options.report_replays and film is not None:
                title = f"episode {episode.index} (seed {episode.seed}): score {episode.score:.4g}"
                films.append(film(episode.replay, title, episode.policy_agents))
        return films

    # -- reporting (controller) -----------------------------------------------------------------

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
            "shard": {"id": self.options.shard[0], "count": self.options.shard[1]}
            if self.options.shard
            else None,
        }

    def write_files(self) -> None:
        from pytest_policyeval.atomic import write_text_atomic
        from pytest_policyeval.reporting.documents import (
            dump_json,
            dump_yaml,
            evaluation_yaml,
            evaluator_json,
        )

        run = self.run_info()
        outputs = [
            (self.options.json_path, lambda: dump_json(evaluator_json(self.results, run))),
            (self.options.yaml_path, lambda: dump_yaml(evaluation_yaml(self.results, run))),
        ]
        for path, render in outputs:
            if path is None:
                continue
            # One output that cannot be written (a full disk, a folder gone) loses only itself.
            try:
                self.written.append(write_text_atomic(path, render()))
            except (OSError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self.write_errors.append(f"{path}: {reason}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_controller:
            return
        data = getattr(report, "policyeval", None)
        if data is not None:
            from pytest_policyeval.results import TaskResult

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

    def suite_path(self, node_path: str) -> Path:
        """The suite file of a node id's path: below the rootdir, or a file given outside it."""
        from pytest_policyeval.collection.items import suite_nodeid

        for path in self.explicit_paths:
            if suite_nodeid(path, self.rootpath) == node_path:
                return path
        return self.rootpath / node_path

    def lost_result(self, report: pytest.TestReport) -> TaskResult | None:
        """An error result for a suite item that produced none, rebuilt from its node id."""
        from pytest_policyeval.collection.items import parse_node_id, unique_labels
        from pytest_policyeval.collection.suite import SuiteError, load_suite

        parsed = parse_node_id(report.nodeid)
        if parsed is None:
            return None
        path, task_name, label = parsed
        uris = list(self.options.policy_uris)
        labels = unique_labels(uris)
        uri = dict(zip(labels, uris, strict=True)).get(label, label)
        try:
            suite = load_suite(self.suite_path(path))
            index, task = next((i, t) for i, t in enumerate(suite.tasks) if t.name == task_name)
        except (SuiteError, OSError, StopIteration):
            return None
        suite_index = next(
            (r.order[0] for r in self.results if r.suite == suite.name), len(self._suites) + 999
        )
        order = (suite_index, index, labels.index(label) if label in labels else 0)
        result = self.new_result(self.resolve(task), uri, label, order)
        text = report.longreprtext.strip().splitlines()
        cause = text[-1] if text else "no details"
        watch = self.hang_watch()
        hung = watch.verdict(report.nodeid) if watch else None
        if hung is not None:
            result.error, result.traceback = hung
        elif report.when == "???":
            result.error = f"the test process died while running this task ({cause})"
        else:
            result.error = f"no result ({report.when} failed: {cause})"
        return result

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from pytest_policyeval.completeness import is_task_id

        # Under xdist the controller collects nothing itself; its workers report their ids below.
        if self.is_controller and session.items:
            self.expected_tasks = {item.nodeid for item in session.items if is_task_id(item.nodeid)}

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        from pytest_policyeval.completeness import is_task_id

        self.expected_tasks = (self.expected_tasks or set()) | {
            nodeid for nodeid in ids if is_task_id(nodeid)
        }

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not (self.is_controller and (self.results or self.expected_tasks)):
            return
        self.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        self.write_files()
        if self.write_errors and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.options.wandb or self.options.output_uri:
            self.publish()
            if self.publish_error and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def publish(self) -> None:
        """--wandb and --eval-output-uri: one W&B run (if asked), then the uploads. A failure here
        is reported and fails the run; the local files are already written."""
        from pytest_policyeval.reporting.sinks import SinkError, publish

        run, results, info = None, sorted(self.results, key=lambda r: r.order), self.run_info()
        argv = sys.argv
        # W&B records the command line with the run: not the passwords of the URIs on it.
        sys.argv = [redact_text(arg, list(self.options.policy_uris)) for arg in argv]
        try:
            if self.options.wandb:
                from pytest_policyeval.reporting.wandb_log import log_results, open_run

                run = open_run(
                    self.options.wandb_run_name,
                    self.options.wandb_entity,
                    self.options.wandb_project,
                    info,
                )
                self.wandb_url = getattr(run, "url", None) or getattr(run, "dir", None)
                log_results(run, results, self.films)
            if self.options.output_uri:
                self.published = publish(self.options.output_uri, results, info, self.options.replay_dir, run)
        except SinkError as exc:
            self.publish_error = str(exc)
        except Exception as exc:  # the W&B client's own errors
            self.publish_error = f"W&B logging failed: {type(exc).__name__}: {exc}"
        finally:
            if run is not None:
                run.finish()
            sys.argv = argv

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if not (self.is_controller and (self.results or self.expected_tasks)):
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
        replays = sum(len(r.replay_urls) for r in self.results)
        if replays:
            terminalreporter.write_line(f"{replays} replays written under {self.options.replay_dir}")
        if self.wandb_url:
            terminalreporter.write_line(f"W&B run: {self.wandb_url}")
        if self.published:
            terminalreporter.write_line(f"results published to {self.published[0]}")
        if self.publish_error:
            terminalreporter.write_line(f"results NOT published: {self.publish_error}", red=True)
