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
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from pytest_policyeval.keys import PLAYED_KEY, evaluation_of
from pytest_policyeval.ray_backend.settings import RaySettings

if TYPE_CHECKING:
    from pytest_policyeval.collection.items import TaskItem
    from pytest_policyeval.evaluation import Evaluation
    from pytest_policyeval.ray_backend.job import Job, Outcome
    from pytest_policyeval.results import TaskResult


class NotShipped(RuntimeError):
    """What a task needs could not be made ready for the cluster; the task's error."""


def only_here(task: Any, uris: tuple) -> None:
    """Raise NotShipped if the task needs an engine, policy scheme or gate that a conftest.py (or
    a plugin object registered by hand) provides: a Ray worker has only installed packages."""
    from pytest_policyeval import registry
    from pytest_policyeval.policies.naming import split_uri

    needed = [("engine", "pytest_policyeval_engines", task.engine)]
    needed.append(("gate", "pytest_policyeval_gates", task.settings.gate))
    schemes = dict.fromkeys(split_uri(uri)[0] for uri in uris if uri)
    needed += [("policy scheme", "pytest_policyeval_policy_schemes", scheme) for scheme in schemes]
    for what, hook, name in needed:
        if name in registry.table(hook) and not registry.installed(hook, name):
            raise NotShipped(
                f"{what} '{name}' is registered by a conftest.py or a plugin object, which Ray "
                "workers do not load; install it as a package with a 'pytest_policyeval' entry "
                "point (README: Extending), or run without --eval-ray"
            )


def fits_on(request: dict[str, Any], nodes: list[dict[str, float]]) -> None:
    """Raise NotShipped unless some node of the cluster has all a task asks for: Ray would keep
    an infeasible task waiting for ever."""
    need = {"CPU": request.get("num_cpus", 0), "GPU": request.get("num_gpus", 0)}
    need["memory"] = request.get("memory", 0)
    need.update(request.get("resources", {}))
    need = {name: amount for name, amount in need.items() if amount}
    if any(all(node.get(name, 0) >= amount for name, amount in need.items()) for node in nodes):
        return
    largest = {name: max((node.get(name, 0) for node in nodes), default=0) for name in need}
    raise NotShipped(
        f"no node of the Ray cluster can run it: it asks for {_amounts(need)}, and the most any "
        f"node has is {_amounts(largest)} (set resources: in the suite or --eval-ray-resources)"
    )


def _amounts(resources: dict[str, float]) -> str:
    shown = {n: (f"{a / (1 << 20):g} MB" if n == "memory" else f"{a:g}") for n, a in resources.items()}
    return ", ".join(f"{name} {amount}" for name, amount in shown.items()) or "nothing"


