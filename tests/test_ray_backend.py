"""The Ray backend on a real cluster on 127.0.0.1: a head and two one-CPU worker nodes.

Every run is a real `pytest` process, as a user runs it, against the cluster's address.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import as_from_a_terminal, task_details
from ray_cluster import RAY_ENV, local_cluster

pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
NAV = str(REPO / "examples" / "policies" / "navigation.pt")
MAPS = ("emptyspace_in_sight", "walls_sparse", "corridors", "maze_small", "u_turn")
SUMMARY = re.compile(
    r"ray: (\d+) task\(s\) on (\d+) node\(s\) in (\d+) worker process\(es\); (\d+) policy/map file"
)


def pytest_run(cwd: Path, *args: str, wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q", *args]
    env = {**os.environ, **RAY_ENV}
    if not wait:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=as_from_a_terminal,  # the test sends it Ctrl-C
        )  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def wait_for_tasks(run: subprocess.Popen, data_dir: Path, count: int) -> None:
    """Until `count` tasks' episodes are kept in the run's data dir (or the run ends)."""
    rounds = data_dir / "episodes"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        if len([p for p in rounds.glob("*/*.json") if p.parent.name != "hints"]) >= count:
            return
        time.sleep(0.05)


def worker_processes(node) -> dict[int, bytes]:
    """The node's Ray worker processes (its raylet's children), by pid, with their titles: Ray
    titles a worker running our job `ray::run_job`."""
    raylet = node.all_processes["raylet"][0].process.pid
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            title = (stat.parent / "cmdline").read_bytes().split(b"\0")[0]
        except (OSError, IndexError, ValueError):
            continue
        if parent == raylet:
            found[int(stat.parent.name)] = title
    return found


def running_a_task(node) -> bool:
    return any(title.startswith(b"ray::run_job") for title in worker_processes(node).values())


def crash(cluster, node) -> None:
    """The node dies as a machine does: its workers and its raylet, killed at once (a worker that
    outlived its raylet would still hand its task's result to the caller)."""
    for pid in worker_processes(node):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    cluster.remove_node(node, allow_graceful=False)


def remove_a_node_mid_run(tmp_path: Path, common: tuple) -> tuple[subprocess.Popen, str]:
    """Run on a fresh head and two nodes; once two tasks are done, crash a node while it runs one."""
    with local_cluster(workers=2, cpus=1) as (cluster, nodes):
        run = pytest_run(
            tmp_path, *common, "--eval-ray", cluster.address, "--eval-json", "ray.json", wait=False
        )
        wait_for_tasks(run, tmp_path / "data", 2)
        deadline = time.monotonic() + 60
        while not running_a_task(nodes[0]) and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.02)
        assert run.poll() is None and running_a_task(nodes[0]), "no task to lose: the node was idle"
        crash(cluster, nodes[0])
        output, _ = run.communicate(timeout=600)
    return run, output


def episodes(path: Path) -> dict[tuple[str, str], tuple]:
    """Per (task, policy): seeds, per-agent rewards, steps and whether each episode was kept."""
    return {
        key: (d["seeds"], d["episode_rewards"], d["episode_steps"], d["episode_cached"], d.get("error"))
        for key, d in task_details(path).items()
    }


def played(details: dict) -> dict:
    return {key: value[:3] for key, value in details.items()}


@pytest.fixture(scope="module")
def node_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each node of the module's cluster keeps its shipped files (node-0, node-1)."""
    return tmp_path_factory.mktemp("node-files")


@pytest.fixture(scope="module")
def cluster(node_files: Path):
    with local_cluster(workers=2, cpus=1, files=node_files) as (cluster, _):
        yield cluster


