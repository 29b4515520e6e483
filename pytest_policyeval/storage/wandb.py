"""Weights & Biases through the `wandb` client: artifact URIs, the public API seam, errors.

    wandb://ENTITY/PROJECT/TYPE/NAME[:VERSION]   VERSION: vN or an alias (default: latest)
    wandb://run/NAME[:VERSION]                   type "model", in WANDB_ENTITY / WANDB_PROJECT

Everything that reads artifacts goes through `API_FACTORY()`, an object with wandb.Api's
`artifact(name)` returning something with `digest`, `version`, `type`, `aliases` and
`download(root) -> directory`. The real one is `wandb.Api()`; the tests swap in a recorded
artifact directory, since no W&B server can be reached from them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_policyeval.storage import StorageError

VERSION = re.compile(r"^(?:v\d+|[\w.-]+)$")


class WandbError(StorageError):
    """A W&B URI that cannot be used; the message names the URI and the cause."""


class WandbUnreachable(WandbError):
    """The W&B server did not answer: a cached copy may stand in."""


@dataclass(frozen=True)
class ArtifactName:
    entity: str
    project: str
    type: str
    name: str
    version: str  # "v3" or an alias such as "latest"

    @property
    def qualified(self) -> str:
        return f"{self.entity}/{self.project}/{self.name}:{self.version}"


def parse_artifact_uri(uri: str, entity: str | None = None, project: str | None = None) -> ArtifactName:
    """Parse a policy URI; entity/project default to WANDB_ENTITY / WANDB_PROJECT for run/NAME."""
    rest = uri.split("://", 1)[1] if "://" in uri else uri
    parts = [part for part in rest.split("/") if part]
    if len(parts) == 2 and parts[0] == "run":
        entity = entity or os.environ.get("WANDB_ENTITY")
        project = project or os.environ.get("WANDB_PROJECT")
        if not entity or not project:
            raise WandbError(
                f"{uri}: wandb://run/NAME needs an entity and a project: set WANDB_ENTITY and "
                "WANDB_PROJECT (or the ini options policyeval_wandb_entity / policyeval_wandb_project)"
            )
        kind, last = "model", parts[1]
    elif len(parts) == 4:
        entity, project, kind, last = parts
    else:
        raise WandbError(
            f"{uri}: expected wandb://ENTITY/PROJECT/TYPE/NAME[:VERSION] or wandb://run/NAME[:VERSION]"
        )
    name, _, version = last.partition(":")
    version = version or "latest"
    if not name or not VERSION.match(version):
        raise WandbError(f"{uri}: '{last}' is not NAME, NAME:vN or NAME:ALIAS")
    return ArtifactName(entity, project, kind, name, version)


def real_api() -> Any:
    """The real client: wandb.Api() reads WANDB_API_KEY (or ~/.netrc) and WANDB_BASE_URL."""
    try:
        import wandb
    except ImportError:
        raise WandbError("wandb:// needs the wandb client: pip install 'pytest-policyeval[wandb]'") from None
    return wandb.Api(timeout=30)


API_FACTORY: Callable[[], Any] = real_api  # the one seam between this project and W&B's server


def explain(uri: str, exc: Exception) -> WandbError:
    """One message for what the wandb client raised while working on `uri`."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kind = type(exc).__name__
    if kind == "UsageError" and "api key" in text.lower():
        return WandbError(f"{uri}: no W&B credentials: set WANDB_API_KEY (or run `wandb login`)")
    if kind == "AuthenticationError":
        return WandbError(f"{uri}: W&B refused the credentials ({text})")
    if "not found" in text.lower() or "does not exist" in text.lower():
        return WandbError(f"{uri}: no such artifact ({text})")
    if kind == "CommError" or isinstance(exc, (OSError, TimeoutError)):
        return WandbUnreachable(f"{uri}: cannot reach W&B ({text})")
    return WandbError(f"{uri}: {kind}: {text}")
