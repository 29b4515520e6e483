"""wandb:// policies: a W&B artifact's checkpoint file, cached by the artifact's digest.

The artifact is looked up first (cheap); only a digest the cache has not seen is downloaded.
The results record the artifact's digest, its version (`v3` even when asked for `latest`) and
its qualified name. With W&B unreachable, the copy last fetched for the same URI is used.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from pytest_policyeval.policies.sources import Fetched, FetchError
from pytest_policyeval.policies.sources.cache import DataCache, blob_digest, bounded, chunks
from pytest_policyeval.storage import wandb as store

SUFFIXES = (".pt", ".pth", ".ckpt", ".zip")  # .zip: a Stable-Baselines3 model


def _checkpoint_file(uri: str, folder: Path) -> Path:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    candidates = [path for path in files if path.suffix in SUFFIXES] or files
    if len(candidates) != 1:
        names = [str(path.relative_to(folder)) for path in files]
        raise FetchError(f"{uri}: expected one checkpoint file (.pt or an SB3 .zip) in the artifact: {names}")
    return candidates[0]


class WandbSource:
    scheme = "wandb"

    def fetch(self, uri: str, cache: DataCache, options: Any = None) -> Fetched:
        entity, project = getattr(options, "wandb_entity", None), getattr(options, "wandb_project", None)
        try:
            name = store.parse_artifact_uri(uri, entity, project)
        except store.WandbError as exc:
            raise FetchError(str(exc)) from None
        ref = cache.ref(self.scheme, uri)
        try:
            artifact: Any = store.API_FACTORY().artifact(name.qualified)
        except store.WandbError as exc:
            raise FetchError(str(exc)) from None
        except Exception as exc:  # the client's own error types, explained by the store
            error = store.explain(uri, exc)
            if isinstance(error, store.WandbUnreachable) and ref:
                return cache.cached(uri, ref, offline=True)
            suffix = " and there is no cached copy" if isinstance(error, store.WandbUnreachable) else ""
            raise FetchError(f"{error}{suffix}") from None
        if artifact.type != name.type:
            raise FetchError(f"{uri}: {name.qualified} is a '{artifact.type}' artifact, not '{name.type}'")
        if ref and ref.get("artifact_digest") == artifact.digest:
            return cache.cached(uri, ref, version=artifact.version)
        incoming = cache.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=incoming))
        try:
            try:
                downloaded = Path(artifact.download(root=str(folder)))
            except Exception as exc:
                raise FetchError(str(store.explain(uri, exc))) from None
            source = _checkpoint_file(uri, downloaded)
            with open(source, "rb") as handle:
                path = cache.store(bounded(chunks(handle), uri), source.name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        fetched = Fetched(uri, path, blob_digest(path), artifact.version)
        cache.set_ref(self.scheme, uri, fetched, artifact_digest=artifact.digest, artifact=name.qualified)
        return fetched
