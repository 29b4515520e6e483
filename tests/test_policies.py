"""Policy URIs and checkpoints: load what is valid, refuse the rest with one clear message."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import EASY_MAP, grid_env_spec, make_checkpoint

from pytest_policyeval.policies import PolicyLoadError, load_policy, policy_label
from pytest_policyeval.policies.checkpoint import read_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]


def test_checkpoint_round_trip_keeps_names_and_weights(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / "nav.pt", hidden_size=32, cnn_channels=8)
    policy = load_policy(f"file://{path}")
    assert policy.name == "nav"
    original = read_checkpoint(path)
    for key, tensor in policy.network.state_dict().items():
        assert torch.equal(tensor, original.state_dict[key])
    described = policy.describe()
    assert described["digest"].startswith("sha256:") and described["architecture"] == "token_cnn_lstm"


def test_bare_path_and_file_uri_load_the_same_policy(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / "p.pt")
    assert load_policy(str(path)).describe()["digest"] == load_policy(f"file://{path}").describe()["digest"]


def test_mismatching_checkpoint_names_first_key_and_both_shapes(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / "p.pt", hidden_size=32)
    checkpoint = read_checkpoint(path)
    checkpoint.config["hidden_size"] = 64  # the weights say 32
    save_checkpoint(checkpoint, path)
    with pytest.raises(PolicyLoadError) as error:
        load_policy(str(path))
    message = str(error.value)
    assert str(path) in message and "cnn.5.weight" in message
    assert "(32, 1152)" in message and "(64, 1152)" in message


def test_missing_tensor_is_refused(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / "p.pt")
    checkpoint = read_checkpoint(path)
    del checkpoint.state_dict["actor.bias"]
    save_checkpoint(checkpoint, path)
    with pytest.raises(PolicyLoadError, match=r"lacks 'actor\.bias'"):
        load_policy(str(path))


def test_a_bare_path_or_file_uri_to_a_metta_state_dict_loads_it_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seed's `--policy-path laser_tag.pt`: a Metta external checkpoint, named by a plain path.
    shutil.copy(REPO / "examples/policies/navigation.pt", tmp_path / "navigation.pt")
    monkeypatch.chdir(tmp_path)
    for uri in ("navigation.pt", f"file://{tmp_path / 'navigation.pt'}"):
        policy = load_policy(uri)
        assert policy.name == "navigation" and policy.describe()["kind"] == "metta-external"


# Files that are not the project's checkpoints are read as Metta state dicts, whose loader refuses these.
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"not a checkpoint at all", "PyTorch"),
        (None, "not a Metta external policy"),
    ],
)
def test_corrupt_or_foreign_files_are_refused(tmp_path: Path, content: bytes | None, fragment: str) -> None:
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"weight": torch.zeros(2)}, path)  # a plain state dict
    else:
        path.write_bytes(content)
    with pytest.raises(PolicyLoadError, match=fragment):
        load_policy(str(path))


class Sneaky:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickled_objects_are_never_unpickled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "pytest-policyeval.checkpoint", "payload": Sneaky()}, path)
    with pytest.raises(PolicyLoadError, match=r"refused: it names (__builtin__|builtins)\.print"):
        load_policy(str(path))
    assert "unpickled!" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("nope://x", "unknown policy URI scheme 'nope://'"),
        ("file:///does/not/exist.pt", "no such file"),
        ("file:///tmp/" + "A" * 300 + ".pt", "File name too long"),
        ("pytorch:///tmp/" + "A" * 300 + ".pt", "File name too long"),
        ("sb3:///tmp/x.zip?x=" + "A" * 300, "unknown option"),
        ("file:///dev/zero", "not a regular file"),
        ("random://extra", "takes no path"),
        ("scripted://dancer", "unknown scripted policy 'dancer'"),
    ],
)
def test_bad_uris_give_one_clear_message(uri: str, fragment: str) -> None:
    with pytest.raises(PolicyLoadError, match=fragment):
        load_policy(uri)


def test_labels_are_readable() -> None:
    assert policy_label("file://runs/abc/navigator.pt") == "navigator"
    assert policy_label("random://") == "random"
    assert policy_label("scripted://navigator") == "navigator"


def test_nan_policy_is_a_clear_error_naming_the_policy(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / "nan.pt")
    checkpoint = read_checkpoint(path)
    checkpoint.state_dict["actor.bias"] = torch.full_like(checkpoint.state_dict["actor.bias"], float("nan"))
    save_checkpoint(checkpoint, path)
    actor = load_policy(str(path)).actor(grid_env_spec(tmp_path, EASY_MAP))
    actor.reset(np.arange(2, dtype=np.uint64))
    observations = np.full((2, 200, 3), 255, dtype=np.uint8)
    with pytest.raises(RuntimeError, match=r"nan\.pt produced non-finite logits \(NaN or inf\) at step 0"):
        actor.act(observations, np.arange(2), 0)


def test_nan_policy_fails_its_tasks_and_keeps_others(pytester: pytest.Pytester, tmp_path: Path) -> None:
    from helpers import MINI_SUITE, write_suite

    path = make_checkpoint(tmp_path / "nan.pt")
    checkpoint = read_checkpoint(path)
    checkpoint.state_dict["actor.weight"] = torch.full_like(
        checkpoint.state_dict["actor.weight"], float("nan")
    )
    save_checkpoint(checkpoint, path)
    write_suite(pytester.path, MINI_SUITE)
    result = pytester.runpytest("--policy-uri", str(path), "--policy-uri", "random://")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        ["*nav/easy [[]nan[]]: PolicyOutputError: policy * produced non-finite logits*"]
    )


def test_features_are_mapped_by_name_not_id(tmp_path: Path) -> None:
    """A policy whose feature list is in another order sees the same observation in its own layout."""
    from pytest_policyeval.policies.observations import TokenEncoder

    spec = grid_env_spec(tmp_path, EASY_MAP)
    names = [n for n in spec.feature_names if n and n != "tag"]
    reordered = list(reversed(names))
    wall = spec.tag_names.index("type:wall")
    tokens = np.full((1, 8, 3), 255, dtype=np.uint8)
    tokens[0, 0] = [0x55, spec.feature_id("tag"), wall]  # a wall at the centre cell (5, 5)
    tokens[0, 1] = [0xFE, spec.feature_id("last_action"), 3]
    straight = TokenEncoder(spec, names, list(spec.tag_names), 11, torch.ones(len(names)))
    flipped = TokenEncoder(spec, reordered, list(reversed(spec.tag_names)), 11, torch.ones(len(names)))
    box_a, glob_a = straight(torch.from_numpy(tokens))
    box_b, glob_b = flipped(torch.from_numpy(tokens))
    assert glob_a[0, names.index("last_action")] == 3 and glob_b[0, reordered.index("last_action")] == 3
    tags = len(spec.tag_names)
    assert box_a[0, len(names) + wall, 5, 5] == 1
    assert box_b[0, len(names) + (tags - 1 - wall), 5, 5] == 1
    assert box_a.sum() == box_b.sum() == 1
