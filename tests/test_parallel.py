"""Parallel and split runs: a dying worker loses only its own task; shards merge into one result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import random_scheme, run_policyeval, task_details, write_suite

SUITE = """
name: par
seed: 11
defaults: {num_episodes: 3, max_steps: 20, gate: mean}
tasks:
  - {name: nav/easy, map: maps/easy.map, threshold: 0.5}
  - {name: nav/hard, map: maps/hard.map, threshold: 0.5}
  - {name: nav/easy2, map: maps/easy.map, threshold: 0.5}
  - {name: other/easy, map: maps/easy.map}
"""
# Kills the worker process (no cleanup, no report) when it starts the task named in KILL_TASK.
KILLER = """
import os, signal
def pytest_runtest_call(item):
    if os.environ.get("KILL_TASK") and os.environ["KILL_TASK"] in item.nodeid:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_worker_loses_only_its_task(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_suite(pytester.path, SUITE)
    pytester.makeconftest(KILLER)
    serial = pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", "random://", "--eval-json", "s.json"
    )
    serial.assert_outcomes(passed=3, failed=1)
    monkeypatch.setenv("KILL_TASK", "nav/easy2")
    killed = pytester.runpytest_subprocess(
        "-p",
        "no:importnb",
        "-n",
        "2",
        "--policy-uri",
        "random://",
        "--eval-json",
        "k.json",
        "--eval-yaml",
        "k.yaml",
    )
    killed.assert_outcomes(passed=2, failed=2)
    killed.stdout.fnmatch_lines(["*crashed while running*nav/easy2*", "*nav/easy2*ERROR*"])
    reference = {task: d for (task, _), d in task_details(pytester.path / "s.json").items()}
    survivors = {task: d for (task, _), d in task_details(pytester.path / "k.json").items()}
    assert sorted(survivors) == sorted(reference)
    for task in ("nav/easy", "nav/hard", "other/easy"):
        keys = ("episode_rewards", "score", "passed")
        assert {k: survivors[task][k] for k in keys} == {k: reference[task][k] for k in keys}
    lost = survivors["nav/easy2"]
    assert lost["error"].startswith("the test process died while running this task")
    assert lost["threshold"] == 0.5 and lost["num_episodes"] == 3 and lost["episode_rewards"] == []
    assert "nav" in (pytester.path / "k.yaml").read_text()


def _outcomes(path: Path) -> dict:
    """What must not depend on how the run was split: per-episode rewards and every gate."""
    keys = (
        "seeds",
        "episode_rewards",
        "episode_steps",
        "score",
        "ci_low",
        "ci_high",
        "passed",
        "error",
        "order",
    )
    return {key: {k: detail[k] for k in keys} for key, detail in task_details(path).items()}


def test_serial_xdist_and_two_shards_merged_agree(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE)
    base = ("-p", "no:importnb", "--policy-uri", "random://", "--policy-uri", "scripted://navigator")
    pytester.runpytest_subprocess(*base, "--eval-json", "serial.json", "--eval-yaml", "serial.yaml")
    pytester.runpytest_subprocess(*base, "-n", "2", "--eval-json", "xdist.json")
    shard_tasks = []
    splits = []
    for shard, workers in ((0, ()), (1, ("-n", "2"))):  # a shard may use xdist on its machine
        result = pytester.runpytest_subprocess(
            *base,
            *workers,
            "--shard-id",
            str(shard),
            "--num-shards",
            "2",
            "--eval-json",
            f"shard{shard}.json",
        )
        shard_tasks.append({task for task, _ in task_details(pytester.path / f"shard{shard}.json")})
        recorded = json.loads((pytester.path / f"shard{shard}.json").read_text())["shard"]
        assert (recorded["id"], recorded["count"], recorded["split"]["tasks"]) == (shard, 2, 8)
        splits.append(recorded["split"])
        if not workers:
            result.stdout.fnmatch_lines(["*deselected*"])
    assert splits[0] == splits[1]  # cut from the same selection, serially or under xdist
    # Each task ran on exactly one shard, with both policies.
    assert shard_tasks[0] and shard_tasks[1] and not shard_tasks[0] & shard_tasks[1]
    merged = run_policyeval(
        pytester,
        "merge",
        "shard1.json",
        "shard0.json",
        "--eval-json",
        "merged.json",
        "--eval-yaml",
        "merged.yaml",
    )
    reference = _outcomes(pytester.path / "serial.json")
    assert _outcomes(pytester.path / "xdist.json") == reference
    assert _outcomes(pytester.path / "merged.json") == reference
    assert (pytester.path / "merged.yaml").read_text() == (pytester.path / "serial.yaml").read_text()
    # random:// fails nav/hard's gate: the merge exits as the single run did.
    assert merged.ret == 1
    merged.stdout.fnmatch_lines(["*nav/hard*FAIL*", "7 passed, 1 failed (merged from 2 shards)"])


