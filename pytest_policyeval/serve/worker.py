"""`policyeval worker`: claims queued evaluations and runs each as a pytest run of the plugin.

Each evaluation runs in a child process (`pytest --eval-suite ... --policy-uri ...`), so a crash,
a hang or a leak in it cannot take the worker down; the child dies with the worker (Linux's
parent-death signal). While it runs, the worker renews its lease (the heartbeat); a worker that
finds its lease gone (it expired and another worker took the evaluation) stops its child and
records nothing. SIGTERM hands the lease back unfinished, so another worker starts it at once.

How a run ends decides the status:
    the run finished (exit 0 or 1, a results document written)   done, with the document
    every task's policy could not be loaded; a usage error (4); no tests collected (5)
                                                                  error: the request's fault, final
    ... because its source was unreachable or answered 5xx/429   system_error: retried after
                                                                  a pause (60 s, doubling)
    anything else (a crash, a signal, exit 2 or 3, no document)  system_error: retried

The results and report are kept for the API only by the worker that still holds the lease when
it finishes: one that lost it (paused past its lease, say) leaves another attempt's files alone.
A failure of the worker itself (its database gone for a moment, a full disk) is logged; the loop
goes on after a pause, and the evaluation it was running becomes a system error.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_policyeval.serve.store import Evaluation, Store, StoreError

USER_ERROR_EXITS = {4: "usage error (a suite name or option the run refused)", 5: "no tests were collected"}


STOP_POLL_S = 0.2  # how often a running evaluation's worker looks for a stop
MAX_PAUSE_S = 60.0  # the longest wait between tries while the database is away
KEPT_FILES = ("results.json", "report.html")  # what the API serves of a finished evaluation

logger = logging.getLogger(__name__)


@dataclass
class WorkerSettings:
    work_dir: Path  # each evaluation's attempt runs in a folder of its own below it
    reports_dir: Path  # results and reports kept for the API (a shared volume in a cluster)
    lease_s: float = 60.0
    heartbeat_s: float = 15.0
    poll_s: float = 2.0
    timeout_s: float = 4 * 3600.0  # one evaluation's run, at most
    retry_s: float = 60.0  # before the first retry of a source that was unreachable (doubling)
    device: str | None = None  # --device for every run (a GPU worker: cuda)
    cwd: Path = field(default_factory=Path.cwd)  # where runs start: relative policy paths are from here


class Worker:
    def __init__(self, store: Store, settings: WorkerSettings, worker_id: str | None = None):
        self.store = store
        self.settings = settings
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self.waiting_for: str | None = None  # why the loop cannot claim now (the database is away)
        self.last_failure: str | None = None  # the worker's own last failure, for /readyz

    def health(self) -> dict[str, Any]:
        """What /readyz says of a worker embedded in the API process: it claims work, or why not."""
        waiting, failure = self.waiting_for, self.last_failure  # read once: the loop sets them
        state = "stopping" if self.stopping.is_set() else "waiting" if waiting else "ok"
        found: dict[str, Any] = {"id": self.id, "state": state}
        if waiting:
            found["waiting_for"] = waiting
        if failure:
            found["last_failure"] = failure
        return found

    def run_forever(self, handle_signals: bool = True) -> None:
        """Claim and run until SIGTERM/SIGINT (or `stopping` is set by whoever embeds it)."""
        if handle_signals:
            signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
            signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        pause = self.settings.poll_s
        while not self.stopping.is_set():
            try:
                self.store.expire_leases()
                job = self.store.claim(self.id, self.settings.lease_s)
            except Exception as exc:  # the database restarting or failing: wait, as long as it takes
                logger.warning("policyeval worker %s: %s; trying again in %.0f s", self.id, exc, pause)
                self.waiting_for = _one_line(exc)
                self.stopping.wait(pause)
                pause = min(pause * 2, MAX_PAUSE_S)
                continue
            pause = self.settings.poll_s
            self.waiting_for = None
            if job is None:
                self.stopping.wait(self.settings.poll_s)
                continue
            try:
                self.run_one(job)
            except Exception as exc:
                # The worker's own failure, not the run's: the evaluation is retried elsewhere.
                logger.exception("policyeval worker %s: evaluation %s", self.id, job.id)
                self.last_failure = f"evaluation {job.id}: {_one_line(exc)}"
                with contextlib.suppress(StoreError):
                    self.store.finish(
                        job.id, self.id, "system_error", error=f"the worker failed: {_one_line(exc)}"
                    )
                self.stopping.wait(self.settings.poll_s)

    def run_one(self, job: Evaluation) -> str:
        """Run one claimed evaluation to its end; returns what became of it."""
        folder = self.settings.work_dir / job.id / f"attempt-{job.attempts}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        log = open(folder / "pytest.log", "wb")  # noqa: SIM115 (the child writes it until it ends)
        # No ini file of wherever the worker runs applies; relative policy paths are the worker's.
        (folder / "pytest.ini").write_text("[pytest]\n")
        child = subprocess.Popen(
            self.command(job, folder), cwd=self.settings.cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        started = beat = held = time.monotonic()  # held: when the lease was last renewed
        try:
            while True:
                # Short waits: a SIGTERM (docker stop gives 10 s before SIGKILL) is acted on at
                # once, not at the next heartbeat.
                try:
                    code = child.wait(timeout=min(STOP_POLL_S, self.settings.heartbeat_s))
                    break
                except subprocess.TimeoutExpired:
                    pass
                if self.stopping.is_set():
                    # Handed back first: should the stop be cut short, no attempt is spent.
                    with contextlib.suppress(StoreError):  # unreachable: its lease runs out instead
                        self.store.release(job.id, self.id)
                    _stop(child)
                    return "released"
                if time.monotonic() - beat < self.settings.heartbeat_s:
                    continue
                beat = time.monotonic()
                try:
                    renewed = self.store.heartbeat(job.id, self.id, self.settings.lease_s)
                except StoreError as exc:  # the database away for now: try again at the next beat
                    logger.warning("policyeval worker %s: heartbeat failed: %s", self.id, exc)
                    renewed = time.monotonic() - held < self.settings.lease_s
                else:
                    held = time.monotonic() if renewed else held
                if not renewed:
                    _stop(child)  # the lease expired and the evaluation is another worker's now
                    return "lease lost"
                if time.monotonic() - started > self.settings.timeout_s:
                    _stop(child)
                    self.store.finish(
                        job.id, self.id, "system_error", error=f"ran past {self.settings.timeout_s:g}s"
                    )
                    return "system_error"
        except BaseException:
            _stop(child)  # whatever ends the wait (the database, a signal) ends the run with it
            raise
        finally:
            log.close()
        status, result, error = self.outcome(job, folder, code)
        staged = self.settings.reports_dir / job.id / f".attempt-{job.attempts}-{self.id}"
        if status == "done":
            self._stage(folder, staged)
        # A source that was down gets time to come back: longer after each attempt.
        wait = self.settings.retry_s * 2 ** (job.attempts - 1) if error and _transient(error) else 0.0
        try:
            if not self.store.finish(job.id, self.id, status, result=result, error=error, retry_after_s=wait):
                return "lease lost"  # another attempt owns the evaluation, and its files
            if status == "done":
                self._keep(staged)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return status

    def _stage(self, folder: Path, staged: Path) -> None:
        """The run's files, copied beside where the API reads them (same disk: moved at once)."""
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        for name in KEPT_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, staged / name)

    def _keep(self, staged: Path) -> None:
        """Put the finished attempt's files where the API serves them; each replace is atomic."""
        for name in KEPT_FILES:
            if (staged / name).is_file():
                os.replace(staged / name, staged.parent / name)

    def command(self, job: Evaluation, folder: Path) -> list[str]:
        request = job.request
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir", str(folder)]
        command += ["-c", str(folder / "pytest.ini")]
        # What a request says goes in `--option=value` form only: pytest reads any argument
        # starting with `-p` as a plugin to import before parsing, whatever option it follows.
        command += [f"--eval-suite={suite}" for suite in request.suites]
        command += [f"--policy-uri={request.policy_uri}", "--eval-json", str(folder / "results.json")]
        if importlib.util.find_spec("pytest_html") is not None:  # the report, where pytest-html is
            command += ["--html", str(folder / "report.html"), "--self-contained-html"]
        if request.num_episodes is not None:
            command += ["--num-episodes", str(request.num_episodes)]
        if request.baseline_uri:
            command += [f"--baseline-uri={request.baseline_uri}"]
        if request.output_uri:
            command += [f"--eval-output-uri={request.output_uri}"]
        if self.settings.device:
            command += ["--device", self.settings.device]
        return command

    def outcome(self, job: Evaluation, folder: Path, code: int) -> tuple[str, dict | None, str | None]:
        """(status, result, error) from how the run ended (see the module's docstring)."""
        if code in USER_ERROR_EXITS:
            return "error", None, f"{USER_ERROR_EXITS[code]}: {_tail(folder / 'pytest.log')}"
        document = _read_document(folder / "results.json")
        if code not in (0, 1) or document is None:
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            return (
                "system_error",
                None,
                f"the run ended without results ({how}): {_tail(folder / 'pytest.log')}",
            )
        errors = [t.get("error") for t in _tasks(document)]
        if errors and all(e and e.startswith("policy could not be loaded") for e in errors):
            # Unreachable or overloaded now is not wrong for good: another attempt may load it.
            return ("system_error" if _transient(errors[0]) else "error"), None, errors[0]
        result = {
            "passed": document.get("passed") is True,
            "complete": document.get("complete") is True,
            "exit_status": code,
            "report_url": f"/evaluations/{job.id}/report" if (folder / "report.html").is_file() else None,
            "document": document,
        }
        return "done", result, None


# How the policy sources (policies/sources/) word a failure that may pass: no answer (and no
# cached copy to fall back on), an overloaded or failing server, a download cut short.
TRANSIENT = re.compile(r"and there is no cached copy|answered HTTP (?:408|429|5\d\d)\b|download cut short")


def _transient(error: str) -> bool:
    return TRANSIENT.search(error) is not None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _tasks(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        task
        for policy in document.get("policies", [])
        for checkpoint in policy.get("checkpoints", [])
        for task in checkpoint.get("metrics", {}).get("tasks", {}).values()
    ]


def _read_document(path: Path) -> dict[str, Any] | None:
    """The run's results, or None: none written, unreadable, or the placeholder a run writes when
    it starts (its end failed to replace it)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and not data.get("in_progress") else None


def _tail(path: Path, limit: int = 600) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return "(no output)"
    return text[-limit:]


def _stop(child: subprocess.Popen) -> None:
    """End the child's whole process group: SIGTERM, then SIGKILL after a grace period."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGKILL if the worker dies (no orphaned runs)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
