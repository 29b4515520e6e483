"""Result sinks (`--eval-output-uri`, the service's OUTPUT_URI): where a run's results are published.

    PATH or file://PATH      a folder (or, ending in .json, the results file itself)
    s3://BUCKET/PREFIX       objects under PREFIX (or, ending in .json, that key)
    wandb://ENTITY/PROJECT[/NAME]   an artifact NAME (default policyeval-results) of type "evaluation"

A folder destination receives `results.json`, `evaluation_results.yaml` and `replays/...`; the
uploaded JSON's replay links point at the uploaded replays. Replays go first and the JSON last,
so a reader who sees the JSON finds everything it names.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from pytest_policyeval.atomic import write_bytes_atomic
from pytest_policyeval.results import TaskResult

RESULTS_JSON = "results.json"
RESULTS_YAML = "evaluation_results.yaml"


class SinkError(Exception):
    """Results that could not be published; the message names the destination and the cause."""


class Sink(Protocol):
    """A destination: constructed with its URI (and the --wandb run, if one is open)."""

    def url(self, name: str) -> str: ...  # where `name` ends up, for the links in the results

    def put(self, name: str, data: bytes | Path) -> None: ...

    def close(self) -> None: ...


class LocalSink:
    def __init__(self, uri: str, run: Any = None):
        self.uri = uri
        self.root = Path(uri.removeprefix("file://")).expanduser().resolve()

    def url(self, name: str) -> str:
        return str(self.root / name)

    def put(self, name: str, data: bytes | Path) -> None:
        target = self.root / name
        if isinstance(data, Path):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data, target)
        else:
            write_bytes_atomic(target, data)

    def close(self) -> None:
        pass


class S3Sink:
    def __init__(self, uri: str, run: Any = None):
        from pytest_policyeval.storage import s3 as store

        self.uri = uri
        self.bucket, self.prefix = store.split_s3_uri(uri, need_key=False)
        self._store, self._client = store, store.client()

    def url(self, name: str) -> str:
        return f"s3://{self.bucket}/{PurePosixPath(self.prefix, name)}"

    def put(self, name: str, data: bytes | Path) -> None:
        key = str(PurePosixPath(self.prefix, name))
        try:
            if isinstance(data, Path):
                self._client.upload_file(str(data), self.bucket, key)
            else:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except Exception as exc:
            raise SinkError(str(self._store.explain(f"s3://{self.bucket}/{key}", exc, self.bucket))) from None

    def close(self) -> None:
        pass


class WandbSink:
    """Files gathered into one artifact, logged by the --wandb run if there is one, else by a short run."""

    def __init__(self, uri: str, run: Any = None):
        parts = [part for part in uri.split("://", 1)[1].split("/") if part]
        if len(parts) not in (2, 3):
            raise SinkError(f"{uri}: expected wandb://ENTITY/PROJECT[/ARTIFACT_NAME]")
        self.uri, self.entity, self.project = uri, parts[0], parts[1]
        self.name = parts[2] if len(parts) == 3 else "policyeval-results"
        self._files: dict[str, bytes | Path] = {}
        self._run = run

    def url(self, name: str) -> str:
        return f"wandb://{self.entity}/{self.project}/evaluation/{self.name}:latest/{name}"

    def put(self, name: str, data: bytes | Path) -> None:
        self._files[name] = data

    def close(self) -> None:
        import tempfile

        import wandb

        with tempfile.TemporaryDirectory() as folder:
            artifact = wandb.Artifact(self.name, type="evaluation")
            for name, data in self._files.items():
                path = Path(folder, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data.read_bytes() if isinstance(data, Path) else data)
                artifact.add_file(str(path), name=name)
            run = self._run or wandb.init(
                entity=self.entity, project=self.project, job_type="policyeval-results", reinit="create_new"
            )
            try:
                run.log_artifact(artifact)
            finally:
                if self._run is None:
                    run.finish()


def sink_for(uri: str) -> Any:
    """The sink class registered for the URI's scheme (`pytest_policyeval_sinks`; a bare path is
    file://), or SinkError naming the known ones."""
    from pytest_policyeval import registry

    scheme = sink_scheme(uri)
    known = registry.table("pytest_policyeval_sinks")
    if scheme not in known:
        raise SinkError(
            f"{uri}: results cannot be published to '{scheme}://'; known: {sorted(known)} or a path"
        )
    return registry.lookup("pytest_policyeval_sinks", scheme, "result destination")


def sink_scheme(uri: str) -> str:
    """The scheme a destination is published with: anything without "://" is a path (file)."""
    return uri.split("://", 1)[0].lower() if "://" in uri else "file"


def open_sink(uri: str, wandb_run: Any = None) -> Sink:
    return sink_for(uri)(uri, wandb_run)


def split_destination(uri: str) -> tuple[str, str]:
    """(folder URI, JSON file name): a URI ending in .json names the results file itself."""
    if uri.endswith(".json") and not uri.startswith("wandb://"):
        folder, _, leaf = uri.rpartition("/")
        return (folder if folder and not folder.endswith(":/") else "."), leaf
    return uri, RESULTS_JSON


def publish(
    uri: str,
    results: Sequence[TaskResult],
    run: dict[str, Any],
    replay_dir: Path | None,
    wandb_run: Any = None,
) -> list[str]:
    """Upload replays, then the YAML and the JSON; returns the URLs written, the JSON's first."""
    from pytest_policyeval.reporting.documents import dump_json, dump_yaml, evaluation_yaml, evaluator_json

    try:
        folder, json_name = split_destination(uri)
        sink = open_sink(folder, wandb_run)
        yaml_name, replays = RESULTS_YAML, "replays"
        published, urls = [], []
        root = replay_dir.resolve() if replay_dir is not None else None
        for result in results:
            moved = []
            for local in result.replay_urls:
                name = f"{replays}/{Path(local).relative_to(root).as_posix()}" if root else Path(local).name
                sink.put(name, Path(local))
                moved.append(sink.url(name))
                urls.append(moved[-1])
            published.append(dataclasses.replace(result, replay_urls=moved))
        sink.put(yaml_name, dump_yaml(evaluation_yaml(published, run)).encode())
        sink.put(json_name, dump_json(evaluator_json(published, run)).encode())
        sink.close()
    except SinkError:
        raise
    except Exception as exc:  # a client library's own errors: keep the message, name the destination
        raise SinkError(f"{uri}: {type(exc).__name__}: {exc}") from None
    return [sink.url(json_name), sink.url(yaml_name), *urls]