def test_a_run_on_ray_plays_what_a_serial_run_plays_and_ships_each_checkpoint_once_per_node(
    cluster, node_files: Path, tmp_path: Path
) -> None:
    before = {p for p in node_files.rglob("*") if p.is_file()}
    common = ("--eval-suite", "navigation", "--policy-uri", "scripted://navigator", "--policy-uri", NAV)
    common += ("--num-episodes", "6", "-k", "in_sight or walls_sparse or corridors or maze_small or u_turn")
    serial = pytest_run(
        tmp_path, *common, "--no-eval-cache", "--eval-json", "serial.json", "--save-replays=serial-replays"
    )
    assert serial.returncode in (0, 1), serial.stdout[-3000:]
    on_ray = pytest_run(
        tmp_path, *common, "--eval-ray", cluster.address, "--data-dir", "data", "--eval-json", "ray.json",
        "--save-replays=ray-replays",
    )  # fmt: skip
    assert on_ray.returncode == serial.returncode, on_ray.stdout[-3000:] + on_ray.stderr[-3000:]
    reference, remote = episodes(tmp_path / "serial.json"), episodes(tmp_path / "ray.json")
    assert len(reference) == 10 and played(remote) == played(reference)
    assert not any(error for *_, error in remote.values())
    tasks, nodes, processes, copies = map(int, SUMMARY.search(on_ray.stdout).groups())
    assert (tasks, nodes) == (10, 2) and nodes <= processes < tasks
    # One checkpoint and five maps reached each node at most once: every copy written is a file
    # of its own in that node's folder, however many of the ten tasks ran there.
    written = [p for p in node_files.rglob("files/*/*") if p.is_file() and p not in before]
    assert 0 < copies == len(written) <= 2 * 6 < tasks * 2
    assert {p.name for p in written} <= {"navigation.pt"} | {f"{name}.map" for name in MAPS}
    # Replays are written here, where the run was started, as a serial run writes them.
    replays = {
        name: {p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*.z")}
        for name in ("serial-replays", "ray-replays")
    }
    assert len(replays["serial-replays"]) == 10 and replays["ray-replays"] == replays["serial-replays"]
    urls = [u for d in task_details(tmp_path / "ray.json").values() for u in d["replay_urls"]]
    assert len(urls) == 10 and all(Path(u).is_file() and "ray-replays" in u for u in urls)
    # The same results files as a serial run's: the gate outcomes agree task by task.
    outcome = {k: d["passed"] for k, d in task_details(tmp_path / "serial.json").items()}
    assert {k: d["passed"] for k, d in task_details(tmp_path / "ray.json").items()} == outcome


def test_a_rerun_after_an_interruption_plays_only_what_was_missing(cluster, tmp_path: Path) -> None:
    common = (
        "--eval-suite",
        "navigation",
        "--policy-uri",
        "scripted://navigator",
        "--policy-uri",
        "random://",
    )
    common += (
        "--num-episodes",
        "40",
        "--eval-gate",
        "mean",
        "--eval-ray",
        cluster.address,
        "--data-dir",
        "data",
    )
    run = pytest_run(tmp_path, *common, "--eval-json", "first.json", wait=False)
    wait_for_tasks(run, tmp_path / "data", 4)
    assert run.poll() is None, "the run ended before it could be interrupted"
    run.send_signal(signal.SIGINT)
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 2, output[-3000:]  # pytest's "interrupted"
    first = json.loads((tmp_path / "first.json").read_text())
    assert first["interrupted"] is True and first["passed"] is False
    finished = {key for key, d in task_details(tmp_path / "first.json").items() if d.get("seeds")}
    assert 0 < len(finished) < 26

    rerun = pytest_run(tmp_path, *common, "--eval-json", "again.json")
    assert rerun.returncode == 1, rerun.stdout[-3000:]  # random:// fails its gates
    again = episodes(tmp_path / "again.json")
    kept = {key for key, (*_, cached, _) in again.items() if all(cached)}
    fresh = {key for key, (*_, cached, _) in again.items() if not any(cached)}
    assert kept | fresh == set(again)  # a task was either kept whole or played whole
    assert finished <= kept and fresh  # what the first run reported was not played again
    serial = pytest_run(
        tmp_path, *common[:-4], "--eval-gate", "mean", "--no-eval-cache", "--eval-json", "serial.json"
    )
    assert played(again) == played(episodes(tmp_path / "serial.json")), serial.stdout[-2000:]


def test_without_retries_a_removed_node_loses_its_task_and_only_that(tmp_path: Path) -> None:
    common = ("--eval-suite", "navigation", "--policy-uri", "scripted://navigator")
    common += ("--num-episodes", "60", "--eval-gate", "mean", "--data-dir", "data", "--eval-ray-retries", "0")
    run, output = remove_a_node_mid_run(tmp_path, common)
    assert run.returncode == 1, output[-4000:]
    details = task_details(tmp_path / "ray.json")
    lost = [d for d in details.values() if d["error"]]
    assert len(details) == 13 and len(lost) == 1  # the one the removed node was running
    lost_with = ("NodeDiedError", "WorkerCrashedError", "ObjectLostError")  # how Ray says it went
    assert all(d["error"].startswith("lost on Ray after 0 retries (") for d in lost)
    assert all(any(kind in d["error"] for kind in lost_with) for d in lost)
    assert all(d["seeds"] and d["passed"] for d in details.values() if not d["error"])
    assert json.loads((tmp_path / "ray.json").read_text())["passed"] is False


def test_a_node_removed_mid_run_loses_no_task(tmp_path: Path) -> None:
    common = ("--eval-suite", "navigation", "--policy-uri", "scripted://navigator")
    common += ("--num-episodes", "60", "--eval-gate", "mean", "--data-dir", "data")
    run, output = remove_a_node_mid_run(tmp_path, common)
    assert run.returncode == 0, output[-4000:]
    remote = episodes(tmp_path / "ray.json")
    assert len(remote) == 13 and not any(error for *_, error in remote.values())
    assert "0 task(s) lost" in output
    serial = pytest_run(tmp_path, *common[:-2], "--no-eval-cache", "--eval-json", "serial.json")
    assert played(remote) == played(episodes(tmp_path / "serial.json")), serial.stdout[-2000:]


def test_a_task_no_node_can_run_is_its_error_not_a_wait(cluster, tmp_path: Path) -> None:
    run = pytest_run(
        tmp_path, "--eval-suite", "navigation", "--policy-uri", "random://", "-k", "in_sight",
        "--eval-ray", cluster.address, "--eval-ray-resources", "cpus=1,gpus=0.5", "--eval-json", "out.json",
        "--eval-ray-node-wait", "0",
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-3000:]
    assert "no node of the Ray cluster can run it: it asks for CPU 1, GPU 0.5" in run.stdout
    details = task_details(tmp_path / "out.json")
    assert len(details) == 1 and all("no node of the Ray cluster" in d["error"] for d in details.values())


def test_a_task_waits_for_a_node_that_can_run_it_to_join(tmp_path: Path) -> None:
    with local_cluster(workers=1, cpus=1) as (cluster, _):
        run = pytest_run(
            tmp_path, "--eval-suite", "navigation", "--policy-uri", "random://", "-k", "in_sight",
            "--num-episodes", "3", "--eval-ray", cluster.address, "--eval-ray-resources", "cpus=1,late=1",
            "--eval-ray-node-wait", "120", "--eval-json", "out.json", wait=False,
        )  # fmt: skip
        time.sleep(8)  # the run has started and its task waits: no node has `late`
        assert run.poll() is None
        cluster.add_node(num_cpus=1, resources={"late": 1}, node_ip_address="127.0.0.1")
        output, _ = run.communicate(timeout=300)
    assert run.returncode == 1, output[-3000:]  # random:// fails the gate: it was played
    (details,) = task_details(tmp_path / "out.json").values()
    assert details["error"] is None and len(details["seeds"]) == 3


def test_an_address_nobody_answers_at_ends_the_run_before_anything_is_evaluated(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = pytest_run(
        tmp_path, "--eval-suite", "navigation", "--policy-uri", "random://",
        "--eval-ray", f"127.0.0.1:{port}", "--eval-json", "out.json",
    )  # fmt: skip
    assert run.returncode == 4, run.stdout[-3000:]
    assert f"--eval-ray 127.0.0.1:{port}: nothing answers at 127.0.0.1:{port}" in run.stdout + run.stderr
    assert "nothing was evaluated" in run.stdout + run.stderr
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["passed"] is False and written["complete"] is False


def test_an_address_that_is_no_ray_head_ends_the_run_at_once(tmp_path: Path) -> None:
    from servers import FileServer

    web = FileServer()  # a web server, as the dashboard's port would be
    try:
        address = web.url.removeprefix("http://")
        start = time.monotonic()
        run = pytest_run(
            tmp_path, "--eval-suite", "navigation", "--policy-uri", "random://", "--eval-ray", address,
        )  # fmt: skip
    finally:
        web.close()
    assert run.returncode == 4 and time.monotonic() - start < 60
    assert f"something answers at {address}, but not a Ray head" in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--eval-ray", "local", "-n", "2"), "--eval-ray and -n/--dist are two ways"),
        (("--eval-ray", "not an address"), "is not auto, local, HOST:PORT or ray://HOST:PORT"),
        (("--eval-ray", "local", "--eval-ray-resources", "gpus=1.5"), "a whole number of GPUs"),
        (("--eval-ray", "local", "--eval-ray-resources", "cpus"), "'cpus' is not NAME=NUMBER"),
    ],
)
def test_ray_options_are_checked_before_anything_runs(tmp_path: Path, args: tuple, message: str) -> None:
    run = pytest_run(tmp_path, "--eval-suite", "navigation", "--policy-uri", "random://", *args)
    assert run.returncode == 4 and message in run.stderr, run.stderr[-2000:]


