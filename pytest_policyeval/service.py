"""The evaluator service's container entrypoint: `python -m pytest_policyeval.service`.

Reads its inputs from the environment, evaluates one policy with pytest and this plugin (in this
process), and prints one JSON document on stdout: the results in the evaluator service's shape,
or `{"error", "traceback", "policy_uri"}` with exit status 1. Everything else (pytest's output)
goes to stderr, so stdout can be piped into a file or another program. Exit status 0 means the
run is whole (its gates may still fail: read `passed`); a run cut short by SIGINT or SIGTERM
(Kubernetes' eviction) prints the results it has, marked `interrupted` and `complete: false`,
and exits 128 + the signal (when nothing had finished, an error document says so).

    POLICY_URI        required: file://, pytorch://, http(s)://, s3://, wandb://...
    SIMULATION_SUITE  suite name or path (default: navigation): ./suites/NAME.yaml,
                      $POLICYEVAL_SUITES_DIR, then the suites shipped with the package
    DEVICE            cpu (default), cuda, cuda:N
    DATA_DIR          cache of downloaded policies (default: the user cache dir)
    RUN_NAME          name of the run (the W&B run when OUTPUT_URI is wandb://)
    OUTPUT_URI        publish the results there too: a folder, s3://BUCKET/PREFIX, wandb://ENTITY/PROJECT
    NUM_EPISODES      episodes per task (default: the suite's)
    METTA_PRESET      Metta engine version of a Metta checkpoint (default: june-2025)
    BASELINE_URI      gate on per-seed differences to this policy (e.g. the current best)
    GATE              sequential (default), ci, or mean (Metta's rule, no error guarantee)
    WANDB_API_KEY     required for wandb:// URIs (unless WANDB_MODE=offline for OUTPUT_URI)
    WANDB_ENTITY, WANDB_PROJECT   for wandb://run/NAME
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import pytest

from pytest_policyeval.redact import redact_text, redact_uri

VARIABLES = (
    "POLICY_URI",
    "WANDB_API_KEY",
    "WANDB_ENTITY",
    "WANDB_PROJECT",
    "SIMULATION_SUITE",
    "DEVICE",
    "DATA_DIR",
    "RUN_NAME",
    "OUTPUT_URI",
    "NUM_EPISODES",
    "METTA_PRESET",
    "BASELINE_URI",
    "GATE",
)


class ServiceError(Exception):
    pass


class RunOutcome:
    """A plugin for an in-process pytest run: keeps the run's controller to inspect after."""

    def __init__(self) -> None:
        self.controller: Any = None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_policyeval.keys import controller_of

        self.controller = controller_of(session.config)


def _needs_wandb_key(env: dict[str, str]) -> bool:
    policy = env.get("POLICY_URI", "").startswith("wandb://")
    output = env.get("OUTPUT_URI", "").startswith("wandb://") and env.get("WANDB_MODE") != "offline"
    return (policy or output) and not env.get("WANDB_API_KEY")


def _check_variables(env: dict[str, str]) -> None:
    """Each variable's value checked as its option would be, so an error names the variable."""
    from pytest_policyeval.option_values import BadValue, device_name, episode_count, gate_kind, metta_preset

    for variable, check in (
        ("NUM_EPISODES", episode_count),
        ("DEVICE", device_name),
        ("METTA_PRESET", metta_preset),
        ("GATE", gate_kind),
    ):
        value = env.get(variable)
        if value:
            try:
                check(value)
            except (BadValue, ValueError) as exc:
                raise ServiceError(f"{variable}={value[:80]!r}: {exc}") from None


def pytest_command(env: dict[str, str], json_path: Path) -> list[str]:
    from pytest_policyeval.collection.lookup import SuiteNotFound, suite_args

    _check_variables(env)

    try:
        suite = suite_args(env.get("SIMULATION_SUITE") or "navigation")
    except SuiteNotFound as exc:
        raise ServiceError(str(exc)) from None
    command = [*suite, "-p", "no:cacheprovider", "--policy-uri", env["POLICY_URI"]]
    command += ["--device", env.get("DEVICE") or "cpu", "--eval-json", str(json_path)]
    for variable, flag in (
        ("DATA_DIR", "--data-dir"),
        ("OUTPUT_URI", "--eval-output-uri"),
        ("RUN_NAME", "--wandb-run-name"),
        ("NUM_EPISODES", "--num-episodes"),
        ("METTA_PRESET", "--metta-preset"),
        ("BASELINE_URI", "--baseline-uri"),
        ("GATE", "--eval-gate"),
    ):
        if env.get(variable):
            command += [flag, env[variable]]
    return command


