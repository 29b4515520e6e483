"""A result never claims more than happened: interrupted and partial runs say so, everywhere.

Real signals go to real processes: a pytest run and the service get SIGINT or SIGTERM after their
first task has a result, and the files they leave must say the run is incomplete and interrupted,
and never `passed: true`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from helpers import as_from_a_terminal, random_scheme, run_shards, write_suite

from pytest_policyeval.cli import main as policyeval_main

# slow:// plays randomly, 0.2 s a step, and leaves a file `started-N` when its N-th task starts,
# so a test can wait until a task has a result before it sends a signal.
SLOW_SCHEME = random_scheme(
    "slow",
    "time.sleep(0.2)",
    imports="import itertools, time\nSTARTED = itertools.count(1)",
    on_actor='open(f"started-{next(STARTED)}", "w").close()',
)
SUITE = """
name: slowsuite
seed: 1
defaults: {num_episodes: 1, max_steps: 6, gate: mean}
tasks:
  - {name: nav/first, map: maps/easy.map, max_steps: 1, threshold: 0}
  - {name: nav/second, map: maps/easy.map, threshold: 0}
  - {name: nav/third, map: maps/easy.map, threshold: 0}
  - {name: nav/fourth, map: maps/easy.map, threshold: 0}
"""


def _project(root: Path) -> None:
    write_suite(root, SUITE)
    (root / "conftest.py").write_text(SLOW_SCHEME)


def _interrupt_after_first_result(
    command: list[str], cwd: Path, sig: int, env: dict | None = None, times: int = 1
):
    """Run `command`, wait until a task has a result line on stderr/stdout, send `sig` (`times`
    times, 50 ms apart); return (exit code, stdout)."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        preexec_fn=as_from_a_terminal,
    )  # fmt: skip
    lines = []
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "nav/first" in line and ("PASSED" in line or "FAILED" in line):
            time.sleep(0.3)  # into the second task
            for sent in range(times):
                if sent:
                    time.sleep(0.05)
                if process.poll() is None:
                    process.send_signal(sig)
            break
        assert time.monotonic() < deadline, "".join(lines)
    rest, _ = process.communicate(timeout=120)
    return process.returncode, "".join(lines) + rest


def test_ctrl_c_leaves_files_that_say_interrupted_and_never_passed(tmp_path: Path) -> None:
    _project(tmp_path)
    command = [sys.executable, "-m", "pytest", "suites/mini.yaml", "-v", "-p", "no:cacheprovider"]
    command += ["--policy-uri=slow://", "--eval-json=r.json", "--eval-yaml=r.yaml", "--junitxml=j.xml"]
    code, output = _interrupt_after_first_result(command, tmp_path, signal.SIGINT)
    assert code == pytest.ExitCode.INTERRUPTED, output
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["interrupted"] is True and document["complete"] is False
    assert document["passed"] is False  # every gate that ran passed (threshold 0): still not a pass
    assert document["tasks_expected"] == 4 and 1 <= document["tasks_with_results"] < 4
    assert "suites/mini.yaml::nav/fourth[slow]" in document["missing_tasks"]
    tasks = document["policies"][0]["checkpoints"][0]["metrics"]["tasks"]
    assert tasks["nav/first"]["passed"] is True
    # The tasks it has all passed, yet the suite has no verdict: the run is not whole.
    assert document["policies"][0]["checkpoints"][0]["metrics"]["suite_verdict"]["outcome"] == "incomplete"
    assert "Suite verdict: INCOMPLETE" in output
    assert "gated with a result;" in output  # the tally covers only what finished
    # The tasks it did not reach were selected: they have no result, they were not deselected.
    verdict = document["policies"][0]["checkpoints"][0]["metrics"]["suite_verdict"]
    assert "unselected_tasks" not in verdict and verdict["tasks_without_result"] >= 1
    assert "without a result (not run, or not selected)" in output and "not selected (-k" not in output
    metta = yaml.safe_load((tmp_path / "r.yaml").read_text())
    assert (metta["complete"], metta["interrupted"], metta["passed"]) == (False, True, False)
    assert "run INTERRUPTED: " in output and "the results files say passed: false" in output
    (suite,) = ET.parse(tmp_path / "j.xml").getroot().iter("testsuite")  # CI's view says so too
    suite_properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert suite_properties["policyeval_run_complete"] == "false"
    assert suite_properties["policyeval_suite_verdict[slow]"] == "incomplete"


