"""wandb:// policies: URI forms, versions and aliases, the digest-keyed cache and every failure.

W&B's server cannot be reached from the tests, so artifacts come from a recorded directory behind
the resolver's one seam (`storage.wandb.API_FACTORY`); the missing-credentials case runs the real
client.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import MINI_SUITE, make_checkpoint, task_details, write_suite
from recorded_wandb import CONFTEST, RecordedApi, record_artifact

from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy
from pytest_policyeval.storage import wandb as store

TESTS = Path(__file__).parent


@pytest.fixture
def artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "wandb-artifacts"
    root.mkdir()
    monkeypatch.setattr(store, "API_FACTORY", lambda: RecordedApi(root))
    monkeypatch.delenv("RECORDED_WANDB_DOWN", raising=False)
    return root


def _checkpoint(tmp: Path, seed: int) -> bytes:
    return make_checkpoint(tmp / f"c{seed}.pt", seed=seed).read_bytes()


def _source(uri: str, data: Path, **options) -> dict:
    return load_policy(uri, LoadOptions(data_dir=data, **options)).describe()["source"]


def test_uri_forms() -> None:
    parse = store.parse_artifact_uri
    assert parse("wandb://team/proj/model/nav:v3").qualified == "team/proj/nav:v3"
    assert parse("wandb://team/proj/model/nav").version == "latest"
    run = parse("wandb://run/nav-run:best", entity="me", project="evals")
    assert (run.entity, run.project, run.type, run.name, run.version) == (
        "me",
        "evals",
        "model",
        "nav-run",
        "best",
    )
    for bad in ("wandb://team/proj/nav:v1", "wandb://team/proj/model/:v1", "wandb://team/proj/model/nav:v 1"):
        with pytest.raises(store.WandbError, match=r"expected wandb://|is not NAME"):
            parse(bad)


def test_run_uris_need_an_entity_and_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    with pytest.raises(store.WandbError, match="set WANDB_ENTITY and WANDB_PROJECT"):
        store.parse_artifact_uri("wandb://run/nav")
    monkeypatch.setenv("WANDB_ENTITY", "team")
    monkeypatch.setenv("WANDB_PROJECT", "proj")
    assert store.parse_artifact_uri("wandb://run/nav").qualified == "team/proj/nav:latest"


def test_versions_and_aliases_resolve_and_the_cache_is_keyed_by_digest(
    artifacts: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    record_artifact(artifacts, "team/proj/nav", {"model.pt": _checkpoint(tmp_path, 1)})
    latest = _source("wandb://team/proj/model/nav:latest", data)
    assert (latest["version"], latest["cached"]) == ("v0", False)
    assert _source("wandb://team/proj/model/nav:latest", data)["cached"] is True

    record_artifact(artifacts, "team/proj/nav", {"model.pt": _checkpoint(tmp_path, 2)})
    moved = _source("wandb://team/proj/model/nav:latest", data)
    assert (moved["version"], moved["cached"]) == ("v1", False) and moved["digest"] != latest["digest"]
    pinned = _source("wandb://team/proj/model/nav:v0", data)
    assert pinned["version"] == "v0" and pinned["digest"] == latest["digest"]


def test_an_outage_uses_the_cached_copy_or_says_there_is_none(
    artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_artifact(artifacts, "team/proj/nav", {"model.pt": _checkpoint(tmp_path, 1)})
    online = _source("wandb://team/proj/model/nav:v0", tmp_path / "data")
    monkeypatch.setenv("RECORDED_WANDB_DOWN", "1")
    offline = _source("wandb://team/proj/model/nav:v0", tmp_path / "data")
    assert offline["offline"] is True and offline["digest"] == online["digest"]
    with pytest.raises(
        PolicyLoadError, match=r"cannot reach W&B \(Failed to connect.* and there is no cached copy"
    ):
        _source("wandb://team/proj/model/nav:v0", tmp_path / "empty")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("wandb://team/proj/model/ghost:v0", r"^wandb://team/proj/model/ghost:v0: no such artifact \("),
        ("wandb://team/proj/model/nav:v7", r"^wandb://team/proj/model/nav:v7: no such artifact \("),
        ("wandb://team/proj/model/data:v0", r"team/proj/data:v0 is a 'dataset' artifact, not 'model'"),
        (
            "wandb://team/proj/model/two:v0",
            r"expected one checkpoint file \(\.pt or an SB3 \.zip\) in the artifact",
        ),
    ],
)
def test_failures_are_one_message(artifacts: Path, tmp_path: Path, uri: str, message: str) -> None:
    body = _checkpoint(tmp_path, 1)
    record_artifact(artifacts, "team/proj/nav", {"model.pt": body})
    record_artifact(artifacts, "team/proj/data", {"maps.txt": b"x"}, kind="dataset")
    record_artifact(artifacts, "team/proj/two", {"a.pt": body, "b.pt": body})
    with pytest.raises(PolicyLoadError, match=message):
        _source(uri, tmp_path / "data")
    assert not list((tmp_path / "data").glob("blobs/*/*"))


def test_the_real_client_without_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "API_FACTORY", store.real_api)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    with pytest.raises(
        PolicyLoadError, match=r"^wandb://team/proj/model/nav:v0: no W&B credentials: set WANDB_API_KEY"
    ):
        _source("wandb://team/proj/model/nav:v0", tmp_path / "data")


def test_a_run_uri_evaluated_by_two_workers(
    pytester: pytest.Pytester, artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_artifact(artifacts, "team/proj/nav-run", {"model.pt": _checkpoint(tmp_path, 1)}, aliases=("best",))
    pytester.makeconftest(CONFTEST)
    write_suite(pytester.path, MINI_SUITE)
    pytester.makeini("[pytest]\npolicyeval_wandb_entity = team\n")
    for key, value in {
        "RECORDED_WANDB": str(artifacts),
        "PYTHONPATH": str(TESTS),
        "WANDB_PROJECT": "proj",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:importnb",
        "-n",
        "2",
        "--policy-uri",
        "wandb://run/nav-run:best",
        "--data-dir",
        str(tmp_path / "data"),
        "--eval-json",
        "r.json",
    )
    result.assert_outcomes(passed=2)
    document = json.loads((pytester.path / "r.json").read_text())
    checkpoint = document["policies"][0]["checkpoints"][0]
    assert checkpoint["name"] == "nav-run:best"
    assert checkpoint["policy_info"]["source"]["version"] == "v0"
    assert all(len(d["episode_rewards"]) == 4 for d in task_details(pytester.path / "r.json").values())
