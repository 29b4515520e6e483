"""s3:// policies against a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import MINI_SUITE, make_checkpoint, task_details, write_suite
from servers import S3Server

from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy


def _upload(server: S3Server, tmp: Path, bucket: str = "models", key: str = "nav/v1/nav.pt") -> bytes:
    body = make_checkpoint(tmp / "nav.pt").read_bytes()
    client = server.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=key, Body=body)
    return body


def _requests(caplog: pytest.LogCaptureFixture, method: str, path: str) -> int:
    """Requests the S3 server logged (werkzeug, in this process) for one method and path."""
    return sum(1 for r in caplog.records if f'"{method} {path} HTTP' in r.getMessage())


def test_an_s3_policy_is_fetched_once_per_run_and_reused_from_the_cache(
    pytester: pytest.Pytester, s3_server: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import hashlib

    body = _upload(s3_server, tmp_path)
    write_suite(pytester.path, MINI_SUITE)
    args = (
        "-p",
        "no:importnb",
        "--policy-uri",
        "s3://models/nav/v1/nav.pt",
        "--data-dir",
        str(tmp_path / "d"),
    )
    first = pytester.runpytest_subprocess(*args, "-n", "2", "--eval-json", "a.json")
    first.assert_outcomes(passed=2)
    key = "/models/nav/v1/nav.pt"
    assert (_requests(caplog, "HEAD", key), _requests(caplog, "GET", key)) == (1, 1)  # two workers
    second = pytester.runpytest_subprocess(*args, "--eval-json", "b.json")
    second.assert_outcomes(passed=2)
    assert (_requests(caplog, "HEAD", key), _requests(caplog, "GET", key)) == (2, 1)  # unchanged
    sources = [
        json.loads((pytester.path / name).read_text())["policies"][0]["checkpoints"][0]["policy_info"][
            "source"
        ]
        for name in ("a.json", "b.json")
    ]
    assert sources[0]["digest"] == sources[1]["digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert sources[0]["version"] == '"' + hashlib.md5(body).hexdigest() + '"'  # the object's ETag
    assert (sources[0]["cached"], sources[1]["cached"]) == (False, True)
    rewards = [
        {k: d["episode_rewards"] for k, d in task_details(pytester.path / n).items()}
        for n in ("a.json", "b.json")
    ]
    assert rewards[0] == rewards[1]


def test_a_replaced_object_is_downloaded_again(s3_server: S3Server, tmp_path: Path) -> None:
    _upload(s3_server, tmp_path)
    options = LoadOptions(data_dir=tmp_path / "d")
    old = load_policy("s3://models/nav/v1/nav.pt", options).describe()["source"]
    new_body = make_checkpoint(tmp_path / "other.pt", seed=9).read_bytes()
    s3_server.client().put_object(Bucket="models", Key="nav/v1/nav.pt", Body=new_body)
    new = load_policy("s3://models/nav/v1/nav.pt", options).describe()["source"]
    assert new["cached"] is False and new["digest"] != old["digest"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://models/nav/v2/nav.pt", "s3://models/nav/v2/nav.pt: no such object"),
        ("s3://nobucket/nav.pt", "s3://nobucket/nav.pt: no such bucket 'nobucket'"),
        ("s3://models", "s3://models: expected s3://BUCKET/KEY"),
    ],
)
def test_missing_objects_are_named(s3_server: S3Server, tmp_path: Path, uri: str, message: str) -> None:
    _upload(s3_server, tmp_path)
    with pytest.raises(PolicyLoadError) as error:
        load_policy(uri, LoadOptions(data_dir=tmp_path / "d"))
    assert str(error.value) == message


def test_no_credentials_is_one_message(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upload(s3_server, tmp_path)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(PolicyLoadError, match=r"^s3://models/nav/v1/nav.pt: no AWS credentials \(set"):
        load_policy("s3://models/nav/v1/nav.pt", LoadOptions(data_dir=tmp_path / "d"))


def test_unreachable_s3_uses_the_cached_copy_or_says_there_is_none(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upload(s3_server, tmp_path)
    uri, options = "s3://models/nav/v1/nav.pt", LoadOptions(data_dir=tmp_path / "d")
    online = load_policy(uri, options).describe()["source"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    offline = load_policy(uri, options).describe()["source"]
    assert offline["offline"] is True and offline["digest"] == online["digest"]
    with pytest.raises(PolicyLoadError, match=r"cannot reach S3 .* and there is no cached copy"):
        load_policy(uri, LoadOptions(data_dir=tmp_path / "empty"))
