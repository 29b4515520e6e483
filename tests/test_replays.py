"""Replays: mettagrid's own replay files for chosen episodes, linked from the results, and films."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
from helpers import task_details, write_suite

from pytest_policyeval.collection.suite import load_suite
from pytest_policyeval.engines.mettagrid.replay import (
    ReplayFormatError,
    changes,
    film_from_replay,
    read_replay_file,
)
from pytest_policyeval.policies import load_policy
from pytest_policyeval.reporting.film import decode
from pytest_policyeval.runner import play_episodes

# The goal is three steps east of the agent. (A replay records the state after each step, so a
# goal taken at the first step would never appear.)
GOAL_EAST = "######\n#@.._#\n######"
LASER = "#########\n#1.....2#\n#.......#\n#1.....2#\n#########"
SUITE = """
name: rec
seed: 5
defaults: {num_episodes: 3, max_steps: 20}
tasks:
  - {name: nav/easy, map: maps/easy.map}
  - {name: nav/hard, map: maps/hard.map}
"""


def _tasks(tmp_path: Path, body: str, maps: dict[str, str] | None = None) -> dict:
    return {t.short_name: t for t in load_suite(write_suite(tmp_path, body, maps=maps)).tasks}


def _tasks_json(path: Path) -> dict:
    return {task: detail for (task, _), detail in task_details(path).items()}


def test_save_replays_writes_mettagrid_files_for_the_chosen_episodes(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE)
    result = pytester.runpytest(
        "--policy-uri", "random://", "--save-replays=out/replays", "--replay-episodes", "2",
        "--eval-json", "out/results.json",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["4 replays written under out/replays"])
    files = sorted((pytester.path / "out/replays").rglob("*.json.z"))
    assert [f.relative_to(pytester.path / "out/replays").as_posix() for f in files] == [
        "rec/random/nav/easy/episode-0.json.z",
        "rec/random/nav/easy/episode-1.json.z",
        "rec/random/nav/hard/episode-0.json.z",
        "rec/random/nav/hard/episode-1.json.z",
    ]
    tasks = _tasks_json(pytester.path / "out/results.json")
    for task, detail in tasks.items():
        assert detail["replay_url"] == detail["replay_urls"][0]
        assert detail["mettascope_url"] == detail["mettascope_urls"][0]
        assert [Path(url).name for url in detail["replay_urls"]] == [
            "episode-0.json.z",
            "episode-1.json.z",
        ]
        for url, steps in zip(detail["replay_urls"], detail["episode_steps"], strict=False):
            assert Path(url).is_absolute()
            replay = read_replay_file(Path(url).read_bytes())
            # mettagrid's format, written by mettagrid's EpisodeReplay: one record per step.
            assert replay["version"] == 4
            assert replay["max_steps"] == steps
            assert replay["mg_config"]["label"] == task
        assert detail["mettascope_urls"][0].startswith("https://metta-ai.github.io/metta/mettascope/")
    checkpoint = json.loads((pytester.path / "out/results.json").read_text())["policies"][0]["checkpoints"][0]
    assert checkpoint["replay_url"] == tasks["nav/easy"]["replay_urls"][0]


def test_recording_changes_no_result(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE)
    plain = pytester.runpytest("--policy-uri", "random://", "--eval-json", "plain.json")
    recorded = pytester.runpytest(
        "--policy-uri", "random://", "--eval-json", "rec.json", "--save-replays=r", "--replay-episodes", "3"
    )
    plain.assert_outcomes(passed=2)
    recorded.assert_outcomes(passed=2)
    keys = ("episode_rewards", "episode_steps", "seeds", "score")
    for task, detail in _tasks_json(pytester.path / "plain.json").items():
        again = _tasks_json(pytester.path / "rec.json")[task]
        assert {k: detail[k] for k in keys} == {k: again[k] for k in keys}
        assert detail["replay_urls"] == [] and len(again["replay_urls"]) == 3


def test_zero_replay_episodes_writes_none(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE)
    result = pytester.runpytest("--policy-uri", "random://", "--save-replays=r", "--replay-episodes", "0")
    result.assert_outcomes(passed=2)
    assert not list(pytester.path.rglob("*.json.z"))


def test_a_suite_path_after_save_replays_is_a_usage_error(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path, SUITE)
    result = pytester.runpytest("--policy-uri", "random://", "--save-replays", str(suite))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*looks like a test path, not a directory; write --save-replays=DIR*"])


def test_an_unwritable_replay_directory_keeps_the_score_and_names_the_cause(
    pytester: pytest.Pytester,
) -> None:
    write_suite(pytester.path, SUITE)
    (pytester.path / "blocked").write_text("a file where the directory should be")
    result = pytester.runpytest(
        "--policy-uri", "random://", "--save-replays=blocked/sub", "--eval-json", "r.json", "-k", "easy"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*replays could not be saved: *Error*"])
    detail = _tasks_json(pytester.path / "r.json")["nav/easy"]
    assert detail["score"] is not None and len(detail["episode_rewards"]) == 3


def test_a_film_follows_the_agent_to_the_goal(tmp_path: Path) -> None:
    body = "name: b\ndefaults: {num_episodes: 2, max_steps: 10}\ntasks:\n  - {name: nav/b, map: maps/b.map}\n"
    task = _tasks(tmp_path, body, {"b": GOAL_EAST})["b"]
    rollout = play_episodes(task, load_policy("scripted://navigator"), record=1)
    episode = rollout.episodes[0]
    film = film_from_replay(episode.replay, "t")
    assert (film.width, film.height) == (6, 3)
    assert film.steps == episode.steps
    assert sorted(film.walls) == sorted(
        y * 6 + x for y, row in enumerate(GOAL_EAST.split("\n")) for x, ch in enumerate(row) if ch == "#"
    )
    (agent,) = film.agents
    (goal,) = film.objects
    assert (goal.kind, goal.x, goal.y, goal.start) == ("altar", 4, 1, 0)
    # Two moves east; the third step walks into the goal, which takes it (the agent stays put).
    assert [(x, y) for _, x, y in agent.path] == [(2, 1), (3, 1)]
    assert film.steps == 3
    # The agent scores exactly when the goal disappears, and its last reward is the episode's.
    assert agent.final_reward == episode.rewards[0] == 1.0
    assert agent.hits == [goal.end]
    assert rollout.episodes[1].replay is None  # only the first episode was recorded


def test_a_laser_tag_film_shows_teams_and_frozen_agents(tmp_path: Path) -> None:
    body = "name: lt\ndefaults: {game: laser_tag, num_episodes: 2, max_steps: 60, freeze_steps: 3}\n"
    body += "tasks:\n  - {name: lt/room, map: maps/room.map}\n"
    task = _tasks(tmp_path, body, {"room": LASER})["room"]
    rollout = play_episodes(task, load_policy("scripted://tagger"), record=2)
    for episode in rollout.episodes:
        film = film_from_replay(episode.replay)
        assert sorted(agent.team for agent in film.agents) == [0, 0, 1, 1]
        assert [agent.final_reward for agent in film.agents] == episode.rewards
        tagged = sum(agent.final_reward for agent in film.agents)
        frozen_spells = sum(sum(1 for _, flag in agent.frozen if flag) for agent in film.agents)
        assert tagged > 0 and frozen_spells == tagged  # every tag freezes one opponent
        assert sum(len(agent.hits) for agent in film.agents) == tagged


def test_film_encoding_round_trips(tmp_path: Path) -> None:
    task = _tasks(tmp_path, SUITE)["hard"]
    episode = play_episodes(task, load_policy("random://"), record=1).episodes[0]
    film = film_from_replay(episode.replay, "title")
    assert decode(film.encode()) == json.loads(json.dumps(film.to_json()))
    # The same replay read back from its file gives the same film (tuples in memory, lists on disk).
    from pytest_policyeval.engines.mettagrid.replay import encode_replay_file

    on_disk = read_replay_file(encode_replay_file(episode.replay))
    assert film_from_replay(on_disk, "title").to_json() == film.to_json()


def test_constant_fields_are_told_from_change_lists() -> None:
    assert changes([[0, 10]], list_valued=True) == [(0, [[0, 10]])]  # one inventory item, never changed
    assert changes([[0, [[0, 10]]], [4, [[0, 7]]]], list_valued=True) == [(0, [[0, 10]]), (4, [[0, 7]])]
    assert changes([2, 1], list_valued=True) == [(0, [2, 1])]  # a location that never changed
    assert changes([[0, [2, 1]], [3, [2, 2]]], list_valued=True) == [(0, [2, 1]), (3, [2, 2])]
    assert changes([[0, 0.0], [7, 1.0]]) == [(0, 0.0), (7, 1.0)]
    assert changes(True) == [(0, True)]


def test_unknown_replay_versions_and_bytes_are_refused() -> None:
    with pytest.raises(ReplayFormatError, match="version 3"):
        film_from_replay({"version": 3, "map_size": [1, 1], "max_steps": 1, "objects": []})
    with pytest.raises(ReplayFormatError, match="not a zlib-compressed JSON replay"):
        read_replay_file(b"not zlib")
    assert read_replay_file(zlib.compress(b'{"version": 4}')) == {"version": 4}


def test_a_mixed_episode_film_marks_the_agents_of_the_policy_under_test(tmp_path: Path) -> None:
    body = "name: lt\ndefaults: {game: laser_tag, num_episodes: 2, max_steps: 30, freeze_steps: 3}\ntasks:\n"
    body += '  - {name: lt/mixed, map: maps/room.map, policy_agents_pct: 0.5, npc_policy_uri: "random://"}\n'
    task = _tasks(tmp_path, body, {"room": LASER})["mixed"]
    rollout = play_episodes(task, load_policy("scripted://tagger"), npc=load_policy("random://"), record=2)
    for episode in rollout.episodes:
        film = film_from_replay(episode.replay, "", episode.policy_agents)
        marked = [agent.id for agent in film.agents if agent.under_test]
        assert marked == episode.policy_agents
        # Whole teams, and the starting team alternates between episodes.
        assert len({agent.team for agent in film.agents if agent.under_test}) == 1
    first, second = (
        {a.team for a in film_from_replay(e.replay, "", e.policy_agents).agents if a.under_test}
        for e in rollout.episodes
    )
    assert first != second
