"""The one file a policy URI is read from, for a process that evaluates elsewhere (the Ray
backend's caller ships it to the nodes): a local checkpoint's path, or a remote one downloaded
into the data cache. URIs read from no file (random://, scripted://, a plugin's scheme) have none
and travel as they are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_policyeval.policies.base import LoadOptions, PolicyLoadError
from pytest_policyeval.policies.naming import split_uri

LOCAL_SCHEMES = ("file", "pytorch", "sb3")  # a path after the scheme, read by the built-in loaders


@dataclass(frozen=True)
class PolicyFile:
    path: Path
    scheme: str  # how a copy is loaded: file (told by content), pytorch or sb3
    query: str = ""  # what follows the path (sb3's ?deterministic=false)
    source: dict[str, Any] | None = None  # where a downloaded file came from

    def uri_at(self, path: Path) -> str:
        """The URI that loads a copy of this file at `path` as the original URI loads it."""
        return f"{self.scheme}://{path}" + (f"?{self.query}" if self.query else "")


def policy_file(uri: str, options: LoadOptions) -> PolicyFile | None:
    """The file `uri` is read from (downloading a remote one), or None where it reads none.

    Raises PolicyLoadError for a remote file that cannot be fetched; a local path that is not a
    file is left for the loader to refuse (None), with the message it always gives.
    """
    from pytest_policyeval import registry

    scheme, rest = split_uri(uri)
    builtin = registry.table("pytest_policyeval_policy_schemes").get(scheme)
    if scheme in LOCAL_SCHEMES and isinstance(builtin, str) and builtin.startswith("pytest_policyeval."):
        query = ""
        if scheme == "sb3":
            from pytest_policyeval.policies.sb3.loader import split_rest

            path, _ = split_rest(uri, rest)
            query = rest.rsplit("?", 1)[1] if path != Path(rest).expanduser() else ""
        else:
            path = Path(rest).expanduser()
        try:
            return PolicyFile(path.resolve(), scheme, query) if path.is_file() else None
        except OSError:  # a name too long, a loop of links: no file to speak of
            return None
    from pytest_policyeval.policies.sources import source_for
    from pytest_policyeval.policies.sources.cache import DataCache, default_data_dir, fetch_once

    source = source_for(scheme)
    if source is None:
        return None
    from pytest_policyeval.storage import StorageError

    try:
        fetched = fetch_once(uri, source, DataCache(options.data_dir or default_data_dir()), options)
    except StorageError as exc:
        raise PolicyLoadError(str(exc)) from None
    return PolicyFile(Path(fetched.path), "file", "", fetched.describe())