@pytest.mark.parametrize(
    "swallow",
    [
        "pass  # caught and dropped, as a retry loop does",
        'raise ValueError("serialization failed") from None  # as pydantic wraps it',
    ],
)
def test_a_ctrl_c_that_a_library_swallows_still_ends_the_run(tmp_path: Path, swallow: str) -> None:
    write_suite(tmp_path, SUITE)
    # In the second task's third step, the policy's own code gets Ctrl-C and catches it.
    before_act = f"""if step == 2 and not FIRED and os.path.exists("started-2"):
    FIRED.append(1)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    except BaseException:
        {swallow}
"""
    scheme = random_scheme(
        "swallow", before_act,
        imports="import itertools, os, signal, time\nSTARTED = itertools.count(1)\nFIRED = []",
        on_actor='open(f"started-{next(STARTED)}", "w").close()',
    )  # fmt: skip
    (tmp_path / "conftest.py").write_text(scheme)
    command = [sys.executable, "-m", "pytest", "suites/mini.yaml", "-v", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*command, "--policy-uri=swallow://", "--eval-json=r.json"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, preexec_fn=as_from_a_terminal,
    )  # fmt: skip
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.stdout[-3000:]
    assert "run INTERRUPTED: " in run.stdout and "nav/third[swallow] PASSED" not in run.stdout
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["interrupted"] is True and document["passed"] is False
    tasks = document["policies"][0]["checkpoints"][0]["metrics"]["tasks"]
    # Stopped at the next step: the second task had a result or none, never an error; no later one.
    assert "nav/first" in tasks and not {"nav/third", "nav/fourth"} & set(tasks)
    assert all(task["error"] is None for task in tasks.values())


def test_ctrl_c_pressed_twice_still_says_interrupted(tmp_path: Path) -> None:
    # The second arrives while pytest handles the first, which then ends with another status.
    _project(tmp_path)
    command = [sys.executable, "-m", "pytest", "suites/mini.yaml", "-v", "-p", "no:cacheprovider"]
    command += ["--policy-uri=slow://", "--eval-json=r.json"]
    _, output = _interrupt_after_first_result(command, tmp_path, signal.SIGINT, times=2)
    document = json.loads((tmp_path / "r.json").read_text())
    assert (document["interrupted"], document["complete"], document["passed"]) == (True, False, False), output


