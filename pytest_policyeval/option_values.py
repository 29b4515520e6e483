"""Option values checked when they are parsed: the command line, ini files and the service's
environment all use these, so a bad value is one short message naming it."""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


# -- option values, checked when parsed ---------------------------------------------------------


class BadValue(argparse.ArgumentTypeError, ValueError):
    """argparse prints its message for a command-line value; ini values catch it as a ValueError."""


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadValue(f"must be a whole number, got {text[:40]!r}") from None


def gate_kind(text: str) -> str:
    """A registered gate (`pytest_policyeval_gates`: built in, from a plugin or a conftest)."""
    from pytest_policyeval import registry

    known = sorted(registry.table("pytest_policyeval_gates"))
    if text not in known:
        raise BadValue(f"must be one of {', '.join(known)}")
    return text


def uri(text: str) -> str:
    """A policy or output URI: an empty one is refused, not read as "none given" (an unset
    variable in `--baseline-uri=$BASELINE` would otherwise turn a gate off without a word)."""
    if not text.strip():
        raise BadValue("is empty (an unset variable?): give a URI, or leave the option out")
    return text


# The ini keys besides the options' own help; each option's dest is also its ini key.
INI_KEYS = {
    "policyeval_ray": "Ray cluster to evaluate on (see --eval-ray)",
    "policyeval_ray_resources": "each task's Ray resources",
    "policyeval_ray_retries": "retries of a task lost on Ray",
    "policyeval_ray_node_wait": "seconds a task waits for a node that can run it",
    "policyeval_policy_uris": "policies to evaluate",
    "policyeval_suites": "suites to run, by name or path",
    "policyeval_npc_policy_uri": "policy for the agents not under test",
    "policyeval_pytorch_config": "architecture config of pytorch:// checkpoints",
    "policyeval_metta_preset": "Metta engine version of Metta checkpoints",
    "policyeval_data_dir": "cache of downloaded policies",
    "policyeval_output_uri": "where results are published",
    "policyeval_wandb_entity": "W&B entity of wandb://run/NAME (or WANDB_ENTITY)",
    "policyeval_wandb_project": "W&B project of wandb://run/NAME (or WANDB_PROJECT)",
    "policyeval_num_episodes": "episodes per task",
    "policyeval_seed": "base seed of every episode",
    "policyeval_device": "torch device: cpu, cuda, cuda:N",
    "policyeval_gate": "sequential, mean or ci",
    "policyeval_baseline_uri": "gate on per-seed differences to this policy",
    "policyeval_replay_episodes": "episodes recorded per task",
    "policyeval_suite_patterns": "glob patterns (relative to rootdir) of suite files, besides YAML files "
    "in a 'suites' folder",
}
LINE_LISTS = {"policyeval_policy_uris", "policyeval_suites", "policyeval_suite_patterns"}

URI_INI = (
    "policyeval_baseline_uri",
    "policyeval_npc_policy_uri",
    "policyeval_output_uri",
    "policyeval_policy_uris",
)


def empty_uri_override(entries: list[str]) -> str | None:
    """The URI ini key that `-o NAME=` leaves empty, if any (an empty line in an ini file still
    means "not set"; an empty `-o` is an unset variable, as for the options themselves)."""
    for entry in entries:
        name, _, value = str(entry).partition("=")
        if name.strip() in URI_INI and not value.strip():
            return name.strip()
    return None


def positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise BadValue(f"must be at least 1, got {value}")
    return value


MAX_EPISODES = 100_000  # the suite's own cap (collection/suite.py), for the command line and ini too


def episode_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_EPISODES:
        raise BadValue(f"must be at most {MAX_EPISODES}, got {value}")
    return value


def output_file(text: str) -> Path:
    """A file the run can write at its end, checked now so that no evaluation is done in vain."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise BadValue(f"{text} is a directory; name a file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # folders the writer would create
        folder = folder.parent
    if not folder.is_dir():
        raise BadValue(f"cannot write {text}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise BadValue(f"cannot write {text}: permission denied in {folder}")
    # Permission bits do not tell everything (root, read-only mounts): make the folder and try.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise BadValue(f"cannot write {text}: {exc.strerror or type(exc).__name__}") from None
    return path


def non_negative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise BadValue(f"must be 0 or more, got {value}")
    return value


def retry_count(text: str) -> int:
    """Retries of a lost task: a few, not billions (Ray's counter is a 32-bit integer)."""
    value = non_negative_int(text)
    if value > MAX_RETRIES:
        raise BadValue(f"must be at most {MAX_RETRIES}, got {value}")
    return value


MAX_RETRIES = 100


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadValue(f"must be a number, got {text[:40]!r}") from None
    if not 0 <= value < float("inf"):
        raise BadValue(f"must be 0 or more, got {text[:40]}")
    return value


def existing_file(text: str) -> Path:
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise BadValue(f"no such file: {text}")
    return path


def replay_dir(text: str) -> Path:
    # `--save-replays` takes an optional value, so a suite named after it would be read as the
    # directory: refuse what looks like a test path and say how to write it.
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml", ".py") or path.is_file():
        raise BadValue(
            f"'{text}' looks like a test path, not a directory; write --save-replays=DIR, "
            "or put --save-replays after the paths"
        )
    return path


def device_name(text: str) -> str:
    if not DEVICE.match(text):
        raise BadValue(f"unknown device '{text}'; use cpu, cuda, cuda:N or mps")
    return text


def metta_preset(text: str) -> str:
    from pytest_policyeval.policies.metta.presets import known_presets  # light: no torch

    if text not in known_presets():
        raise BadValue(f"unknown Metta preset '{text[:80]}'; known: {known_presets()}")
    return text


RAY_ADDRESS = re.compile(r"^(auto|local|(ray://)?[A-Za-z0-9.\-\[\]:]{1,253}:\d{1,5})$")


def ray_address(text: str) -> str:
    """--eval-ray: `auto` (the cluster this machine belongs to), `local` (start one here for the
    run), or an address, HOST:PORT of the head's GCS or ray://HOST:PORT of its Ray Client server."""
    if not RAY_ADDRESS.match(text):
        raise BadValue(f"'{text[:80]}' is not auto, local, HOST:PORT or ray://HOST:PORT")
    return text


def ray_resources(text: str) -> dict:
    """--eval-ray-resources: `cpus=1,gpus=0.25,memory_mb=4000,NAME=1` (custom resources by name),
    checked as a suite's `resources:` is."""
    from pydantic import ValidationError

    from pytest_policyeval.task import Resources

    fields: dict = {"custom": {}}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, amount = part.partition("=")
        name = name.strip()
        try:
            value = float(amount)
        except ValueError:
            raise BadValue(f"'{part[:40]}' is not NAME=NUMBER") from None
        if not sep or not name:
            raise BadValue(f"'{part[:40]}' is not NAME=NUMBER")
        if name in ("cpus", "gpus", "memory_mb"):
            fields[name] = int(value) if name == "memory_mb" and value == int(value) else value
        else:
            fields["custom"][name] = value
    try:
        return Resources.model_validate(fields).model_dump()
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise BadValue(f"{where}: {problem['msg']}") from None
