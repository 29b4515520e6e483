"""laser_tag on mettagrid, mixed episodes with an npc policy, and suites built by including others."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import write_suite

from pytest_policyeval.collection.suite import SuiteError, load_suite
from pytest_policyeval.engines.mettagrid.simulation import EpisodeBatch
from pytest_policyeval.policies import load_policy
from pytest_policyeval.runner import play_episodes, policy_agents

REPO = Path(__file__).resolve().parents[1]
CORRIDOR = "#######\n#1..2.#\n#######"  # red agent 0 faces blue agent 1 two cells east
ROOM = "#########\n#1.....2#\n#.......#\n#1.....2#\n#########"
SUITE = """
name: lt
defaults: {game: laser_tag, num_episodes: 4, max_steps: 60, freeze_steps: 3}
tasks:
  - {name: lt/corridor, map: maps/corridor.map}
  - {name: lt/room, map: maps/room.map}
  - {name: lt/room_npc, map: maps/room.map, policy_agents_pct: 0.5, npc_policy_uri: "random://"}
  - {name: lt/room_no_npc, map: maps/room.map, policy_agents_pct: 0.5}
"""


@pytest.fixture
def tasks(tmp_path: Path) -> dict:
    suite = write_suite(tmp_path, SUITE, maps={"corridor": CORRIDOR, "room": ROOM})
    return {task.short_name: task for task in load_suite(suite).tasks}


def test_walking_into_an_opponent_tags_it_and_freezes_it(tasks: dict) -> None:
    batch = EpisodeBatch(tasks["corridor"], [1])
    try:
        names = batch.spec.action_names
        assert batch.spec.agent_teams == (0, 1)
        rewards = []
        for _ in range(8):
            # The two walk into each other every step: red east, blue west.
            batch.actions[:] = [names.index("move_east"), names.index("move_west")]
            batch.step([0])
            rewards.append(batch.episode_rewards(0).tolist())
    finally:
        batch.close()
    # Step 0 closes the gap; at step 1 each walks into the other: a tag each, one point each.
    # Both stay frozen for freeze_steps (3): bumping into a frozen agent scores nothing, and a
    # frozen agent cannot move; at step 4 both are free and tag again.
    assert rewards == [[0, 0], [1, 1], [1, 1], [1, 1], [2, 2], [2, 2], [2, 2], [3, 3]]


def test_the_scripted_tagger_tags_far_more_than_random(tasks: dict) -> None:
    room = tasks["room"]
    random_score = np.mean(
        [np.mean(e.rewards) for e in play_episodes(room, load_policy("random://")).episodes]
    )
    tagger_score = np.mean(
        [np.mean(e.rewards) for e in play_episodes(room, load_policy("scripted://tagger")).episodes]
    )
    assert tagger_score > 2 * random_score


@pytest.mark.parametrize(
    ("teams", "share", "episode", "expected"),
    [
        ((0, 1, 0, 1), 0.5, 0, [True, False, True, False]),
        ((0, 1, 0, 1), 0.5, 1, [False, True, False, True]),  # sides alternate by episode
        ((0, 1, 0, 1), 0.25, 0, [True, False, False, False]),
        ((0, 1, 0, 1), 0.75, 1, [True, True, False, True]),  # a whole team first, then the other
        ((0, 0, 0), 0.01, 0, [True, False, False]),  # at least one agent
        ((0, 1), 1.0, 3, [True, True]),
    ],
)
def test_policy_agents_fill_whole_teams_alternating_sides(teams, share, episode, expected) -> None:
    assert policy_agents(teams, share, episode).tolist() == expected


def test_mixed_episodes_score_only_the_policy_agents(tasks: dict) -> None:
    task = tasks["room_npc"]
    rollout = play_episodes(task, load_policy("scripted://tagger"), npc=load_policy("random://"))
    assert all(len(episode.rewards) == 2 for episode in rollout.episodes)
    full = play_episodes(tasks["room"], load_policy("scripted://tagger"))
    assert all(len(episode.rewards) == 4 for episode in full.episodes)
    # Swap the roles: the scores follow the policy under test, not the npc.
    swapped = play_episodes(task, load_policy("random://"), npc=load_policy("scripted://tagger"))
    tagger = np.mean([np.mean(e.rewards) for e in rollout.episodes])
    random = np.mean([np.mean(e.rewards) for e in swapped.episodes])
    assert tagger > 1.5 * random, (tagger, random)


def test_a_task_without_npc_policy_says_how_to_name_one(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path, SUITE, maps={"corridor": CORRIDOR, "room": ROOM})
    result = pytester.runpytest(
        str(suite), "--policy-uri=random://", "-k", "room_no_npc or room_npc", "--eval-json=r.json"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*lt/room_no_npc*names no npc policy*--npc-policy-uri*"])
    # The command-line npc fills in, and overrides the suite's choice.
    result = pytester.runpytest(
        str(suite),
        "--policy-uri=random://",
        "--npc-policy-uri=scripted://tagger",
        "-k",
        "npc",
        "--eval-json=r.json",
    )
    result.assert_outcomes(passed=2)
    data = json.loads((pytester.path / "r.json").read_text())
    metrics = data["policies"][0]["checkpoints"][0]["metrics"]
    assert {t["npc_policy_uri"] for t in metrics["tasks"].values()} == {"scripted://tagger"}


def test_full_eval_includes_every_task_of_the_three_suites_once() -> None:
    suites = REPO / "suites"
    full = load_suite(suites / "full_eval.yaml")
    parts = [load_suite(suites / f"{name}.yaml") for name in ("navigation_single", "navigation", "laser_tag")]
    expected = {task.name: task for part in parts for task in part.tasks}
    assert sorted(task.name for task in full.tasks) == sorted(expected)
    assert len(full.tasks) == len(expected)
    for task in full.tasks:  # included as defined, seeds and settings alike
        assert task.suite == "full_eval"
        assert (task.settings, task.seed, task.env, task.folder) == (
            expected[task.name].settings,
            expected[task.name].seed,
            expected[task.name].env,
            expected[task.name].folder,
        )
    assert {task.category for task in full.tasks} == {"navigation", "laser_tag"}


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"a.yaml": "name: a\ninclude: [b.yaml]\n", "b.yaml": "name: b\ninclude: [a.yaml]\n"}, "in a cycle"),
        (
            {"a.yaml": "name: a\ninclude: [missing.yaml]\n"},
            "key 'include.0': suite file not found: missing.yaml",
        ),
        (
            {
                "a.yaml": "name: a\ninclude: [{suite: b.yaml, tasks: [nav/nope*]}]\n",
                "b.yaml": "name: b\ntasks: [{name: nav/x, map: e.map}]\n",
            },
            "no task of b.yaml matches ['nav/nope*']",
        ),
        (
            {
                "a.yaml": "name: a\ninclude: [b.yaml, c.yaml]\n",
                "b.yaml": "name: b\ntasks: [{name: nav/x, map: e.map}]\n",
                "c.yaml": "name: c\ntasks: [{name: nav/x, map: e.map, max_steps: 7}]\n",
            },
            "task 'nav/x' is defined differently twice",
        ),
    ],
)
def test_include_errors_name_the_file_and_the_cause(tmp_path: Path, files: dict, fragment: str) -> None:
    (tmp_path / "e.map").write_text("#####\n#_@_#\n#####\n")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(SuiteError) as error:
        load_suite(tmp_path / "a.yaml")
    assert fragment in str(error.value)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            "name: s\ntasks: [{name: lt/x, map: maps/nav.map, game: laser_tag}]\n",
            "laser_tag needs agents of two teams",
        ),
        ("name: s\ntasks: [{name: nav/x, map: maps/lt.map}]\n", "a navigation map needs a goal"),
        (
            "name: s\ntasks: [{name: lt/x, map: maps/lt.map, game: laser_tag, policy_agents_pct: 0}]\n",
            "policy_agents_pct",
        ),
    ],
)
def test_game_specific_map_checks(tmp_path: Path, body: str, fragment: str) -> None:
    suite = write_suite(tmp_path, body, maps={"nav": "#####\n#_@_#\n#####", "lt": CORRIDOR})
    with pytest.raises(SuiteError, match=fragment):
        load_suite(suite)


def test_full_eval_runs_a_pytorch_policy_on_every_task_and_reports_each_category(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    from test_metta_policies import save_metta

    path = save_metta(tmp_path / "metta.pt")
    result = pytester.runpytest(
        str(REPO / "suites" / "full_eval.yaml"),
        f"--policy-uri=pytorch://{path}",
        "--num-episodes=1",
        "--eval-yaml=evaluation_results.yaml",
        "-p",
        "no:cacheprovider",
    )
    tasks = load_suite(REPO / "suites" / "full_eval.yaml").tasks
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == len(tasks)
    assert "error" not in result.stdout.str().lower().split("policy evaluation")[-1]
    import yaml

    document = yaml.safe_load((pytester.path / "evaluation_results.yaml").read_text())
    detailed = document["results"]["detailed_scores"]
    assert set(detailed) == {"navigation", "laser_tag"}
    assert sum(len(scores) for scores in detailed.values()) == len(tasks)
    assert document["suite"] == "full_eval"
