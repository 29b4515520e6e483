"""Invalid suites: one error naming the file, the task and the key; nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_suite

from pytest_policyeval.collection.suite import SuiteError, load_suite

GOOD_TASK = "  - {name: nav/easy, map: maps/easy.map}\n"

CASES = {
    "unknown_task_key": (
        "name: s\ntasks:\n  - {name: nav/easy, map: maps/easy.map, max_step: 5}\n",
        ["task 'nav/easy' (tasks[0])", "unknown key 'max_step'"],
    ),
    "unknown_suite_key": ("name: s\ntask: []\ntasks:\n" + GOOD_TASK, ["suite", "unknown key 'task'"]),
    "unknown_default_key": (
        "name: s\ndefaults: {episodes: 3}\ntasks:\n" + GOOD_TASK,
        ["defaults", "unknown key 'episodes'"],
    ),
    "wrong_type": (
        "name: s\ntasks:\n  - {name: nav/easy, map: maps/easy.map, max_steps: lots}\n",
        ["task 'nav/easy' (tasks[0])", "key 'max_steps'", "'lots'"],
    ),
    "negative_episodes": (
        "name: s\ntasks:\n  - {name: nav/easy, map: maps/easy.map, num_episodes: -3}\n",
        ["task 'nav/easy' (tasks[0])", "key 'num_episodes'", "greater than or equal to 1"],
    ),
    "negative_default_episodes": (
        "name: s\ndefaults: {num_episodes: -1}\ntasks:\n" + GOOD_TASK,
        ["defaults", "key 'num_episodes'"],
    ),
    "missing_map_file": (
        "name: s\ntasks:\n  - {name: nav/gone, map: maps/gone.map}\n",
        ["task 'nav/gone' (tasks[0])", "key 'map'", "map file not found: maps/gone.map"],
    ),
    "missing_map_key": (
        "name: s\ntasks:\n  - {name: nav/easy}\n",
        ["task 'nav/easy' (tasks[0])", "missing required key 'map'"],
    ),
    "bad_task_name": (
        "name: s\ntasks:\n  - {name: easy, map: maps/easy.map}\n",
        ["tasks[0]", "key 'name'", "category/task"],
    ),
    "duplicate_task": ("name: s\ntasks:\n" + GOOD_TASK + GOOD_TASK, ["tasks[1]", "duplicate task name"]),
    "even_window": (
        "name: s\ntasks:\n  - {name: nav/easy, map: maps/easy.map, obs_window: 10}\n",
        ["key 'obs_window'", "must be odd"],
    ),
    "too_many_goals": (
        "name: s\ntasks:\n  - {name: nav/easy, map: maps/easy.map, goals_to_finish: 5}\n",
        ["key 'goals_to_finish'", "the map has 2 goal(s)"],
    ),
    "bad_map_char": (
        "name: s\ntasks:\n  - {name: nav/bad, map: maps/bad.map}\n",
        ["task 'nav/bad' (tasks[0])", "key 'map'", "unknown characters ['X']"],
    ),
    "no_tasks": ("name: s\ntasks: []\n", ["suite", "key 'tasks'"]),
    "steps_beyond_32_bits": (
        "name: s\ntasks:\n  - {name: nav/easy, map: maps/easy.map, max_steps: 4294967296}\n",
        ["task 'nav/easy' (tasks[0])", "key 'max_steps'", "32-bit"],
    ),
    "tasks_said_twice": (  # YAML would keep the second list and drop the first without a word
        "name: s\ntasks:\n" + GOOD_TASK + "tasks:\n" + GOOD_TASK,
        ["not valid YAML", "found the key 'tasks' twice"],
    ),
    "not_yaml": ("name: s\ntasks: [\n", ["not valid YAML"]),
}
MAPS = {"easy": "#####\n#_@_#\n#####", "bad": "#####\n#X@_#\n#####"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_suite_names_file_task_and_key(tmp_path: Path, case: str) -> None:
    body, fragments = CASES[case]
    suite = write_suite(tmp_path, body, maps=MAPS)
    with pytest.raises(SuiteError) as error:
        load_suite(suite)
    message = str(error.value)
    assert message.startswith(str(suite))
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("case", ["unknown_task_key", "negative_episodes", "missing_map_file"])
def test_invalid_suite_is_a_collection_error_without_traceback(pytester: pytest.Pytester, case: str) -> None:
    body, fragments = CASES[case]
    write_suite(pytester.path, body, maps=MAPS)
    result = pytester.runpytest("--policy-uri", "random://")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting suites/mini.yaml*", f"*invalid suite:*{fragments[-1]}*"])
    assert "Traceback" not in result.stdout.str()


def test_defaults_are_inherited_and_tasks_override_them(tmp_path: Path) -> None:
    body = """
    name: s
    seed: 9
    defaults: {num_episodes: 7, max_steps: 33, threshold: 0.5}
    tasks:
      - {name: nav/a, map: maps/easy.map}
      - {name: nav/b, map: maps/easy.map, num_episodes: 2, higher_is_better: false}
    """
    suite = load_suite(write_suite(tmp_path, body, maps=MAPS))
    a, b = suite.tasks
    assert (a.settings.num_episodes, a.settings.max_steps, a.settings.threshold, a.seed) == (7, 33, 0.5, 9)
    assert (b.settings.num_episodes, b.settings.max_steps, b.settings.higher_is_better) == (2, 33, False)
    assert (a.category, a.short_name) == ("nav", "a")


def test_numbers_read_as_yaml_1_2_reads_them_and_quoted_ones_stay_strings(tmp_path: Path) -> None:
    body = """
    name: s
    defaults: {alpha: 1e-2, beta: 5E-3, threshold: 0.5, max_time_s: 1.2e2}
    tasks:
      - {name: nav/a, map: maps/easy.map}
    """
    (task,) = load_suite(write_suite(tmp_path, body, maps=MAPS)).tasks
    settings = task.settings
    assert (settings.alpha, settings.beta, settings.max_time_s) == (0.01, 0.005, 120.0)
    quoted = body.replace("alpha: 1e-2", 'alpha: "1e-2"')
    with pytest.raises(SuiteError, match="key 'alpha'"):
        load_suite(write_suite(tmp_path / "q", quoted, maps=MAPS))
    with pytest.raises(SuiteError, match="key 'num_episodes'"):  # a count written as a float
        load_suite(write_suite(tmp_path / "f", body.replace("alpha: 1e-2", "num_episodes: 1e2"), maps=MAPS))


def test_a_default_cap_below_a_large_first_round_is_no_error(tmp_path: Path) -> None:
    # The default max_episodes (1000) is not the suite's word; a declared smaller one is.
    body = "name: s\ndefaults: {num_episodes: 1500, gate: mean}\ntasks:\n" + GOOD_TASK
    (task,) = load_suite(write_suite(tmp_path, body, maps=MAPS)).tasks
    assert task.settings.num_episodes == 1500
    with pytest.raises(SuiteError, match="key 'max_episodes'"):
        load_suite(write_suite(tmp_path / "d", body.replace("gate: mean", "max_episodes: 1000"), maps=MAPS))


def test_shipped_navigation_suite_is_valid_and_large_enough() -> None:
    suite = load_suite(Path(__file__).resolve().parents[1] / "suites" / "navigation.yaml")
    assert len(suite.tasks) >= 12
    assert {task.category for task in suite.tasks} == {"navigation"}
    assert len({task.settings.max_steps for task in suite.tasks}) > 5
    assert all(task.settings.threshold is not None for task in suite.tasks)