def test_a_suite_asks_for_its_own_resources_checked_when_it_is_read(tmp_path: Path) -> None:
    from pytest_policyeval.collection.suite import SuiteError, load_suite

    suites = tmp_path / "suites"
    suites.mkdir()
    body = "name: gym\ntasks:\n  - {name: c/cartpole, engine: gymnasium, env: CartPole-v1, resources: %s}\n"
    (suites / "ok.yaml").write_text(body % "{cpus: 2, gpus: 0.25, custom: {accel: 1}}")
    task = load_suite(suites / "ok.yaml").tasks[0]
    assert (task.settings.resources.cpus, task.settings.resources.gpus) == (2, 0.25)
    (suites / "bad.yaml").write_text(body % "{gpus: 1.5}")
    with pytest.raises(SuiteError, match=r"resources.gpus.*whole number of GPUs"):
        load_suite(suites / "bad.yaml")


def test_a_local_cluster_plays_an_sb3_model_as_a_serial_run_does(tmp_path: Path) -> None:
    model = f"sb3://{REPO / 'examples' / 'policies' / 'cartpole_ppo.zip'}"
    common = ("--eval-suite", "cartpole", "--policy-uri", model, "--policy-uri", "random://")
    common += ("--num-episodes", "4", "--eval-gate", "mean")
    serial = pytest_run(tmp_path, *common, "--no-eval-cache", "--eval-json", "serial.json")
    local = pytest_run(
        tmp_path, *common, "--eval-ray", "local", "--data-dir", "data", "--eval-json", "ray.json"
    )
    assert (serial.returncode, local.returncode) == (1, 1), local.stdout[-3000:] + local.stderr[-2000:]
    assert played(episodes(tmp_path / "ray.json")) == played(episodes(tmp_path / "serial.json"))
    assert SUMMARY.search(local.stdout).group(1) == "2"