def test_merge_refuses_an_incomplete_or_overlapping_set(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE)
    base = ("-p", "no:importnb", "--policy-uri", "random://", "--num-shards", "3")
    for shard in (0, 1):
        pytester.runpytest_subprocess(*base, "--shard-id", str(shard), "--eval-json", f"s{shard}.json")
    missing = run_policyeval(pytester, "merge", "s0.json", "s1.json", "--eval-json", "m.json")
    assert missing.ret == 2
    missing.stderr.fnmatch_lines(["*shards ?2? of 3 are missing; their tasks would be lost*"])
    assert not (pytester.path / "m.json").exists()
    twice = run_policyeval(pytester, "merge", "s0.json", "s0.json")
    assert twice.ret == 2
    twice.stderr.fnmatch_lines(["*shard 0 is given twice*"])
    pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", "random://", "--eval-json", "plain.json"
    )
    plain = run_policyeval(pytester, "merge", "plain.json")
    assert plain.ret == 2
    plain.stderr.fnmatch_lines(["*plain.json: not a shard's results*"])
    # Shard 2 run with another seed: the merged file could name only one.
    pytester.runpytest_subprocess(*base, "--shard-id", "2", "--eval-seed", "7", "--eval-json", "s2.json")
    mixed = run_policyeval(pytester, "merge", "s0.json", "s1.json", "s2.json", "--eval-json", "m.json")
    assert mixed.ret == 2 and not (pytester.path / "m.json").exists()
    mixed.stderr.fnmatch_lines(
        ["*the shards ran with different --eval-seed values ('seed_override': 7, null)*"]
    )
    # Shard 2 cut from another selection: the three are shares of no one run.
    pytester.runpytest_subprocess(*base, "--shard-id", "2", "-k", "easy", "--eval-json", "s2.json")
    other = run_policyeval(pytester, "merge", "s0.json", "s1.json", "s2.json", "--eval-json", "m.json")
    assert other.ret == 2 and not (pytester.path / "m.json").exists()
    other.stderr.fnmatch_lines(["*the shards were cut from different task selections*"])
    # ...or gated against a baseline where the others were not.
    pytester.runpytest_subprocess(
        *base, "--shard-id", "2", "--baseline-uri", "scripted://navigator", "--eval-json", "s2.json"
    )
    paired = run_policyeval(pytester, "merge", "s0.json", "s1.json", "s2.json", "--eval-json", "m.json")
    assert paired.ret == 2
    paired.stderr.fnmatch_lines(["*the shards ran with different --baseline-uri values*"])


