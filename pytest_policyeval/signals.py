"""SIGTERM ends a run as Ctrl-C does, and either is remembered.

A CI job's timeout, `docker stop`, Kubernetes' eviction and a RayJob's deadline send SIGTERM. By
default it kills pytest where it stands: no results file, or a stale one from an earlier run left
in place. Raised as KeyboardInterrupt instead, pytest stops the session, and what ran is written
and marked interrupted (never passed). Only where nobody else has claimed the signal, in the main
thread of the process that writes the results.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

_active = [0]  # runs of this process that installed the handler and have not ended
_signalled = [False]  # a SIGINT or SIGTERM arrived during the run


def _interrupt(signum: int, frame: Any) -> None:
    _signalled[0] = True
    raise KeyboardInterrupt


def signalled() -> bool:
    """Whether the run was interrupted by a signal. pytest's exit status can miss it: a second
    Ctrl-C while pytest handles the first ends the session with another status."""
    return _signalled[0]


def stop_if_signalled() -> None:
    """Raise KeyboardInterrupt if a signal came: one that a library caught (an engine's retry
    loop, pydantic turning it into a serialization error) still ends the run here."""
    if _signalled[0]:
        raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def interrupt_on_sigterm() -> Callable[[], None]:
    """Install the handler unless a program embedding the run handles SIGTERM itself (the
    service); returns what puts the previous one back."""
    if not _main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL and previous is not _interrupt:
        return lambda: None
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C raises KeyboardInterrupt as before; the handler only remembers that it came.
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
    _active[0] += 1
    _signalled[0] = False

    def undo() -> None:
        _active[0] -= 1
        _signalled[0] = False
        if _main_thread():
            signal.signal(signal.SIGTERM, previous)
            if signal.getsignal(signal.SIGINT) is _interrupt:
                signal.signal(signal.SIGINT, previous_int)

    return undo


def reclaim() -> None:
    """Put the handler back where a library replaced it during a run (ray.init's sys.exit)."""
    if _active[0] > 0 and _main_thread() and signal.getsignal(signal.SIGTERM) is not _interrupt:
        signal.signal(signal.SIGTERM, _interrupt)
