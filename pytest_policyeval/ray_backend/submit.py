"""What a task item becomes before it leaves for the cluster: its job (the task as it will run,
the files it needs shipped, the episodes this machine kept for it) and its resource request,
with the refusals that keep a task from waiting or failing obscurely on a node."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pytest_policyeval.ray_backend.settings import RaySettings

if TYPE_CHECKING:
    from pytest_policyeval.collection.items import TaskItem
    from pytest_policyeval.evaluation import Evaluation
    from pytest_policyeval.ray_backend.job import Job
    from pytest_policyeval.ray_backend.shipping import Shipment


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


class Jobs:
    """Makes each item's job; each policy file is fetched and shipped once per run."""

    def __init__(self, evaluation: Evaluation, shipment: Shipment, settings: RaySettings, run_id: str):
        self.evaluation = evaluation
        self.shipment = shipment
        self.settings = settings
        self.run_id = run_id
        self._files: dict[str, Any] = {}  # policy URI -> (PolicyFile, Shipped), None or NotShipped

    def job(self, item: TaskItem) -> Job:
        from pytest_policyeval.ray_backend.job import Job

        evaluation = self.evaluation

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
        job = Job(task, item.uri, item.label, item.order, item.nodeid, options, run_id=self.run_id)
        uris = (item.uri, evaluation.npc_uri(task), evaluation.baseline_uri(task))
        only_here(task, uris)
        for uri in filter(None, uris):
            shipped = self._policy(uri)
            if shipped is not None:
                job.policies[uri] = shipped
        try:
            if evaluation.options.pytorch_config is not None:
                job.configs["options"] = self.shipment.file(evaluation.options.pytorch_config)
            elif task.pytorch_config is not None:
                job.configs["task"] = self.shipment.file(task.pytorch_config)
            job.task_files = self._task_files(task, self.shipment)
        except Exception as exc:  # a file gone or unreadable since collection
            raise NotShipped(f"{type(exc).__name__}: {exc}") from None
        job.kept = self._kept(task, uris, evaluation)
        return job

    def _policy(self, uri: str) -> Any:
        evaluation = self.evaluation
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
                self._files[uri] = (found, self.shipment.file(found.path)) if found is not None else None
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

    def resources(self, job: Job) -> dict[str, Any]:
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