class RayScheduler:
    def __init__(self, settings: RaySettings):
        self.settings = settings
        self.nodes: dict[str, int] = {}  # node id -> tasks finished there
        self.processes: set[tuple[str, int]] = set()
        self.written: dict[str, list[str]] = {}  # node id -> digests of files written there
        self.lost: int = 0  # tasks lost for good (after their retries)
        self._files: dict[str, Any] = {}  # policy URI -> (PolicyFile, Shipped) or None
        self._run_id = uuid.uuid4().hex  # tells this run's attempts of a task from other runs'

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

        disconnect()

    # -- the remote part ------------------------------------------------------------------------

    def _run_remote(self, session: pytest.Session, items: list[TaskItem]) -> None:
        from pytest_policyeval.ray_backend.connect import ClusterUnreachable, connect
        from pytest_policyeval.ray_backend.job import run_job
        from pytest_policyeval.ray_backend.shipping import Shipment

        try:
            ray = connect(self.settings.address, self.settings.local_cpus)
        except ClusterUnreachable as exc:
            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        evaluation = evaluation_of(session.config)
        shipment = Shipment(ray)
        remote_job = ray.remote(run_job)
        running: dict[Any, TaskItem] = {}
        ready: list[tuple[TaskItem, tuple[TaskResult, list]]] = []
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        for item in sorted(items, key=lambda i: (-i.cost(), i.nodeid)):
            try:
                job = self._job(item, evaluation, shipment)
                resources = self._resources(job)
                fits_on(resources, nodes)
            except NotShipped as exc:
                ready.append((item, (self._error(item, evaluation, str(exc)), [])))
                continue
            ref = remote_job.options(
                **resources, max_retries=self.settings.retries, retry_exceptions=False
            ).remote(job)
            running[ref] = item
        pending = list(running)
        try:
            for item, played in ready:
                self._report_played(session, item, played, running[pending[0]] if pending else None)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    item = running[ref]
                    played = self._collect(ray, ref, item, evaluation)
                    following = running[pending[0]] if pending else None
                    self._report_played(session, item, played, following)
        except BaseException:
            self._salvage(ray, pending, evaluation)  # keep finished work for the rerun
            raise

    def _report_played(self, session: pytest.Session, item: Any, played: tuple, following: Any) -> None:
        item.stash[PLAYED_KEY] = played
        self._report(session, item, following)

    def _report(self, session: pytest.Session, item: Any, following: Any) -> None:
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=following)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)

    def _job(self, item: TaskItem, evaluation: Evaluation, shipment: Any) -> Job:
        from pytest_policyeval.ray_backend.job import Job

        task = evaluation.resolve(item.task)
        options = replace(
            evaluation.options,
            json_path=None,
            yaml_path=None,
            output_uri=None,
            wandb=False,
            progress=False,
            data_dir=None,
            pytorch_config=None,
        )
        job = Job(task, item.uri, item.label, item.order, item.nodeid, options, run_id=self._run_id)
        uris = (item.uri, evaluation.npc_uri(task), evaluation.baseline_uri(task))
        only_here(task, uris)
        for uri in filter(None, uris):
            shipped = self._policy(uri, evaluation, shipment)
            if shipped is not None:
                job.policies[uri] = shipped
        try:
            if evaluation.options.pytorch_config is not None:
                job.configs["options"] = shipment.file(evaluation.options.pytorch_config)
            elif task.pytorch_config is not None:
                job.configs["task"] = shipment.file(task.pytorch_config)
            job.task_files = self._task_files(task, shipment)
        except Exception as exc:  # a file gone or unreadable since collection
            raise NotShipped(f"{type(exc).__name__}: {exc}") from None
        job.kept = self._kept(task, uris, evaluation)
        return job

    def _policy(self, uri: str, evaluation: Evaluation, shipment: Any) -> Any:
        """The checkpoint `uri` is read from, in the object store once per run (None: no file)."""
        from pytest_policyeval.policies import LoadOptions, PolicyLoadError
        from pytest_policyeval.policies.files import policy_file

        if uri not in self._files:
            options = evaluation.options
            try:
                found = policy_file(
                    uri,
                    LoadOptions(
                        data_dir=options.data_dir,
                        wandb_entity=options.wandb_entity,
                        wandb_project=options.wandb_project,
                    ),
                )
                self._files[uri] = (found, shipment.file(found.path)) if found is not None else None
            except PolicyLoadError as exc:
                self._files[uri] = NotShipped(f"policy could not be loaded: {exc}")
            except Exception as exc:
                self._files[uri] = NotShipped(f"policy could not be shipped: {type(exc).__name__}: {exc}")
        found = self._files[uri]
        if isinstance(found, NotShipped):
            raise found
        return found

    @staticmethod
    def _task_files(task: Any, shipment: Any) -> dict[str, Any]:
        from pytest_policyeval.engines import engine_for

        listed = getattr(engine_for(task), "task_files", None)
        files = {}
        folder = task.folder.resolve()
        for path in listed(task) if listed is not None else []:
            resolved = path.resolve()
            if not resolved.is_relative_to(folder):
                raise NotShipped(
                    f"{path}: outside the suite's folder {folder}; a run on Ray takes only files "
                    "under it to the nodes"
                )
            files[resolved.relative_to(folder).as_posix()] = shipment.file(resolved)
        return files

    @staticmethod
    def _kept(task: Any, uris: tuple, evaluation: Evaluation) -> dict[str, list]:
        """The episodes this machine kept for the task's policies (by their hints' keys)."""
        from pytest_policyeval.gating import episodes_hint

        cache = evaluation.episode_cache()
        if cache is None:
            return {}
        uri, npc_uri, baseline_uri = uris
        kept: dict[str, list] = {}
        for player in filter(None, (uri, baseline_uri)):
            hint = episodes_hint(task, player, npc_uri, evaluation.options.device)
            for key in cache.recall(hint):
                episodes = cache.load(key)
                if episodes:
                    kept[key] = list(episodes.values())
        return kept

    def _resources(self, job: Job) -> dict[str, Any]:
        asked = job.task.settings.resources
        if asked is not None:
            resources = asked.model_dump()
        elif self.settings.resources is not None:
            resources = dict(self.settings.resources)
        else:
            resources = {"cpus": 1.0, "gpus": 1.0 if job.options.device.startswith("cuda") else 0.0}
        options: dict[str, Any] = {
            "num_cpus": resources.get("cpus", 1.0),
            "num_gpus": resources.get("gpus", 0.0),
        }
        if resources.get("memory_mb"):
            options["memory"] = int(resources["memory_mb"]) << 20
        if resources.get("custom"):
            options["resources"] = dict(resources["custom"])
        return options

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
        for rel, data in outcome.replays.items():
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
        result = evaluation.new_result(evaluation.resolve(item.task), item.uri, item.label, item.order)
        result.error = message
        return result
