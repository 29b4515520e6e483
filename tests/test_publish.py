"""Publishing results (--eval-output-uri) to a folder and to S3, and logging to W&B (--wandb, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import MINI_SUITE, task_details, write_suite
from servers import S3Server
from wandb_files import logged, offline_runs

BASE = ("-p", "no:importnb", "--policy-uri", "random://", "--eval-json", "local.json")


def _without_replay_links(document: dict) -> dict:
    for policy in document["policies"]:
        for checkpoint in policy["checkpoints"]:
            checkpoint["replay_url"] = None
            for detail in checkpoint["metrics"]["tasks"].values():
                for key in ("replay_url", "mettascope_url", "replay_urls", "mettascope_urls"):
                    detail[key] = None
    return document


def test_a_folder_receives_results_yaml_and_replays_it_links(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, MINI_SUITE)
    result = pytester.runpytest_subprocess(
        *BASE, "-n", "2", "--save-replays=replays", "--eval-output-uri", "out"
    )
    result.assert_outcomes(passed=2)
    out = pytester.path / "out"
    result.stdout.fnmatch_lines([f"results published to {out / 'results.json'}"])
    published = json.loads((out / "results.json").read_text())
    links = [url for d in task_details(out / "results.json").values() for url in d["replay_urls"]]
    assert len(links) == 2 and all(Path(url).is_file() and Path(url).is_relative_to(out) for url in links)
    for url in links:  # the same bytes as the run's own replay files
        local = pytester.path / "replays" / Path(url).relative_to(out / "replays")
        assert Path(url).read_bytes() == local.read_bytes()
    local_document = json.loads((pytester.path / "local.json").read_text())
    assert _without_replay_links(published) == _without_replay_links(local_document)
    assert "avg_simulation_score" in (out / "evaluation_results.yaml").read_text()


def test_a_json_uri_names_the_results_file(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, MINI_SUITE)
    pytester.runpytest_subprocess(*BASE, "--eval-output-uri", "file://published/run-7.json")
    assert sorted(p.name for p in (pytester.path / "published").iterdir()) == [
        "evaluation_results.yaml",
        "run-7.json",
    ]


def test_s3_receives_everything_under_the_prefix(pytester: pytest.Pytester, s3_server: S3Server) -> None:
    client = s3_server.client()
    client.create_bucket(Bucket="evals")
    write_suite(pytester.path, MINI_SUITE)
    result = pytester.runpytest_subprocess(
        *BASE, "--save-replays=replays", "--eval-output-uri", "s3://evals/nightly/2026-11-21"
    )
    result.assert_outcomes(passed=2)
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket="evals")["Contents"])
    assert keys == [
        "nightly/2026-11-21/evaluation_results.yaml",
        "nightly/2026-11-21/replays/mini/random/nav/easy/episode-0.json.z",
        "nightly/2026-11-21/replays/mini/random/nav/hard/episode-0.json.z",
        "nightly/2026-11-21/results.json",
    ]
    body = client.get_object(Bucket="evals", Key="nightly/2026-11-21/results.json")["Body"].read()
    details = json.loads(body)["policies"][0]["checkpoints"][0]["metrics"]["tasks"]
    assert (
        details["nav/easy"]["replay_url"]
        == "s3://evals/nightly/2026-11-21/replays/mini/random/nav/easy/episode-0.json.z"
    )
    local = task_details(pytester.path / "local.json")
    assert {t: d["episode_rewards"] for t, d in details.items()} == {
        t: d["episode_rewards"] for (t, _), d in local.items()
    }


def test_a_failed_upload_is_reported_fails_the_run_and_keeps_the_local_files(
    pytester: pytest.Pytester, s3_server: S3Server
) -> None:
    write_suite(pytester.path, MINI_SUITE)
    result = pytester.runpytest_subprocess(*BASE, "--eval-output-uri", "s3://missing-bucket/run")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*results NOT published: s3://missing-bucket/run/*: no such bucket 'missing-bucket'*"]
    )
    assert len(task_details(pytester.path / "local.json")) == 2


def test_wandb_logs_one_run_from_the_controller_in_offline_mode(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_suite(pytester.path, MINI_SUITE)
    for key, value in {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(pytester.path),
        "WANDB_SILENT": "true",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(pytester.path / "home"))
    result = pytester.runpytest_subprocess(
        *BASE,
        "-n",
        "2",
        "--wandb",
        "--wandb-run-name",
        "nightly",
        "--save-replays=replays",
        "--html=report.html",  # the report draws the same films: W&B must still get them
        "--eval-output-uri",
        "wandb://team/proj/nightly-results",
        # A URI with a password on the command line (never used: every task is the policy's).
        "--npc-policy-uri=http://ann:WANDBSECRET9@127.0.0.1:9/x.pt?X-Amz-Signature=WANDBSIG9",
    )
    result.assert_outcomes(passed=2)
    (run,) = offline_runs(pytester.path)  # one run, although two workers evaluated
    for path in run.parent.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"WANDBSECRET9" not in data and b"WANDBSIG9" not in data, path
    data = logged(run)
    local = task_details(pytester.path / "local.json")
    for (task, label), detail in local.items():
        assert data["summary"][f"{label}/{task}/score"] == pytest.approx(detail["score"])
    assert data["summary"]["random/avg_simulation_score"] == pytest.approx(0.5)
    gifs = sorted(run.parent.glob("files/media/videos/replays/random/nav/*/*.gif"))
    assert len(gifs) == 2
    from PIL import Image

    with Image.open(gifs[0]) as gif:
        assert gif.n_frames > 1 and gif.size[0] > 0
    table = json.loads(next(run.parent.glob("files/media/table/tasks_*.table.json")).read_text())
    assert [row[2] for row in table["data"]] == ["nav/easy", "nav/hard"]
    assert (
        "nightly-results",
        "evaluation",
        [
            "evaluation_results.yaml",
            "replays/mini/random/nav/easy/episode-0.json.z",
            "replays/mini/random/nav/hard/episode-0.json.z",
            "results.json",
        ],
    ) in data["artifacts"]


def test_a_failing_wandb_still_lets_the_output_uri_receive_its_files(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each publisher on its own: W&B refusing to start (here its mode is not one it knows) is
    reported and fails the run, and the folder still gets the results."""
    write_suite(pytester.path, MINI_SUITE)
    monkeypatch.setenv("WANDB_MODE", "nonsense")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HOME", str(pytester.path / "home"))
    result = pytester.runpytest_subprocess(*BASE, "--wandb", "--eval-output-uri", "out")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["results NOT published: W&B logging failed: ValidationError: *mode*"])
    assert json.loads((pytester.path / "out" / "results.json").read_text())["policies"]


def test_a_destination_no_sink_takes_is_a_usage_error_before_any_task_runs(
    pytester: pytest.Pytester,
) -> None:
    write_suite(pytester.path, MINI_SUITE)
    result = pytester.runpytest_subprocess(
        *BASE, "--eval-output-uri", "https://u:pw7777777@127.0.0.1:9/x?token=TOKTOKTOK"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--eval-output-uri: https://u:***@*: results cannot be published to 'https://'*"]
    )
    everything = result.stdout.str() + result.stderr.str()
    assert "pw7777777" not in everything and "TOKTOKTOK" not in everything
    assert not (pytester.path / "local.json").exists()  # nothing was evaluated
