"""One (policy, task) evaluation as it runs on a Ray worker, and what it sends back.

A worker process keeps one `Evaluation` per set of options, so each policy is loaded once per
process, as under xdist. Files come from the caller (shipping.py) and the episodes it kept for
this task come with the job: the worker plays only the missing ones and sends every round it
played back, which the caller keeps in its own episode cache. Nothing is written on the node but
the shipped files, so a task retried on another node plays the same and is kept the same.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_policyeval.episode_cache import CachedEpisode
from pytest_policyeval.evaluation import EvalOptions, Evaluation
from pytest_policyeval.ray_backend.hang import RayTuning, run_watched
from pytest_policyeval.ray_backend.shipping import (
    Shipped,
    file_path,
    materialize,
    node_folder,
    place,
    relative_name,
    tree_path,
)
from pytest_policyeval.task import Task


@dataclass
class Job:
    task: Task  # as it will run (overrides applied)
    uri: str
    label: str
    order: tuple[int, int, int]
    nodeid: str
    options: EvalOptions  # the worker's: no files of the caller's named
    policies: dict[str, tuple[Any, Shipped]] = field(default_factory=dict)  # URI -> (PolicyFile, Shipped)
    task_files: dict[str, Shipped] = field(default_factory=dict)  # under the task's folder
    configs: dict[str, Shipped] = field(default_factory=dict)  # "options"/"task": Metta config files
    kept: dict[str, list[CachedEpisode]] = field(default_factory=dict)  # the caller's, by cache key
    run_id: str = ""  # the calling run's: a hang recorded on a node belongs to this run's attempt


@dataclass
class Outcome:
    result: dict[str, Any]
    films: list[Any]
    replays: list[tuple[str, bytes]]  # relative to the replay folder, in the result's order
    rounds: list[tuple[str, dict[str, Any], list[CachedEpisode]]]  # (key, meta, episodes) played
    hints: list[tuple[str, str]]  # (hint, key) to remember
    node: str
    pid: int
    written: list[str]  # digests of the shipped files this task wrote on its node


class RelayCache:
    """The episode cache a worker sees: the caller's kept episodes in, every played round out."""

    def __init__(self, kept: dict[str, list[CachedEpisode]]):
        self.kept = kept
        self.rounds: list[tuple[str, dict[str, Any], list[CachedEpisode]]] = []
        self.hints: list[tuple[str, str]] = []

    def load(self, key: str) -> dict[int, CachedEpisode]:
        return {e.index: e for e in self.kept.get(key, [])}

    def store(self, key: str, episodes: list[CachedEpisode], meta: dict[str, Any]) -> None:
        if episodes:
            self.rounds.append((key, meta, list(episodes)))

    def remember(self, hint: str, key: str) -> None:
        self.hints.append((hint, key))


_evaluations: dict[EvalOptions, Evaluation] = {}  # this worker process's, one per set of options
_locations: dict[str, str] = {}  # policy URI -> the URI of this node's copy


def run_job(job: Job) -> Outcome:
    """Evaluate the job's task for its policy on this worker (a Ray task's body)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    folder = node_folder()
    written: list[str] = []

    def local(shipped: Shipped) -> Path:
        target = file_path(folder, shipped)
        if materialize(ray, shipped, target):
            written.append(shipped.sha256)
        return target

    copies: dict[str, str] = {}  # this node's copy -> the caller's file, for messages
    for uri, (policy_file, shipped) in job.policies.items():
        copy = local(shipped)
        _locations[uri] = policy_file.uri_at(copy)
        copies[str(copy)] = str(policy_file.path)
    task, options = job.task, job.options
    if job.task_files:
        tree = tree_path(folder, job.task_files)
        for rel, shipped in job.task_files.items():
            place(local(shipped), tree / relative_name(rel))
        copies[str(tree)] = str(task.folder)
        task = replace(task, folder=tree)
    if "task" in job.configs:
        task = replace(task, pytorch_config=local(job.configs["task"]))
    if "options" in job.configs:
        options = replace(options, pytorch_config=local(job.configs["options"]))
    replays = Path(tempfile.mkdtemp(prefix="policyeval-replays-")) if options.replay_dir else None
    try:
        evaluation = _evaluation(replace(options, replay_dir=replays))
        cache = RelayCache(job.kept) if options.eval_cache else None
        watch = evaluation.tuning.watch
        watch.record = folder / "hung" / _digest(job.run_id, job.nodeid)
        result, films = run_watched(
            lambda: evaluation.evaluate(task, job.uri, job.label, job.order, job.nodeid, cache=cache),
            lambda: evaluation.new_result(task, job.uri, job.label, job.order),
            watch,
        )
        kept_replays = _read_replays(replays, result.replay_urls) if replays is not None else []
    finally:
        if replays is not None:
            shutil.rmtree(replays, ignore_errors=True)
    _as_asked(result, job, copies)
    return Outcome(
        result=result.to_dict(),
        films=films,
        replays=kept_replays,
        rounds=cache.rounds if cache is not None else [],
        hints=cache.hints if cache is not None else [],
        node=node,
        pid=os.getpid(),
        written=written,
    )


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def _evaluation(options: EvalOptions) -> Evaluation:
    """This process's evaluation for these options (its loaded policies kept across jobs); only
    the replay folder differs from job to job."""
    key = replace(options, replay_dir=None)
    if key not in _evaluations:
        _evaluations[key] = Evaluation(key, RayTuning(), locate=lambda uri: _locations.get(uri, uri))
    evaluation = _evaluations[key]
    evaluation.options = options
    return evaluation


def _read_replays(root: Path, urls: list[str]) -> list[tuple[str, bytes]]:
    """The replay files the task wrote, in the order of its result's replay URLs."""
    root = root.resolve()
    return [(str(Path(url).resolve().relative_to(root)), Path(url).read_bytes()) for url in urls]


def _as_asked(result: Any, job: Job, copies: dict[str, str]) -> None:
    """Say what the caller asked for, not this node's copies: the policy's URI, the source and
    path of a shipped checkpoint, and the caller's paths in an error."""
    shipped = job.policies.get(job.uri)
    if isinstance(result.policy, dict) and result.policy and shipped is not None:
        policy_file = shipped[0]
        result.policy["uri"] = result.policy_uri
        result.policy["path"] = str(policy_file.path)
        if policy_file.source is not None:
            result.policy["source"] = policy_file.source
    for copy, original in copies.items():
        if result.error:
            result.error = result.error.replace(copy, original)
        if result.traceback:
            result.traceback = result.traceback.replace(copy, original)
