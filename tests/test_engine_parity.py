"""The mettagrid suites play exactly as they did before the engine protocol existed.

tests/data/mettagrid_episodes_before.json holds the seeds, per-agent rewards and steps of every
episode of the shipped navigation and laser_tag suites for the scripted, random and shipped
checkpoint policies, written by the plugin at commit 0a30d94 (before engines/ existed). The same
runs now must give the same numbers, episode by episode.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BEFORE = json.loads((REPO / "tests/data/mettagrid_episodes_before.json").read_text())["episodes"]
RUNS = [
    (["navigation", "laser_tag"], ["scripted://navigator", "random://"], 4),
    (["navigation", "laser_tag"], ["examples/policies/navigation.pt"], 3),
    (["laser_tag"], ["examples/policies/laser_tag.pt"], 3),
]


@pytest.mark.parametrize(
    "suites, uris, episodes", RUNS, ids=["scripted+random", "navigation.pt", "laser_tag.pt"]
)
def test_mettagrid_episodes_equal_those_before_the_engine_protocol(
    pytester: pytest.Pytester, suites: list[str], uris: list[str], episodes: int
) -> None:
    args = [str(REPO / "suites" / f"{name}.yaml") for name in suites]
    for uri in uris:
        args += ["--policy-uri", uri if "://" in uri else str(REPO / uri)]
    args += ["--npc-policy-uri", "scripted://tagger", "--num-episodes", str(episodes)]
    args += [
        "--no-eval-cache",
        "--eval-gate",
        "mean",
        "--eval-json",
        "r.json",
        "-n",
        "2",
        "-p",
        "no:importnb",
    ]
    pytester.runpytest_subprocess(*args, timeout=300)
    document = json.loads((pytester.path / "r.json").read_text())
    compared = 0
    for policy in document["policies"]:
        for checkpoint in policy["checkpoints"]:
            uri = checkpoint["uri"].removeprefix(str(REPO) + "/")
            for task, detail in checkpoint["metrics"]["tasks"].items():
                before = BEFORE[f"{uri}::{task}"]
                now = {
                    "seeds": detail["seeds"],
                    "rewards": detail["episode_rewards"],
                    "steps": detail["episode_steps"],
                }
                assert now == before, f"{uri} {task}"
                compared += 1
    assert compared == sum(
        1
        for key in BEFORE
        if any(key.startswith(u + "::") for u in uris) and key.split("::")[1].split("/")[0] in suites
    )
