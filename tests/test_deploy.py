"""The deployment examples under deploy/ name options and commands that exist, consistently."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_policyeval.cli import parser as cli_parser

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pytest_options() -> set[str]:
    """Every option `pytest --help` lists with this plugin (and pytest-html) installed."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:importnb", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(re.findall(r"(--[a-z][a-z-]+)", done.stdout))


def _flags(command: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", command))


def test_github_actions_matrix_runs_every_shard_then_merges(pytest_options: set[str]) -> None:
    workflow = yaml.safe_load((REPO / "deploy/github-actions/policyeval-shards.yml").read_text())
    jobs = workflow["jobs"]
    shards = jobs["shard"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(int(workflow["env"]["NUM_SHARDS"])))
    run = next(step["run"] for step in jobs["shard"]["steps"] if step.get("name") == "Evaluate this shard")
    assert "--shard-id ${{ matrix.shard }}" in run and '--num-shards "$NUM_SHARDS"' in run
    assert _flags(run) <= pytest_options
    assert jobs["merge"]["needs"] == "shard"
    merge = next(step["run"] for step in jobs["merge"]["steps"] if step.get("name") == "Merge and gate")
    args = merge.split()
    assert args[:2] == ["policyeval", "merge"]
    # The merge command line parses with the real CLI.
    parsed = cli_parser().parse_args([a for a in args[1:] if a != "\\"])
    assert parsed.command == "merge" and str(parsed.eval_json) == "results/results.json"


def test_kubernetes_indexed_job_has_one_pod_per_shard_and_a_merge_job(pytest_options: set[str]) -> None:
    documents = list(yaml.safe_load_all((REPO / "deploy/kubernetes/policyeval-shards.yaml").read_text()))
    (job,) = [doc for doc in documents if doc["kind"] == "Job"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] == spec["completions"]
    (container,) = spec["template"]["spec"]["containers"]
    command = " ".join(container["args"])
    assert f"--num-shards {spec['completions']}" in command
    assert '--shard-id "$JOB_COMPLETION_INDEX"' in command
    assert _flags(command) <= pytest_options
    claim = next(doc for doc in documents if doc["kind"] == "PersistentVolumeClaim")["metadata"]["name"]
    merge_job = yaml.safe_load((REPO / "deploy/kubernetes/policyeval-merge.yaml").read_text())
    assert merge_job["kind"] == "Job"
    volumes = merge_job["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == claim
    (merge,) = merge_job["spec"]["template"]["spec"]["containers"]
    args = " ".join(merge["args"]).split()
    parsed = cli_parser().parse_args(args[1:])
    assert args[0] == "policyeval" and parsed.command == "merge"
    assert [str(path) for path in parsed.shards] == ["/results/shard-*.json"]
