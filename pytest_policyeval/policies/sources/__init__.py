"""Remote policy sources: a URI such as `https://...`, `s3://...` or `wandb://...` becomes a local file.

A `Source` downloads into the `DataCache` (content-addressed, shared by runs and reused offline);
`fetch_once` makes sure a run with many xdist workers fetches each URI once. The loaded file is
then read like any local checkpoint (see `policies/uri.py`).

Sources are registered through the `pytest_policyeval_policy_sources` hook (the built-in ones in
policies/hooks.py, as "module:attribute" so nothing is imported until a URI of that scheme is used).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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


def source_schemes() -> set[str]:
    from pytest_policyeval import registry

    return set(registry.table("pytest_policyeval_policy_sources"))


def source_for(scheme: str) -> Source | None:
    """A fresh `Source` for the scheme, registered through `pytest_policyeval_policy_sources`."""
    from pytest_policyeval import registry

    if scheme not in source_schemes():
        return None
    return registry.lookup("pytest_policyeval_policy_sources", scheme, "policy source")()
