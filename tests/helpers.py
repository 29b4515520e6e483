"""Helpers for the plugin's tests: tiny suites and checkpoints written into temp directories."""

from __future__ import annotations

import textwrap
from pathlib import Path

# Random moves reach a goal beside the start almost surely: west and east both score.
EASY_MAP = """
#####
#_@_#
#####
"""
# A goal far behind walls: random play never reaches it in a few steps.
HARD_MAP = """
###########
#@#......_#
#.#.#######
#.........#
###########
"""


def write_suite(
    root: Path, body: str, maps: dict[str, str] | None = None, name: str = "suites/mini.yaml"
) -> Path:
    """Write a suite file (and its maps under maps/) below `root`; return the suite path."""
    suite = root / name
    suite.parent.mkdir(parents=True, exist_ok=True)
    for map_name, text in (maps or {"easy": EASY_MAP, "hard": HARD_MAP}).items():
        path = suite.parent / "maps" / f"{map_name}.map"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).strip() + "\n")
    suite.write_text(textwrap.dedent(body).lstrip())
    return suite


# Most tests are about something other than gates: a fixed episode count keeps them small and
# their premises fixed (test_gate_boundaries, test_eval_cache and test_baseline use the default).
MINI_SUITE = """
name: mini
seed: 3
defaults:
  num_episodes: 4
  max_steps: 30
  gate: mean
tasks:
  - name: nav/easy
    map: maps/easy.map
    threshold: 0.9
  - name: nav/hard
    map: maps/hard.map
"""


def make_checkpoint(path: Path, task_map: str = EASY_MAP, *, seed: int = 0, **config) -> Path:
    """A randomly initialised token_cnn_lstm checkpoint whose names match the grid tasks."""
    import torch

    from pytest_policyeval.policies.checkpoint import Checkpoint, save_checkpoint
    from pytest_policyeval.policies.networks import build_network

    spec = grid_env_spec(path.parent, task_map)
    features = [name for name in spec.feature_names if name and name != "tag"]
    settings = {
        "num_features": len(features),
        "num_tags": len(spec.tag_names),
        "num_actions": len(spec.action_names),
        **config,
    }
    torch.manual_seed(seed)
    network = build_network("token_cnn_lstm", settings)
    checkpoint = Checkpoint(
        architecture="token_cnn_lstm",
        config=settings,
        feature_names=features,
        tag_names=list(spec.tag_names),
        action_names=list(spec.action_names),
        state_dict=network.state_dict(),
    )
    return save_checkpoint(checkpoint, path)


def grid_env_spec(workdir: Path, task_map: str = EASY_MAP):
    from pytest_policyeval.collection.suite import load_suite
    from pytest_policyeval.engines.mettagrid.simulation import task_env_spec

    suite = write_suite(workdir / "_spec", MINI_SUITE, maps={"easy": task_map, "hard": HARD_MAP})
    return task_env_spec(load_suite(suite).tasks[0])


def run_policyeval(pytester, *args: str):
    """The `policyeval` command (as `python -m pytest_policyeval`) in the pytester directory."""
    import sys

    return pytester.run(sys.executable, "-m", "pytest_policyeval", *args)


def read_html_report(path: Path) -> dict:
    """pytest-html's data (environment, tests with their rows and extras) read back from the file."""
    import html
    import json
    import re

    match = re.search(r'data-jsonblob="([^"]*)"', path.read_text(encoding="utf-8"))
    assert match, f"{path} has no pytest-html data"
    return json.loads(html.unescape(match.group(1)))


def films_of(test: dict) -> list[dict]:
    """The films embedded in one test's extras, decoded as the report's player decodes them."""
    import re

    from pytest_policyeval.reporting.film import decode

    return [
        decode(film)
        for extra in test["extras"]
        if extra["format_type"] == "html"
        for film in re.findall(r'data-film="([^"]+)"', extra["content"])
    ]


def task_details(path: Path) -> dict[tuple[str, str], dict]:
    """Per-task detail of a results JSON (evaluator shape), keyed by (task, policy label)."""
    import json

    document = json.loads(path.read_text())
    return {
        (task, checkpoint["name"]): detail
        for policy in document["policies"]
        for checkpoint in policy["checkpoints"]
        for task, detail in checkpoint["metrics"]["tasks"].items()
    }


def random_scheme(name: str, before_act: str, imports: str = "", on_actor: str = "") -> str:
    """conftest.py text registering `NAME://`: random play, with `before_act` (Python lines that
    may use `observations`, `slots`, `step` and `env`) run before every step, and `on_actor` run
    when an actor is made for a task."""
    import textwrap

    return (
        f"{imports}\n"
        "import pytest\n"
        "from pytest_policyeval.policies.random_policy import RandomPolicy\n\n"
        "class Wrapped(RandomPolicy):\n"
        "    def actor(self, env, device='cpu'):\n"
        "        inner = super().actor(env, device)\n"
        f"{textwrap.indent(on_actor, ' ' * 8)}\n"
        "        class Actor:\n"
        "            reset = inner.reset\n\n"
        "            def act(self, observations, slots, step):\n"
        f"{textwrap.indent(before_act, ' ' * 16)}\n"
        "                return inner.act(observations, slots, step)\n\n"
        "        return Actor()\n\n"
        "@pytest.hookimpl\n"
        "def pytest_policyeval_policy_schemes():\n"
        f"    return {{{name!r}: lambda uri, rest, options: Wrapped(uri)}}\n"
    )


def run_shards(suite: Path, out_dir: Path, *extra: str, num_shards: int = 2) -> list[Path]:
    """Each shard of a split run of `suite` (in this process), with random://; their JSON paths."""
    import pytest

    paths = []
    for shard in range(num_shards):
        out = out_dir / f"shard{shard}.json"
        args = [str(suite), "-q", "-p", "no:cacheprovider", "--policy-uri=random://", f"--eval-json={out}"]
        code = pytest.main([*args, f"--shard-id={shard}", f"--num-shards={num_shards}", *extra])
        assert code in (0, 1), f"shard {shard} exited {code}"
        paths.append(out)
    return paths


# The navigator reaches the goal beside it on every episode: score exactly 1.0, no spread.
CERTAIN_MAP = "#####\n#@_.#\n#####"


def run_certain(pytester, settings: str, policy: str = "scripted://navigator", *args: str):
    """One task on CERTAIN_MAP with these settings (4 episodes, 10 steps): the pytest result and the
    task's detail from the results JSON."""
    body = f"""
    name: edges
    defaults: {{num_episodes: 4, max_steps: 10}}
    tasks:
      - name: nav/certain
        map: maps/certain.map
        {settings}
    """
    write_suite(pytester.path, body, maps={"certain": CERTAIN_MAP})
    result = pytester.runpytest("--policy-uri", policy, "--eval-json", "out.json", *args)
    detail = task_details(pytester.path / "out.json")[("nav/certain", policy.split("://")[1] or "random")]
    return result, detail


def as_from_a_terminal() -> None:
    """A child's preexec_fn: Ctrl-C as a terminal delivers it. A shell runs a background job (a CI
    script's `cmd &`) with SIGINT ignored, and its children inherit that, so a test's SIGINT
    would never reach pytest."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
