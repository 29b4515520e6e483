"""Generated suites and maps thrown at the parser: only clear, short errors come back, quickly.

hypothesis builds suite documents from the schema's own keys with values of every kind (wrong
types, huge and non-finite numbers, odd strings, nesting) and maps from the legend's characters
and others. Each must load or raise one `SuiteError`, never another exception.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_policyeval.collection.suite import SuiteError, load_suite

KEYS = ["name", "map", "num_episodes", "max_steps", "max_time_s", "threshold", "higher_is_better", "gate",
        "obs_window", "num_tokens", "game", "goals_to_finish", "freeze_steps", "policy_agents_pct",
        "npc_policy_uri", "description", "bogus"]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        ["nav/easy", "maps/easy.map", "../x.map", "mean", "ci", "all", "laser_tag", "navigation"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
tasks = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)
suites = st.fixed_dictionaries(
    {"name": st.one_of(st.just("fuzz"), scalars)},
    optional={
        "seed": values,
        "defaults": st.dictionaries(st.sampled_from(KEYS), values, max_size=4),
        "tasks": st.lists(tasks, max_size=3),
        "include": st.lists(st.one_of(st.text(max_size=20), values), max_size=2),
        "bogus": values,
    },
)
maps = st.text(alphabet=st.sampled_from(list("#._@12\n X\u00e9")), max_size=200)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=suites, grid=maps)
def test_generated_suites_and_maps_load_or_give_one_clear_error(
    tmp_path: Path, document: dict, grid: str
) -> None:
    (tmp_path / "maps").mkdir(exist_ok=True)
    (tmp_path / "maps/easy.map").write_text(grid)
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    start = time.perf_counter()
    try:
        load_suite(path)
    except SuiteError as error:
        message = str(error)
        assert message.startswith(str(path)) and len(message) < 2500, message[:300]
    assert time.perf_counter() - start < 2


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_as_a_suite_give_one_clear_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "raw.yaml"
    path.write_bytes(raw)
    try:
        load_suite(path)
    except SuiteError as error:
        assert str(error).startswith(str(path))
