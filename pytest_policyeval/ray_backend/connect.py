"""Reaching the Ray cluster a run asked for, or saying plainly why not.

Never a silent fall-back: `auto` with no cluster, or an address nobody answers at, ends the run
before anything is evaluated (peers that fell back to evaluating locally produced results nobody
had asked for). `local` starts a cluster on this machine for the run, on loopback only.
"""

from __future__ import annotations

import os
import socket
from typing import Any

CONNECT_TIMEOUT_S = 10.0  # for the TCP connection to the head
INIT_DEADLINE_S = 90.0  # for Ray to connect (or start a local cluster): it may otherwise wait for ever


class ClusterUnreachable(RuntimeError):
    """No Ray cluster at the address given; the message names it and why."""


def connect(address: str) -> Any:
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
            _init_within(ray, dict(address="local", include_dashboard=False, **common))
        except Exception as exc:  # Ray raises many kinds; every one means no cluster
            raise ClusterUnreachable(f"--eval-ray local: could not start a Ray cluster here: {exc}") from None
        return ray
    if address != "auto":
        _check_reachable(address)
    try:
        _init_within(ray, dict(address=address, **common))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterUnreachable(
            f"--eval-ray {address}: no Ray cluster could be reached ({first[:300]}); nothing was "
            "evaluated (use --eval-ray local to start one on this machine)"
        ) from None
    return ray


def _init_within(ray: Any, arguments: dict[str, Any], deadline_s: float = INIT_DEADLINE_S) -> None:
    """`ray.init` with a deadline (an alarm, in the main thread where pytest runs): a head that
    stops answering halfway keeps Ray retrying for minutes. Ray must be initialised from the main
    thread, so the deadline cannot be a thread of its own."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        ray.init(**arguments)
        return

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"no answer from the Ray head within {deadline_s:g}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, deadline_s)
    try:
        ray.init(**arguments)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _check_reachable(address: str) -> None:
    """A TCP connection to the head first: Ray itself retries an unanswered address for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S) as connection:
            speaks_grpc = _speaks_http2(connection)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ClusterUnreachable(
            f"--eval-ray {address}: nothing answers at {host}:{port} ({reason}); nothing was "
            "evaluated (is the cluster's head up, and is this its GCS or ray:// client port?)"
        ) from None
    if not speaks_grpc:
        raise ClusterUnreachable(
            f"--eval-ray {address}: something answers at {host}:{port}, but not a Ray head (it does "
            "not speak gRPC; the dashboard's port, 8265, is not the one); nothing was evaluated "
            "(give the head's GCS port, 6379 by default, or ray://HOST:10001)"
        )


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _speaks_http2(connection: socket.socket) -> bool:
    """Whether the server answers the HTTP/2 preface with a SETTINGS frame, as gRPC servers (a Ray
    head's GCS and client server) do; an HTTP/1 server answers with text or closes."""
    try:
        connection.sendall(HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = connection.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except OSError:
        return False
    return header[3] == 0x4  # the frame's type: SETTINGS


def disconnect(started_here: bool = False) -> None:
    """Leave the cluster; a cluster the run started (`local`) is stopped with it.

    Ray stops its own processes gracefully, waiting about a second for each kind to exit; a
    cluster started for this run holds nothing worth that wait, so it is stopped at once."""
    import contextlib
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    if started_here:
        with contextlib.suppress(Exception):  # Ray's own node object; without it, the graceful stop
            node = ray._private.worker._global_node
            stop = node.kill_all_processes
            node.kill_all_processes = lambda **kwargs: stop(**{**kwargs, "allow_graceful": False})
    ray.shutdown()
