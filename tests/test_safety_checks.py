"""The safety checks a reader relies on, each with a test that fails when the check is broken.

merge: a task in two shards, shards of different commits, a `ci` gate re-gated as a mean gate;
the atomic writer: the target is replaced only by a whole new file and kept on error;
the download cache: a ref whose blob is gone is not trusted, and a 304 is not offline use.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import MINI_SUITE, make_checkpoint, run_shards, write_suite
from servers import FileServer

from pytest_policyeval.atomic import atomic_writer, write_text_atomic
from pytest_policyeval.merge import MergeError, merge_shards
from pytest_policyeval.policies import LoadOptions, load_policy

# nav/easy: a mean of 0.25 clears 0.2, but with 4 episodes of 0 or 1 the interval does not.
CI_SUITE = """
name: mini
seed: 3
defaults: {num_episodes: 4, max_steps: 2}
tasks:
  - {name: nav/easy, map: maps/easy.map, threshold: 0.2, gate: ci}
  - {name: nav/hard, map: maps/hard.map}
"""


def _shards(tmp_path: Path, body: str = MINI_SUITE) -> list[Path]:
    return run_shards(write_suite(tmp_path, body), tmp_path)


def _tasks(document: dict) -> dict:
    return document["policies"][0]["checkpoints"][0]["metrics"]["tasks"] if document["policies"] else {}


def test_merge_refuses_a_task_present_in_two_shards(tmp_path: Path) -> None:
    first, second = _shards(tmp_path)
    one, two = (json.loads(path.read_text()) for path in (first, second))
    donor, taker = (one, two) if _tasks(one) else (two, one)
    task, detail = next(iter(_tasks(donor).items()))
    if taker["policies"]:
        _tasks(taker)[task] = detail
    else:
        taker["policies"] = donor["policies"]
    (second if taker is two else first).write_text(json.dumps(taker))
    with pytest.raises(MergeError, match=f"{task} .* is in both"):
        merge_shards([first, second])


def test_merge_refuses_shards_of_different_commits(tmp_path: Path) -> None:
    first, second = _shards(tmp_path)
    document = json.loads(second.read_text())
    document["git_sha"] = "0" * 40
    second.write_text(json.dumps(document))
    with pytest.raises(MergeError, match="the shards ran different commits"):
        merge_shards([first, second])


def test_merge_regates_a_ci_gate_as_a_ci_gate(tmp_path: Path) -> None:
    paths = _shards(tmp_path, CI_SUITE)
    easy = next(
        _tasks(d)["nav/easy"]
        for d in map(json.loads, (p.read_text() for p in paths))
        if "nav/easy" in _tasks(d)
    )
    scores = easy["episode_scores"]
    assert easy["gate"] == "ci" and sum(scores) / len(scores) >= 0.2 and easy["passed"] is False, easy
    merged = {result.task: result for result in merge_shards(paths).results}
    assert merged["nav/easy"].passed is False  # a mean gate would pass it


def test_the_atomic_writer_replaces_the_target_only_with_a_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")
    with atomic_writer(target) as handle:
        handle.write(b"new, half")
        assert target.read_text() == "old"  # nothing reaches the target while writing
        handle.write(b" and the rest")
    assert target.read_text() == "new, half and the rest"
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write(b"partial")
        raise RuntimeError("disk full")
    assert target.read_text() == "new, half and the rest"  # kept, not deleted, not half-written
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]  # no temporary left
    write_text_atomic(target, "final")
    assert target.read_text() == "final"


def _serve(http_server: FileServer, tmp_path: Path) -> str:
    http_server.files["/m/nav.pt"] = make_checkpoint(tmp_path / "nav.pt").read_bytes()
    return f"{http_server.url}/m/nav.pt"


def test_a_cached_ref_whose_file_is_gone_is_not_trusted(http_server: FileServer, tmp_path: Path) -> None:
    uri, options = _serve(http_server, tmp_path), LoadOptions(data_dir=tmp_path / "data")
    first = load_policy(uri, options).describe()["source"]
    Path(first["path"]).unlink()
    second = load_policy(uri, options).describe()["source"]
    assert http_server.downloads("/m/nav.pt") == 2 and Path(second["path"]).is_file()
    assert second["cached"] is False


def test_a_304_revalidation_is_cached_use_not_offline_use(http_server: FileServer, tmp_path: Path) -> None:
    uri, options = _serve(http_server, tmp_path), LoadOptions(data_dir=tmp_path / "data")
    load_policy(uri, options)
    again = load_policy(uri, options).describe()["source"]
    assert ("GET", "/m/nav.pt", 304) in http_server.log
    assert again["cached"] is True and again["offline"] is False
    http_server.close()  # now the server is gone: that is offline use
    offline = load_policy(uri, options).describe()["source"]
    assert offline["cached"] is True and offline["offline"] is True