def test_what_only_a_conftest_registers_is_refused_by_name_not_missed_on_a_worker(
    cluster, tmp_path: Path
) -> None:
    example = REPO / "examples" / "extending"
    shutil.copy(example / "conftest.py", tmp_path / "conftest.py")
    shutil.copytree(example / "suites", tmp_path / "suites")
    run = pytest_run(
        tmp_path, "--policy-uri", "oracle://", "--policy-uri", "random://", "--eval-ray", cluster.address,
        "--eval-json", "out.json",
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-3000:]
    errors = [d["error"] for d in task_details(tmp_path / "out.json").values()]
    assert len(errors) == 4 and all("which Ray workers do not load" in e for e in errors)
    assert "engine 'coin' is registered by a conftest.py" in run.stdout


def test_collecting_only_needs_no_cluster(tmp_path: Path) -> None:
    run = pytest_run(
        tmp_path, "--eval-suite", "navigation", "--policy-uri", "random://", "--eval-ray", "127.0.0.1:9",
        "--collect-only",
    )  # fmt: skip
    assert run.returncode == 0 and "13 tests collected" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]


def test_results_name_what_was_asked_for_not_the_nodes_copies(cluster, tmp_path: Path) -> None:
    from servers import FileServer

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint at all")
    web = FileServer()
    web.files["/models/nav.pt"] = Path(NAV).read_bytes()
    try:
        run = pytest_run(
            tmp_path, "--eval-suite", "navigation", "-k", "in_sight", "--num-episodes", "3",
            "--policy-uri", f"{web.url}/models/nav.pt", "--policy-uri", str(broken),
            "--eval-ray", cluster.address, "--data-dir", "data", "--eval-json", "out.json",
        )  # fmt: skip
    finally:
        web.close()
    assert run.returncode == 1, run.stdout[-3000:]
    details = task_details(tmp_path / "out.json")
    error = details[("navigation/emptyspace_in_sight", "broken")]["error"]
    assert str(broken) in error and "pytest-policyeval-ray" not in error and "node-" not in error
    data = json.loads((tmp_path / "out.json").read_text())
    (downloaded,) = [c for p in data["policies"] for c in p["checkpoints"] if c["name"] == "nav"]
    source = downloaded["policy_info"]["source"]
    assert source["uri"] == f"{web.url}/models/nav.pt" and downloaded["policy_info"]["uri"] == source["uri"]
    assert web.downloads("/models/nav.pt") == 1  # by this machine, once; the node got it from Ray


