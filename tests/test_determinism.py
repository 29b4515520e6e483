"""Same seed, same per-episode results, whatever the order, the batch or the process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import EASY_MAP, MINI_SUITE, make_checkpoint, write_suite

from pytest_policyeval.collection.suite import load_suite
from pytest_policyeval.policies import load_policy
from pytest_policyeval.policies.checkpoint import read_checkpoint, save_checkpoint
from pytest_policyeval.runner import play_episodes

COIN = "#########\n#_..@...#\n#########"
SUITE = """
name: det
seed: 5
defaults: {num_episodes: 6, max_steps: 25}
tasks:
  - {name: nav/coin, map: maps/coin.map}
  - {name: nav/coin2, map: maps/coin.map}
"""


@pytest.fixture
def task(tmp_path: Path):
    return load_suite(write_suite(tmp_path, SUITE, maps={"coin": COIN})).tasks[0]


@pytest.mark.parametrize("uri", ["random://", "checkpoint"])
def test_episode_results_do_not_depend_on_batch_size(tmp_path: Path, task, uri: str) -> None:
    if uri == "checkpoint":
        path = make_checkpoint(tmp_path / "p.pt", COIN)
        # Shrink the actor head: near-uniform sampling that still depends on the whole network.
        checkpoint = read_checkpoint(path)
        checkpoint.state_dict["actor.weight"] *= 0.2
        checkpoint.state_dict["actor.bias"] *= 0.0
        uri = str(save_checkpoint(checkpoint, path))
    policy = load_policy(uri)
    six = play_episodes(task, policy).episodes
    three = play_episodes(task.with_overrides(num_episodes=3), policy).episodes
    assert [(e.seed, e.rewards, e.steps) for e in three] == [(e.seed, e.rewards, e.steps) for e in six[:3]]
    # The premise: episodes differ from each other, so equality above is not trivial.
    assert len({(e.steps, tuple(e.rewards)) for e in six}) > 1


def test_seed_changes_results_and_task_name_changes_seeds(task) -> None:
    policy = load_policy("random://")
    base = play_episodes(task, policy).episodes
    other_seed = play_episodes(task.with_overrides(seed=6), policy).episodes
    assert [e.seed for e in base] != [e.seed for e in other_seed]
    from dataclasses import replace

    renamed = play_episodes(replace(task, name="nav/other"), policy).episodes
    assert [e.seed for e in renamed] != [e.seed for e in base]


def _episodes(path: Path) -> dict:
    doc = json.loads(path.read_text())
    tasks = doc["policies"][0]["checkpoints"][0]["metrics"]["tasks"]
    return {name: (t["seeds"], t["episode_rewards"], t["episode_steps"]) for name, t in tasks.items()}


def test_same_results_serial_reversed_and_under_xdist(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE, maps={"coin": COIN})
    serial = pytester.runpytest("--policy-uri", "random://", "--eval-json", "serial.json")
    serial.assert_outcomes(passed=2)
    one_task = pytester.runpytest("--policy-uri", "random://", "-k", "coin2", "--eval-json", "one.json")
    one_task.assert_outcomes(passed=1, deselected=1)
    parallel = pytester.runpytest_subprocess(
        "-p", "no:importnb", "-n", "2", "--policy-uri", "random://", "--eval-json", "xdist.json"
    )
    parallel.assert_outcomes(passed=2)
    reference = _episodes(pytester.path / "serial.json")
    assert _episodes(pytester.path / "xdist.json") == reference
    assert _episodes(pytester.path / "one.json")["nav/coin2"] == reference["nav/coin2"]


def test_xdist_run_writes_one_summary_with_every_task(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, MINI_SUITE, maps={"easy": EASY_MAP, "hard": COIN})
    result = pytester.runpytest_subprocess(
        "-p", "no:importnb", "-n", "2", "--policy-uri", "random://", "--eval-yaml", "e.yaml"
    )
    result.stdout.fnmatch_lines(["*policy evaluation*", "*nav/easy*PASS*", "*nav/hard*"])
    assert result.stdout.str().count("policy evaluation") == 1
    assert (pytester.path / "e.yaml").exists()


GATED = """
name: gated
seed: 7
defaults: {num_episodes: 4, max_steps: 6}
tasks:
  - {name: nav/coin, map: maps/coin.map, threshold: 0.3}
  - {name: nav/coin2, map: maps/coin.map, threshold: 0.5, max_steps: 8}
  - {name: nav/coin3, map: maps/coin.map, threshold: 0.2, max_steps: 5}
"""


def _decisions(path: Path) -> dict:
    from helpers import task_details

    fields = ("outcome", "num_episodes", "episode_scores", "seeds", "ci_low", "ci_high", "evidence")
    return {task: {f: detail[f] for f in fields} for (task, _), detail in task_details(path).items()}


def test_a_sequential_decision_is_the_same_serial_under_xdist_in_shards_and_resumed(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    from helpers import run_shards

    from pytest_policyeval.merge import merge_shards

    suite = write_suite(pytester.path, GATED, maps={"coin": COIN})
    fresh = ("--policy-uri", "random://", "--no-eval-cache")
    pytester.runpytest(*fresh, "--eval-json", "serial.json")
    reference = _decisions(pytester.path / "serial.json")
    assert any(d["num_episodes"] > 4 for d in reference.values())  # the premise: more than one round
    pytester.runpytest_subprocess("-p", "no:importnb", "-n", "2", *fresh, "--eval-json", "xdist.json")
    assert _decisions(pytester.path / "xdist.json") == reference
    shards = run_shards(suite, tmp_path, "--no-eval-cache")
    merged = merge_shards(shards).results
    assert {r.task: (r.outcome, r.num_episodes, r.episode_scores) for r in merged} == {
        task: (d["outcome"], d["num_episodes"], d["episode_scores"]) for task, d in reference.items()
    }
    # Resumed: a run that kept only each task's first round, then the full run from the cache.
    data = ("--policy-uri", "random://", "--data-dir", str(tmp_path / "data"))
    pytester.runpytest(*data, "--eval-gate", "mean", "--eval-json", "first_round.json")
    pytester.runpytest(*data, "--eval-json", "resumed.json")
    assert _decisions(pytester.path / "resumed.json") == reference