def test_shards_split_what_k_leaves_and_an_empty_shard_is_a_complete_share(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE)
    base = ("-p", "no:importnb", "--policy-uri", "random://", "--num-shards", "4")
    # Two tasks are left after -k: they go to two shards (split after deselection), two get none.
    runs = [
        pytester.runpytest_subprocess(
            *base, "-k", "nav/easy", "--shard-id", str(i), "--eval-json", f"k{i}.json"
        )
        for i in range(4)
    ]
    assert [run.ret for run in runs] == [0, 0, 0, 0]
    sizes = [json.loads((pytester.path / f"k{i}.json").read_text())["tasks_expected"] for i in range(4)]
    assert sorted(sizes) == [0, 0, 1, 1]
    empty = runs[sizes.index(0)]
    empty.stdout.fnmatch_lines([f"shard {sizes.index(0)} of 4 has no task", "results written to *"])
    merged = run_policyeval(pytester, "merge", *(f"k{i}.json" for i in range(4)), "--eval-json", "m.json")
    assert merged.ret == 0, merged.stderr.str()
    assert {task for task, _ in task_details(pytester.path / "m.json")} == {"nav/easy", "nav/easy2"}
    # A -k that leaves nothing: every shard is empty, and the merge says so.
    for i in range(2):
        none = pytester.runpytest_subprocess(
            *base[:-1], "2", "-k", "no_such_task", "--shard-id", str(i), "--eval-json", f"n{i}.json"
        )
        assert none.ret == 0
    nothing = run_policyeval(pytester, "merge", "n0.json", "n1.json")
    assert nothing.ret == 2
    nothing.stderr.fnmatch_lines(["*no shard of the 2 has any task*"])


def test_merge_of_a_shard_naming_an_unknown_gate_is_one_error(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE)
    base = ("-p", "no:importnb", "--policy-uri", "random://", "--num-shards", "1", "--shard-id", "0")
    pytester.runpytest_subprocess(*base, "--eval-json", "s0.json")
    document = json.loads((pytester.path / "s0.json").read_text())
    for policy in document["policies"]:
        for checkpoint in policy["checkpoints"]:
            for detail in checkpoint["metrics"]["tasks"].values():
                if detail.get("design"):
                    detail["design"]["kind"] = "median"
    (pytester.path / "s0.json").write_text(json.dumps(document))
    merged = run_policyeval(pytester, "merge", "s0.json")
    assert merged.ret == 2
    merged.stderr.fnmatch_lines(
        ["*s0.json: nav/*: the gate cannot be checked (RegistryError: *median*importable*"]
    )
    assert "Traceback" not in merged.stderr.str()


def test_shard_options_are_checked(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE)
    alone = pytester.runpytest("--policy-uri", "random://", "--shard-id", "0")
    assert alone.ret == pytest.ExitCode.USAGE_ERROR
    alone.stderr.fnmatch_lines(["*--shard-id and --num-shards go together*"])
    beyond = pytester.runpytest("--policy-uri", "random://", "--shard-id", "2", "--num-shards", "2")
    assert beyond.ret == pytest.ExitCode.USAGE_ERROR
    beyond.stderr.fnmatch_lines(["*--shard-id 2 is not below --num-shards 2*"])


def test_shards_balance_estimated_cost() -> None:
    from pytest_policyeval.collection.sharding import Shard, assign, select

    costs = {"a": 100.0, "b": 60.0, "c": 50.0, "d": 10.0}
    placement = assign(costs, 2)
    assert placement == {"a": 0, "b": 1, "c": 1, "d": 0}  # loads 110 and 110
    assert assign(costs, 2) == assign(dict(reversed(costs.items())), 2)  # order-independent
    assert select(["a", None, "b"], costs, Shard(0, 2)) == [True, True, False]
    with pytest.raises(ValueError, match="need 0 <= shard id"):
        Shard(3, 2)


