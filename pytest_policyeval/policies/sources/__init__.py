"""Remote policy sources: a URI such as `https://...`, `s3://...` or `wandb://...` becomes a local file.

A `Source` downloads into the `DataCache` (content-addressed, shared by runs and reused offline);
`fetch_once` makes sure a run with many xdist workers fetches each URI once. The loaded file is
then read like any local checkpoint (see `policies/uri.py`).

Built-in sources are named here as "module:attribute" so that nothing is imported until a URI of
that scheme is used. Other packages add schemes through the `pytest_policyeval.sources` entry
point group, whose entries are `Source` classes.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from pytest_policyeval.policies.base import PolicyLoadError


class FetchError(PolicyLoadError):
    """A remote policy that cannot be fetched: no credentials, no network, no such object..."""


@dataclass(frozen=True)
class Fetched:
    """A remote policy as a local file, with what the results should record about it."""

    uri: str
    path: Path
    digest: str  # "sha256:..." of the file's bytes
    version: str | None = None  # the store's own version: an ETag, an S3 VersionId, a W&B "v3"
    cached: bool = False  # served from the data cache without downloading
    offline: bool = False  # the store was unreachable and the cached copy was used

    def describe(self) -> dict[str, Any]:
        from pytest_policyeval.redact import redact_uri

        facts = asdict(self)
        facts["path"] = str(self.path)
        facts["uri"] = redact_uri(self.uri)  # these facts are written to disk and into results
        return facts

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Fetched:
        return cls(**{**raw, "path": Path(raw["path"])})


class Source(Protocol):
    """Fetches one scheme's URIs into the cache. Constructed with no arguments."""

    def fetch(self, uri: str, cache: Any, options: Any) -> Fetched: ...  # DataCache, LoadOptions


BUILTIN_SOURCES = {
    "http": "pytest_policyeval.policies.sources.http:HttpSource",
    "https": "pytest_policyeval.policies.sources.http:HttpSource",
    "s3": "pytest_policyeval.policies.sources.s3:S3Source",
    "wandb": "pytest_policyeval.policies.sources.wandb:WandbSource",
}
ENTRY_POINT_GROUP = "pytest_policyeval.sources"


def _import(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def source_schemes() -> set[str]:
    return set(BUILTIN_SOURCES) | {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}


def source_for(scheme: str) -> Source | None:
    if scheme in BUILTIN_SOURCES:
        return _import(BUILTIN_SOURCES[scheme])()
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        return entry.load()()
    return None
