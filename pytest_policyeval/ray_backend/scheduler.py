"""The run loop of a run on Ray: submit every task item, report each as its result arrives.

pytest has collected the items on this machine. This plugin's `pytest_runtestloop` runs the plain
Python tests here first, then submits one Ray task per task item (longest first, each with its
resources and bounded retries), and as each finishes runs that item through pytest's own protocol
with the result already in hand (collection/items.py reports it instead of evaluating), so
reports, junitxml, the HTML report, the results files and publishing are those of any run.

Lost work: Ray re-runs a task whose worker or node died (`--eval-ray-retries`); a task that still
cannot finish becomes that task's error, never the run's. A task's own error is not retried.
Episodes come back with each result and go into this machine's episode cache, so an interrupted
run, rerun on any backend, plays only what is missing.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from pytest_policyeval.keys import PLAYED_KEY, evaluation_of
from pytest_policyeval.ray_backend.settings import RaySettings
from pytest_policyeval.ray_backend.submit import NotShipped, fits_on

if TYPE_CHECKING:
    from pytest_policyeval.collection.items import TaskItem
    from pytest_policyeval.evaluation import Evaluation
    from pytest_policyeval.ray_backend.job import Outcome
    from pytest_policyeval.results import TaskResult


POLL_S = 5.0  # how often the nodes are checked while tasks wait


class RayScheduler:
    def __init__(self, settings: RaySettings):
        self.settings = settings
        self.nodes: dict[str, int] = {}  # node id -> tasks finished there
        self.processes: set[tuple[str, int]] = set()
        self.written: dict[str, list[str]] = {}  # node id -> digests of files written there
        self.lost: int = 0  # tasks lost for good (after their retries)
        self._run_id = uuid.uuid4().hex  # tells this run's attempts of a task from other runs'
        self._asked: dict[Any, dict[str, Any]] = {}  # a submitted task's resources
        self._unfit_since: dict[Any, float] = {}  # when a waiting task was first seen to fit no node
        self._checked = -math.inf

    # -- pytest's run loop ----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
        if session.config.option.collectonly:
            return True
        from pytest_policyeval.collection.items import TaskItem

        remote = [item for item in session.items if isinstance(item, TaskItem)]
        here = [item for item in session.items if not isinstance(item, TaskItem)]
        for index, item in enumerate(here):
            following = here[index + 1] if index + 1 < len(here) else (remote[0] if remote else None)
            self._report(session, item, following)
        if remote:
            self._run_remote(session, remote)
        return True

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.nodes and not self.lost:
            return
        copies = sum(len(v) for v in self.written.values())
        terminalreporter.write_line(
            f"ray: {sum(self.nodes.values())} task(s) on {len(self.nodes)} node(s) in "
            f"{len(self.processes)} worker process(es); {copies} policy/map file copies written on "
            f"nodes; {self.lost} task(s) lost after {self.settings.retries} retries"
        )

    def pytest_unconfigure(self) -> None:
        from pytest_policyeval.ray_backend.connect import disconnect

        disconnect(started_here=self.settings.address == "local")

    # -- the remote part ------------------------------------------------------------------------

    def _run_remote(self, session: pytest.Session, items: list[TaskItem]) -> None:
        from pytest_policyeval.ray_backend.connect import ClusterUnreachable, connect
        from pytest_policyeval.ray_backend.job import run_job
        from pytest_policyeval.ray_backend.shipping import Shipment
        from pytest_policyeval.ray_backend.submit import Jobs

        try:
            ray = connect(self.settings.address)
        except ClusterUnreachable as exc:
            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        from pytest_policyeval import signals

        signals.reclaim()  # ray.init put its own (sys.exit) in place: ours again
        evaluation = evaluation_of(session.config)
        jobs = Jobs(evaluation, Shipment(ray), self.settings, self._run_id)
        remote_job = ray.remote(run_job)
        running: dict[Any, TaskItem] = {}
        ready: list[tuple[TaskItem, tuple[TaskResult, list]]] = []
        for item in sorted(items, key=lambda i: (-i.cost(), i.nodeid)):
            try:
                job = jobs.job(item)
                resources = jobs.resources(job)
            except NotShipped as exc:
                ready.append((item, (self._error(item, evaluation, str(exc)), [])))
                continue
            ref = remote_job.options(
                **resources, max_retries=self.settings.retries, retry_exceptions=False
            ).remote(job)
            running[ref] = item
            self._asked[ref] = resources
        pending = list(running)
        try:
            for item, played in ready:
                self._report_played(session, item, played, running[pending[0]] if pending else None)
            while pending:
                for ref, message in self._unrunnable(ray, pending):
                    pending.remove(ref)
                    ray.cancel(ref)
                    played = (self._error(running[ref], evaluation, message), [])
                    self._report_played(
                        session, running[ref], played, running[pending[0]] if pending else None
                    )
                done, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
                for ref in done:
                    item = running[ref]
                    played = self._collect(ray, ref, item, evaluation)
                    following = running[pending[0]] if pending else None
                    self._report_played(session, item, played, following)
        except BaseException:
            self._salvage(ray, pending, evaluation)  # keep finished work for the rerun
            raise

    def _unrunnable(self, ray: Any, pending: list) -> list[tuple[Any, str]]:
        """Waiting tasks that no live node can run and that have waited --eval-ray-node-wait for
        one to join (an autoscaler, nodes still starting, a node lost mid-run), with why."""
        now = time.monotonic()
        if now - self._checked < POLL_S:
            return []
        self._checked = now
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        found = []
        for ref in pending:
            try:
                fits_on(self._asked[ref], nodes)
                self._unfit_since.pop(ref, None)
            except NotShipped as exc:
                since = self._unfit_since.setdefault(ref, now)
                if now - since >= self.settings.node_wait_s:
                    found.append((ref, f"{exc}; waited {now - since:.0f}s for such a node to join"))
        return found

    def _report_played(self, session: pytest.Session, item: Any, played: tuple, following: Any) -> None:
        item.stash[PLAYED_KEY] = played
        self._report(session, item, following)

    def _report(self, session: pytest.Session, item: Any, following: Any) -> None:
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=following)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)

    def _collect(self, ray: Any, ref: Any, item: Any, evaluation: Evaluation) -> tuple[TaskResult, list]:
        """A finished Ray task's result, its episodes kept here; a lost or failed one's error."""
        from ray import exceptions

        try:
            outcome: Outcome = ray.get(ref)
        except exceptions.RayTaskError as exc:  # the job itself raised (not an evaluation error)
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return self._error(
                item, evaluation, f"failed on its Ray worker: {type(cause).__name__}: {cause}"
            ), []
        except exceptions.RayError as exc:  # its worker or node died, after every retry
            self.lost += 1
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            message = (
                f"lost on Ray after {self.settings.retries} retries ({type(exc).__name__}: {first[:300]})"
            )
            return self._error(item, evaluation, message), []
        self.nodes[outcome.node] = self.nodes.get(outcome.node, 0) + 1
        self.processes.add((outcome.node, outcome.pid))
        self.written.setdefault(outcome.node, []).extend(outcome.written)
        return self._keep(outcome, evaluation)

    def _keep(self, outcome: Outcome, evaluation: Evaluation) -> tuple[TaskResult, list]:
        from pytest_policyeval.results import TaskResult

        cache = evaluation.episode_cache()
        if cache is not None:
            for key, meta, episodes in outcome.rounds:
                cache.store(key, episodes, meta)
            for hint, key in outcome.hints:
                cache.remember(hint, key)
        result = TaskResult.from_dict(outcome.result)
        if outcome.replays and evaluation.options.replay_dir is not None:
            result.replay_urls = self._write_replays(outcome, result, evaluation.options.replay_dir)
        return result, outcome.films

    @staticmethod
    def _write_replays(outcome: Outcome, result: TaskResult, root: Any) -> list[str]:
        from pytest_policyeval.atomic import write_bytes_atomic
        from pytest_policyeval.ray_backend.shipping import relative_name
        from pytest_policyeval.reporting.replays import replay_url

        urls = []
        for rel, data in outcome.replays:
            path = write_bytes_atomic(root / relative_name(rel), data)
            urls.append(replay_url(path))
        return urls

    def _salvage(self, ray: Any, pending: list, evaluation: Evaluation) -> None:
        """On the way out (Ctrl-C, -x): keep the episodes of tasks already done, cancel the rest."""
        if not pending:
            return
        try:
            done, rest = ray.wait(pending, num_returns=len(pending), timeout=0)
            for ref in done:
                with contextlib.suppress(Exception):  # a failed task has no episodes to keep
                    self._keep(ray.get(ref, timeout=5), evaluation)
            for ref in rest:
                ray.cancel(ref, force=True)
        except Exception:  # the cluster may be what went away
            pass

    @staticmethod
    def _error(item: Any, evaluation: Evaluation, message: str) -> TaskResult:
        task = evaluation.resolve(item.task)
        return evaluation.error_result(task, item.uri, item.label, item.order, message)