def test_xdist_workers_split_the_cores_between_them(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from helpers import make_checkpoint

    write_suite(pytester.path, SUITE)
    make_checkpoint(pytester.path / "p.pt")
    pytester.makeconftest(
        """
        import os, sys
        def pytest_sessionfinish(session):
            worker = getattr(session.config, "workerinput", {}).get("workerid")
            if worker and "torch" in sys.modules:
                with open(f"threads-{worker}.txt", "w") as out:
                    out.write(str(sys.modules["torch"].get_num_threads()))
                with open(f"cores-{worker}.txt", "w") as out:
                    out.write(" ".join(map(str, sorted(os.sched_getaffinity(0)))))
        """
    )
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # an explicit setting is left alone
    pytester.runpytest_subprocess("-p", "no:importnb", "suites/mini.yaml", "--policy-uri", "p.pt", "-n", "2")
    threads = sorted(int(path.read_text()) for path in pytester.path.glob("threads-gw*.txt"))
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert threads == [share] * 2
    cores = [set(path.read_text().split()) for path in sorted(pytester.path.glob("cores-gw*.txt"))]
    assert len(cores) == 2 and all(len(c) == share for c in cores) and not cores[0] & cores[1]


# stuck:// acts like random:// but, in a batch of exactly three agents, blocks inside C while
# holding the GIL: only a watchdog outside Python can end that.
STUCK_SCHEME = random_scheme(
    "stuck", "if len(slots) == 3:\n    ctypes.PyDLL(None).sleep(3600)", imports="import ctypes"
)
HANGING_SUITE = """
name: hang
seed: 4
defaults: {num_episodes: 2, max_steps: 20, gate: mean}
tasks:
  - {name: nav/easy, map: maps/easy.map, threshold: 0.5}
  - {name: nav/stuck, map: maps/easy.map, num_episodes: 3, max_time_s: 1}
  - {name: nav/hard, map: maps/hard.map}
  - {name: nav/easy2, map: maps/easy.map}
"""


def test_a_task_hung_in_native_code_is_stopped_and_reported(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, HANGING_SUITE)
    pytester.makeconftest(STUCK_SCHEME)
    args = ("-p", "no:importnb", "--policy-uri", "stuck://", "--eval-json", "r.json")
    result = pytester.runpytest_subprocess(*args, "-n", "2", timeout=120)
    result.assert_outcomes(passed=3, failed=1)
    details = {task: detail for (task, _), detail in task_details(pytester.path / "r.json").items()}
    stuck = details.pop("nav/stuck")
    assert stuck["error"].startswith("the task hung: still running 3.25s after it started (max_time_s=1)")
    assert "in act" in stuck["traceback"] and "conftest.py" in stuck["traceback"]
    result.stdout.fnmatch_lines(
        ["*nav/stuck*ERROR*", "*errors:", "*nav/stuck: the task hung: still running*"]
    )
    assert all(detail["error"] is None and len(detail["episode_rewards"]) == 2 for detail in details.values())


# Kills its own worker with SIGKILL in the middle of a rollout, with the hang watch armed.
SELF_KILLING_SCHEME = random_scheme(
    "dying",
    "if step == 3 and env.max_steps == 21:\n    os.kill(os.getpid(), signal.SIGKILL)",
    imports="import os, signal",
)


def test_a_worker_killed_mid_rollout_is_reported_as_dead_not_hung(pytester: pytest.Pytester) -> None:
    write_suite(
        pytester.path,
        SUITE.replace(
            "name: nav/easy2, map: maps/easy.map", "name: nav/easy2, map: maps/easy.map, max_steps: 21"
        ),
    )
    pytester.makeconftest(SELF_KILLING_SCHEME)
    args = ("-p", "no:importnb", "-n", "2", "--policy-uri", "dying://", "--eval-json", "r.json")
    result = pytester.runpytest_subprocess(*args, timeout=120)
    result.stdout.fnmatch_lines(["*crashed while running*nav/easy2*"])
    lost = {task: d for (task, _), d in task_details(pytester.path / "r.json").items()}["nav/easy2"]
    assert lost["error"].startswith("the test process died while running this task"), lost["error"]
    assert "hung" not in lost["error"]
