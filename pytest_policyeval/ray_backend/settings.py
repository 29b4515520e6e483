"""What a run on Ray asks for: where the cluster is, what each task needs, how often lost work is
retried. Read from the options (options.py); nothing here imports Ray."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_NODE_WAIT_S = 60.0  # for nodes still starting or an autoscaler adding them
DEFAULT_RETRIES = 3  # Ray's own default for a task lost with its worker or node


@dataclass(frozen=True)
class RaySettings:
    address: str  # auto, local, HOST:PORT or ray://HOST:PORT
    # Default resources of a task without its own `resources:` (Resources fields); None: one CPU,
    # and one GPU when the device is cuda.
    resources: dict[str, Any] | None = None
    retries: int = DEFAULT_RETRIES  # re-runs of a task lost with its worker or node (not its errors)
    node_wait_s: float = DEFAULT_NODE_WAIT_S  # how long a task no node can run waits for one
