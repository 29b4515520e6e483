"""Hostile suites and maps: one short message naming the cause and where, bounded time and memory."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest
from helpers import MINI_SUITE, write_suite

from pytest_policyeval.collection.suite import SuiteError, load_suite


def _refused(suite: Path, match: str) -> str:
    start = time.perf_counter()
    with pytest.raises(SuiteError, match=match) as error:
        load_suite(suite)
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert len(message) < 1500, message[:200]
    return message


def test_an_alias_bomb_is_quoted_as_a_short_excerpt(tmp_path: Path) -> None:
    lines = ["name: mini", "a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefghij":
        lines.append(f"{level}: &{level} [{', '.join(['*' + chr(ord(level) - 1)] * 10)}]")
    lines += ["description: *j", "tasks: []"]
    suite = tmp_path / "bomb.yaml"
    suite.write_text("\n".join(lines) + "\n")
    _refused(suite, "unknown key 'a'|key 'description'")


def test_a_map_outside_the_suites_folder_is_refused_without_reading_it(tmp_path: Path) -> None:
    secret = tmp_path / "secret.map"
    secret.write_text("TOP-SECRET-LINE\n")
    suite = write_suite(tmp_path, MINI_SUITE.replace("maps/easy.map", "../secret.map"))
    message = _refused(suite, r"key 'map': \.\./secret\.map is outside the suite's folder")
    assert "TOP-SECRET" not in message


def test_an_allowed_root_admits_maps_outside_the_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = write_suite(tmp_path / "project", MINI_SUITE.replace("maps/easy.map", "../../shared/easy.map"))
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared/easy.map").write_text((tmp_path / "project/suites/maps/easy.map").read_text())
    monkeypatch.setenv("POLICYEVAL_MAP_ROOTS", str(tmp_path / "shared"))
    from pytest_policyeval.engines.mettagrid.gridmap import resolve_map

    task = load_suite(suite).tasks[0]
    assert resolve_map(task.folder, task.env.map) == (tmp_path / "shared/easy.map").resolve()


def test_non_utf8_bytes_in_a_suite_or_a_map_are_a_clear_error(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, MINI_SUITE)
    (suite.parent / "maps/easy.map").write_bytes(b"#####\n#_@\xff#\n#####\n")
    _refused(suite, r"key 'map': maps/easy.map: not UTF-8 text \(byte 0xff at offset 9\)")
    suite.write_bytes(b"name: mini\ndescription: caf\xe9\n")
    _refused(suite, r"not UTF-8 text \(byte 0xe9 at offset 27\)")


def test_a_map_symlink_loop_is_a_clear_error(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, MINI_SUITE)
    loop = suite.parent / "maps/easy.map"
    loop.unlink()
    os.symlink(loop, loop)
    _refused(suite, r"key 'map'.*maps/easy.map")


def test_a_huge_map_is_refused_by_size_not_after_minutes(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, MINI_SUITE)
    row = "#" + "." * 9998 + "#\n"
    (suite.parent / "maps/easy.map").write_text("@" + row[1:] + row * 20)
    _refused(suite, r"maps/easy.map: over \d+ bytes; a map is at most 256 x 256")
    (suite.parent / "maps/easy.map").write_text(("#" * 300 + "\n") * 3)
    _refused(suite, r"the map is 300 x 3; at most 256 x 256")


def test_unknown_map_characters_are_named_briefly(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, MINI_SUITE)
    (suite.parent / "maps/easy.map").write_text("@" + "".join(chr(c) for c in range(0x100, 0x180)) + "\n")
    message = _refused(suite, r"line 1 has unknown characters \[.*\] and 120 more")
    assert chr(0x150) not in message


def test_the_service_names_the_variable_that_is_wrong(pytester: pytest.Pytester, monkeypatch) -> None:
    import json

    write_suite(pytester.path, MINI_SUITE)
    monkeypatch.setenv("POLICY_URI", "random://")
    monkeypatch.setenv("SIMULATION_SUITE", "mini")
    for variable, value, reason in (
        ("NUM_EPISODES", "abc", "must be a whole number"),
        ("DEVICE", "tpu", "unknown device 'tpu'"),
        ("METTA_PRESET", "may-2025", "unknown Metta preset"),
        ("GATE", "median", "must be one of ci, mean, sequential"),
    ):
        monkeypatch.setenv(variable, value)
        result = pytester.run(sys.executable, "-m", "pytest_policyeval.service")
        monkeypatch.delenv(variable)
        assert result.ret == 1
        error = json.loads(result.stdout.str())["error"]
        assert error.startswith(f"{variable}='{value}': {reason}"), error


def test_result_files_follow_the_umask(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path, MINI_SUITE)
    previous = os.umask(0o022)
    try:
        pytester.runpytest(str(suite), "--policy-uri=random://", "--eval-json=r.json", "-k", "easy")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((pytester.path / "r.json").stat().st_mode) == 0o644


def test_a_task_setting_at_the_top_level_says_where_it_goes(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, MINI_SUITE.replace("name: mini", "name: mini\nbaseline_uri: random://", 1))
    message = _refused(suite, "unknown key 'baseline_uri'")
    assert "a task setting: put it under 'defaults:' for every task, or in a task" in message
    # Not for a key that is nobody's.
    suite = write_suite(tmp_path, MINI_SUITE.replace("name: mini", "name: mini\nbaselines: x", 1))
    assert "a task setting" not in _refused(suite, "unknown key 'baselines'")
