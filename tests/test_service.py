"""The evaluator service's entrypoint, run as a subprocess with its environment variables."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from helpers import MINI_SUITE, make_checkpoint, write_suite
from servers import S3Server

from pytest_policyeval.collection.lookup import SUITES_DIR_VAR

REPO = Path(__file__).resolve().parents[1]

SERVICE_VARIABLES = (
    "POLICY_URI",
    "OUTPUT_URI",
    "SIMULATION_SUITE",
    "WANDB_API_KEY",
    "WANDB_MODE",
    "RUN_NAME",
)


@pytest.fixture
def service(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Runs `python -m pytest_policyeval.service` in a project with suites/mini.yaml."""
    write_suite(pytester.path, MINI_SUITE)
    for name in SERVICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(pytester.path / "cache"))
    monkeypatch.setenv("SIMULATION_SUITE", "mini")

    def run(**env: str):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        result = pytester.run(sys.executable, "-m", "pytest_policyeval.service")
        return result, json.loads(result.stdout.str())  # stdout holds the JSON and nothing else

    return run


def test_an_s3_policy_is_evaluated_printed_and_uploaded(service, s3_server: S3Server, tmp_path) -> None:
    client = s3_server.client()
    for bucket in ("models", "results"):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket="models", Key="nav.pt", Body=make_checkpoint(tmp_path / "nav.pt").read_bytes())
    result, document = service(
        POLICY_URI="s3://models/nav.pt", OUTPUT_URI="s3://results/run-1", NUM_EPISODES="3"
    )
    assert result.ret == 0
    (policy,) = document["policies"]
    assert policy["policy_uri"] == "s3://models/nav.pt"
    tasks = policy["checkpoints"][0]["metrics"]["tasks"]
    assert sorted(tasks) == ["nav/easy", "nav/hard"] and all(
        len(t["episode_rewards"]) == 3 for t in tasks.values()
    )
    assert policy["checkpoints"][0]["policy_info"]["source"]["uri"] == "s3://models/nav.pt"
    uploaded = json.loads(client.get_object(Bucket="results", Key="run-1/results.json")["Body"].read())
    assert uploaded == document
    assert "policy evaluation" in result.stderr.str()


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({}, "POLICY_URI is not set: name the policy to evaluate"),
        (
            {"POLICY_URI": "s3://models/missing.pt"},
            "policy could not be loaded: s3://models/missing.pt: no such object",
        ),
        (
            {"POLICY_URI": "ftp://host/x.pt"},
            "policy could not be loaded: ftp://host/x.pt: unknown policy URI scheme 'ftp://'",
        ),
        ({"POLICY_URI": "random://", "SIMULATION_SUITE": "nowhere"}, "no simulation suite 'nowhere'"),
        (
            {"POLICY_URI": "wandb://team/proj/model/nav:v1"},
            "WANDB_API_KEY is not set; it is required for wandb:// URIs",
        ),
        (
            {"POLICY_URI": "random://", "OUTPUT_URI": "s3://no-bucket/x"},
            "results not published: s3://no-bucket/x/",
        ),
    ],
)
def test_each_failure_prints_the_error_json_and_exits_non_zero(
    service, s3_server: S3Server, env, error
) -> None:
    s3_server.client().create_bucket(Bucket="models")
    result, document = service(**env)
    assert result.ret == 1
    assert set(document) == {"error", "traceback", "policy_uri"}
    assert document["error"].startswith(error)
    assert document["policy_uri"] == env.get("POLICY_URI")


def test_a_shipped_suite_by_name_and_a_bare_metta_checkpoint_from_an_empty_folder(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (*SERVICE_VARIABLES, SUITES_DIR_VAR):
        monkeypatch.delenv(name, raising=False)
    shutil.copy(REPO / "examples/policies/navigation.pt", pytester.path / "navigation.pt")
    monkeypatch.setenv("POLICY_URI", "navigation.pt")
    monkeypatch.setenv("SIMULATION_SUITE", "navigation_single")
    monkeypatch.setenv("NUM_EPISODES", "1")
    result = pytester.run(sys.executable, "-m", "pytest_policyeval.service")
    assert result.ret == 0, result.stderr.str()
    (policy,) = json.loads(result.stdout.str())["policies"]
    (checkpoint,) = policy["checkpoints"]
    assert list(checkpoint["metrics"]["tasks"]) == ["navigation/wall_with_gap"]
    assert checkpoint["policy_info"]["kind"] == "metta-external"
    result.stderr.fnmatch_lines(["suites/navigation_single.yaml *"])