def test_a_run_killed_outright_leaves_no_earlier_runs_pass(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, a grace period run out) leaves no time to write anything: the files
    said from the start that a run was under way and had passed nothing."""
    _project(tmp_path)
    for name in ("r.json", "r.yaml"):
        (tmp_path / name).write_text('{"passed": true}')  # an earlier run's
    command = [sys.executable, "-m", "pytest", "suites/mini.yaml", "-v", "-p", "no:cacheprovider"]
    command += ["--policy-uri=slow://", "--eval-json=r.json", "--eval-yaml=r.yaml"]
    code, output = _interrupt_after_first_result(command, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL, output
    document = json.loads((tmp_path / "r.json").read_text())
    assert (document["in_progress"], document["passed"], document["complete"]) == (True, False, False)
    assert document["tasks_expected"] == 4
    metta = yaml.safe_load((tmp_path / "r.yaml").read_text())
    assert (metta["passed"], metta["complete"]) == (False, False)


def test_sigterm_to_a_pytest_run_writes_what_ran_marked_interrupted(tmp_path: Path) -> None:
    """A CI job's timeout sends SIGTERM: the files say interrupted, as after Ctrl-C, instead of
    being missing (or stale from an earlier run)."""
    _project(tmp_path)
    (tmp_path / "r.json").write_text('{"passed": true}')  # an earlier run's, which must not stand
    command = [sys.executable, "-m", "pytest", "suites/mini.yaml", "-v", "-p", "no:cacheprovider"]
    command += ["--policy-uri=slow://", "--eval-json=r.json"]
    code, output = _interrupt_after_first_result(command, tmp_path, signal.SIGTERM)
    assert code == pytest.ExitCode.INTERRUPTED, output
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["interrupted"] is True and document["passed"] is False
    assert 1 <= document["tasks_with_results"] < 4


def test_the_service_on_sigterm_prints_its_marked_partial_results_and_fails(tmp_path: Path) -> None:
    _project(tmp_path)
    env = {**os.environ, "POLICY_URI": "slow://", "SIMULATION_SUITE": "mini", "PYTHONPATH": str(tmp_path)}
    env.pop("OUTPUT_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_policyeval.service"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "started-2").exists():  # the first task has its result
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    document = json.loads(out)
    assert document["interrupted"] is True and document["passed"] is False
    assert document["complete"] is False and 1 <= document["tasks_with_results"] < 4


def test_merge_refuses_a_partial_shard_unless_allowed_and_then_says_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path, SUITE.replace("slowsuite", "mini"))
    whole, partial = run_shards(suite, tmp_path)
    document = json.loads(partial.read_text())
    assert document["complete"] is True and document["interrupted"] is False
    # What an interrupted shard writes (the Ctrl-C test above makes one for real).
    document.update(interrupted=True, complete=False)
    partial.write_text(json.dumps(document))
    assert policyeval_main(["merge", str(whole), str(partial), "--eval-json", str(tmp_path / "m.json")]) == 2
    assert f"partial shards: {partial} (interrupted)" in capsys.readouterr().err
    code = policyeval_main(
        ["merge", str(whole), str(partial), "--allow-partial", "--eval-json", str(tmp_path / "m.json")]
    )
    assert code == 1
    merged = json.loads((tmp_path / "m.json").read_text())
    assert (merged["complete"], merged["interrupted"], merged["passed"]) == (False, True, False)


def test_a_whole_run_says_complete_and_a_stopped_one_does_not(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, SUITE.replace("slowsuite", "mini"))
    result = pytester.runpytest(
        "suites/mini.yaml", "--policy-uri=random://", "--eval-json=r.json", "-k", "first"
    )
    document = json.loads((pytester.path / "r.json").read_text())
    assert (document["complete"], document["interrupted"], document["tasks_expected"]) == (True, False, 1)
    assert document["passed"] is (result.ret == 0)
    pytester.runpytest(
        "suites/mini.yaml",
        "--policy-uri=random://",
        "--eval-json=r.json",
        "-x",
        "--eval-seed=3",
        "--num-episodes=1",
    )
    document = json.loads((pytester.path / "r.json").read_text())
    if document["tasks_with_results"] < 4:  # -x stopped at a failing task: the rest never ran
        assert document["complete"] is False and document["passed"] is False


def test_ctrl_c_while_publishing_rewrites_the_files_as_interrupted_without_a_traceback(
    pytester: pytest.Pytester,
) -> None:
    """Every task finished; the Ctrl-C lands in a publisher (a conftest's, standing in for a slow
    upload). The files written a moment before said passed; they are written again, interrupted."""
    write_suite(pytester.path, SUITE.replace("slowsuite", "mini"))
    pytester.makeconftest(
        """
        def pytest_policyeval_publish(document, results, publishing):
            raise KeyboardInterrupt
        """
    )
    # In a process of its own: without the handling, the interrupt would stop this test run too.
    result = pytester.runpytest_subprocess(
        "suites/mini.yaml",
        "--policy-uri=random://",
        "--eval-json=r.json",
        "--eval-yaml=r.yaml",
        "-k",
        "first",
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    document = json.loads((pytester.path / "r.json").read_text())
    assert (document["interrupted"], document["passed"], document["tasks_with_results"]) == (True, False, 1)
    assert yaml.safe_load((pytester.path / "r.yaml").read_text())["passed"] is False
    result.stdout.fnmatch_lines(["*interrupted while the results were written or published*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_merge_refuses_a_shard_whose_gate_does_not_follow_from_its_scores(tmp_path: Path) -> None:
    import json

    from pytest_policyeval.merge import MergeError, merge_shards

    body = """
    name: gated
    seed: 3
    defaults: {num_episodes: 4, max_steps: 6}
    tasks:
      - {name: nav/coin, map: maps/coin.map, threshold: 0.6}
      - {name: nav/coin2, map: maps/coin.map, threshold: 0.3}
    """
    suite = write_suite(tmp_path, body, maps={"coin": "#######\n#_.@..#\n#######"})
    shards = run_shards(suite, tmp_path, "--no-eval-cache")
    assert merge_shards(shards).results  # the shards as written merge
    edits = {
        "cut": lambda d: d.update(episode_scores=d["episode_scores"][:2]),
        "no design": lambda d: d.update(design={}, passed=True, outcome="pass"),
        "too few to decide": lambda d: d.update(
            episode_scores=d["episode_scores"][:1], num_episodes=1, passed=True, outcome="pass"
        ),
    }
    original = shards[0].read_text()
    for edit in edits.values():
        document = json.loads(original)
        for policy in document["policies"]:
            for detail in policy["checkpoints"][0]["metrics"]["tasks"].values():
                edit(detail)
        shards[0].write_text(json.dumps(document))
        with pytest.raises(MergeError, match="the gate cannot be checked"):
            merge_shards(shards)
