"""Reaching the Ray cluster a run asked for, or saying plainly why not.

Never a silent fall-back: `auto` with no cluster, or an address nobody answers at, ends the run
before anything is evaluated (peers that fell back to evaluating locally produced results nobody
had asked for). `local` starts a cluster on this machine for the run, on loopback only.
"""

from __future__ import annotations

import os
import socket
from typing import Any

CONNECT_TIMEOUT_S = 10.0


class ClusterUnreachable(RuntimeError):
    """No Ray cluster at the address given; the message names it and why."""


def connect(address: str, local_cpus: int | None = None) -> Any:
    """Connect this process to the cluster (`auto`, `local`, HOST:PORT or ray://HOST:PORT)."""
    if address == "local":
        # A cluster of this machine alone: Ray then binds every part of it to 127.0.0.1 (read when
        # Ray is imported; its `_node_ip_address` still listens on every interface).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ClusterUnreachable(
            "--eval-ray needs Ray on this machine: pip install 'pytest-policyeval[ray]'"
        ) from None
    if ray.is_initialized():
        return ray
    # Ray reports usage to its makers unless told not to; a test run has no business doing so.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    common = {"namespace": "pytest-policyeval", "log_to_driver": False, "configure_logging": False}
    if address == "local":
        try:
            ray.init(address="local", num_cpus=local_cpus, include_dashboard=False, **common)
        except Exception as exc:  # Ray raises many kinds; every one means no cluster
            raise ClusterUnreachable(f"--eval-ray local: could not start a Ray cluster here: {exc}") from None
        return ray
    if address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, **common)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterUnreachable(
            f"--eval-ray {address}: no Ray cluster could be reached ({first[:300]}); nothing was "
            "evaluated (use --eval-ray local to start one on this machine)"
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """A TCP connection to the head first: Ray itself retries an unanswered address for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ClusterUnreachable(
            f"--eval-ray {address}: nothing answers at {host}:{port} ({reason}); nothing was "
            "evaluated (is the cluster's head up, and is this its GCS or ray:// client port?)"
        ) from None


def disconnect() -> None:
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