def test_a_shard_run_on_ray_merges_with_a_serial_shard_into_the_serial_run(cluster, tmp_path: Path) -> None:
    common = ("--eval-suite", "navigation", "--policy-uri", "scripted://navigator", "--num-episodes", "4")
    common += ("--eval-gate", "mean", "--no-eval-cache")
    whole = pytest_run(tmp_path, *common, "--eval-json", "whole.json")
    on_ray = pytest_run(
        tmp_path, *common, "--shard-id", "0", "--num-shards", "2", "--eval-ray", cluster.address,
        "--eval-json", "shard0.json",
    )  # fmt: skip
    here = pytest_run(tmp_path, *common, "--shard-id", "1", "--num-shards", "2", "--eval-json", "shard1.json")
    assert whole.returncode == on_ray.returncode == here.returncode == 0, on_ray.stdout[-2000:]
    merge = ["merge", "shard0.json", "shard1.json", "--eval-json", "merged.json"]
    merged = subprocess.run(
        [sys.executable, "-m", "pytest_policyeval", *merge], cwd=tmp_path, capture_output=True, text=True
    )
    assert merged.returncode == 0, merged.stdout[-2000:] + merged.stderr[-2000:]
    assert played(episodes(tmp_path / "merged.json")) == played(episodes(tmp_path / "whole.json"))
    assert len(episodes(tmp_path / "merged.json")) == 13
    assert json.loads((tmp_path / "merged.json").read_text())["complete"] is True


def test_a_nodes_copy_removed_or_replaced_after_checking_is_written_again(tmp_path: Path) -> None:
    """A temp cleaner may remove the node's copy between two tasks: the next task writes it again
    from the object store instead of failing on a missing file."""
    import hashlib

    from pytest_policyeval.ray_backend.shipping import Shipped, materialize

    data = b"map bytes" * 100

    class Store:  # the object store: ray.get of the shipped ref
        gets = 0

        def get(self, ref: object) -> bytes:
            Store.gets += 1
            return data

    shipped = Shipped("m.map", hashlib.sha256(data).hexdigest(), len(data), object())
    target = tmp_path / "files" / shipped.sha256 / "m.map"
    target.parent.mkdir(parents=True)
    assert materialize(Store(), shipped, target) is True
    assert materialize(Store(), shipped, target) is False and Store.gets == 1  # checked: kept
    target.unlink()
    assert materialize(Store(), shipped, target) is True and target.read_bytes() == data
    target.write_bytes(b"x" * len(data))  # replaced by something else of the same size
    assert materialize(Store(), shipped, target) is True and target.read_bytes() == data


def test_a_task_that_never_ran_on_ray_is_redacted_and_claims_no_episodes(tmp_path: Path) -> None:
    """Results made on the caller for a task Ray lost or could not ship go through what a played
    task's do: no password or token of its URIs, and none of the episodes it was set to play."""
    from helpers import MINI_SUITE, write_suite

    from pytest_policyeval.collection.suite import load_suite
    from pytest_policyeval.evaluation import EvalOptions, Evaluation

    task = load_suite(write_suite(tmp_path, MINI_SUITE)).tasks[0]
    uri = "https://alice:hunter2pw@127.0.0.1:9/x.pt?token=SECRETTOK"
    evaluation = Evaluation(EvalOptions(policy_uris=(uri,), baseline_uri="s3://k:BASESECRET@b/x.pt"))
    message = f"{uri}: cannot download (refused); baseline s3://k:BASESECRET@b/x.pt"
    result = evaluation.error_result(evaluation.resolve(task), uri, "x", (0, 0, 0), message)
    text = json.dumps(result.to_dict())
    assert "hunter2pw" not in text and "SECRETTOK" not in text and "BASESECRET" not in text
    assert result.num_episodes == 0 and result.passed is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("cpus=0.00001", "finer than Ray's 0.0001"),
        ("foo=0.000001", "finer than Ray's 0.0001"),
        ("memory_mb=1000000000", "less than or equal to"),
        ("foo=1e9", "an amount from 0 to 1e6"),
    ],
)
def test_resources_ray_would_refuse_at_run_time_are_refused_when_read(text: str, fragment: str) -> None:
    from pytest_policyeval.option_values import BadValue, ray_resources, retry_count

    with pytest.raises(BadValue, match=re.escape(fragment)):
        ray_resources(text)
    with pytest.raises(BadValue, match="at most 100"):
        retry_count("3000000000")
    assert ray_resources("cpus=0.5,gpus=0.25,x=0.0001")["custom"] == {"x": 0.0001}