def _run_pytest(command: list[str]) -> tuple[int, Any]:
    """pytest.main with everything it prints (Python or native) sent to stderr."""
    outcome = RunOutcome()
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        code = pytest.main(command, plugins=[outcome])
    finally:
        sys.stdout.flush()
        sys.stdout = real_stdout
        os.dup2(saved, 1)
        os.close(saved)
    return int(code), outcome.controller


def evaluate(env: dict[str, str]) -> dict[str, Any]:
    if not env.get("POLICY_URI"):
        raise ServiceError("POLICY_URI is not set: name the policy to evaluate")
    if _needs_wandb_key(env):
        raise ServiceError("WANDB_API_KEY is not set; it is required for wandb:// URIs")
    with tempfile.TemporaryDirectory() as folder:
        json_path = Path(folder) / "results.json"
        code, controller = _run_pytest(pytest_command(env, json_path))
        if not json_path.is_file():
            raise ServiceError(f"the evaluation produced no results (pytest exit status {code}); see stderr")
        document = json.loads(json_path.read_text())
        if document.get("in_progress"):  # the start-of-run placeholder: the run's end never came
            raise ServiceError(f"the evaluation did not finish (pytest exit status {code}); see stderr")
    tasks = [
        t for p in document["policies"] for c in p["checkpoints"] for t in c["metrics"]["tasks"].values()
    ]
    if not tasks and document.get("interrupted"):
        raise ServiceError("the evaluation was interrupted before any task finished")
    errors = [t["error"] for t in tasks if t.get("error")]
    if tasks and len(errors) == len(tasks):
        raise ServiceError(errors[0])  # nothing was evaluated: a policy that does not load, say
    publishing = controller.publishing if controller is not None else None
    if publishing is not None and publishing.errors:
        raise ServiceError(f"results not published: {publishing.errors[0]}")
    return document


_signalled: list[int] = []


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM (Kubernetes' eviction) and SIGINT end the run as Ctrl-C does: what ran is written,
    marked, and the exit status says which signal (128 + its number)."""
    _signalled.append(signum)
    raise KeyboardInterrupt


def main() -> int:
    env = dict(os.environ)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        document = evaluate(env)
    except ServiceError as exc:
        document, status = {"error": str(exc), "traceback": None, "policy_uri": env.get("POLICY_URI")}, 1
        document["error"] = redact_text(document["error"], [env.get("POLICY_URI") or ""])
    except KeyboardInterrupt:
        reason = f"stopped by {signal.Signals(_signalled[0]).name}" if _signalled else "interrupted"
        document, status = (
            {"error": f"the evaluation was {reason}", "traceback": None, "policy_uri": env.get("POLICY_URI")},
            1,
        )
    except Exception as exc:  # anything unforeseen still answers in the agreed shape
        document = {
            "error": redact_text(f"{type(exc).__name__}: {exc}", [env.get("POLICY_URI") or ""]),
            "traceback": traceback.format_exc(),
            "policy_uri": env.get("POLICY_URI"),
        }
        status = 1
    else:
        # Gates that fail are in the document (`passed`); a run that is not whole is a failure.
        status = 0 if document.get("complete") is True and not document.get("interrupted") else 1
    if document.get("policy_uri"):
        document["policy_uri"] = redact_uri(document["policy_uri"])
    if document.get("traceback"):
        document["traceback"] = redact_text(document["traceback"], [env.get("POLICY_URI") or ""])
    print(json.dumps(document, indent=2), flush=True)
    if _signalled and status:
        return 128 + _signalled[0]
    return status


if __name__ == "__main__":
    sys.exit(main())
