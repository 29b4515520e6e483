"""A checkpoint replaced while it is read: the weights and their digest come from one file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import make_checkpoint

from pytest_policyeval.policies import PolicyLoadError, load_policy
from pytest_policyeval.policies.checkpoint import file_digest

REPO = Path(__file__).resolve().parents[1]
NAVIGATION = REPO / "examples" / "policies" / "navigation.pt"


def _swapping(monkeypatch, module, name: str, live: Path, files: list[Path], times: int) -> list[int]:
    """Make `module.name` (a reader the loader calls) replace `live` by the next of `files`
    right after it has read it, the first `times` times (as a trainer's atomic save would)."""
    original = getattr(module, name)
    calls = [0]

    def reading(*args, **kwargs):
        found = original(*args, **kwargs)
        if calls[0] < times:
            staged = live.with_suffix(".new")
            shutil.copyfile(files[calls[0] % len(files)], staged)
            os.replace(staged, live)
        calls[0] += 1
        return found

    monkeypatch.setattr(module, name, reading)
    return calls


def _weights(policy) -> list[torch.Tensor]:
    return [p.detach().clone() for p in policy.network.parameters()]


@pytest.mark.parametrize("scheme", ["file", "pytorch"])
def test_a_checkpoint_replaced_while_read_is_read_again(monkeypatch, tmp_path: Path, scheme: str) -> None:
    if scheme == "file":
        import pytest_policyeval.policies.torch_policy as module

        reader = "read_checkpoint"
        first, second = make_checkpoint(tmp_path / "a.pt", seed=1), make_checkpoint(tmp_path / "b.pt", seed=2)
    else:
        import pytest_policyeval.policies.metta.policy as module

        reader = "read_state_dict"
        first, second = tmp_path / "a.pt", tmp_path / "b.pt"
        shutil.copyfile(NAVIGATION, first)
        state = torch.load(NAVIGATION, weights_only=True)
        torch.save({k: v + 0.5 if v.is_floating_point() else v for k, v in state.items()}, second)
    live = tmp_path / "live.pt"
    shutil.copyfile(first, live)
    uri = f"{scheme}://{live}"
    alone = _weights(load_policy(f"{scheme}://{second}"))
    # Replaced once, right after the weights were read: the load is refused and tried again,
    # and what is kept is the file now there, weights and digest alike.
    calls = _swapping(monkeypatch, module, reader, live, [second], times=1)
    policy = load_policy(uri)
    assert calls[0] == 2  # read twice
    assert policy.info["digest"] == file_digest(live) == file_digest(second)
    assert all(torch.equal(a, b) for a, b in zip(_weights(policy), alone, strict=True))
    # A file that keeps changing is one short error naming it, not weights under another's digest.
    _swapping(monkeypatch, module, reader, live, [first, second], times=10**6)
    with pytest.raises(PolicyLoadError, match=r"live\.pt changed while it was read"):
        load_policy(uri)


def test_a_pytorch_config_is_keyed_by_the_bytes_the_network_was_built_from(tmp_path: Path) -> None:
    # Read once as the policy loads; an edit later in the run (before a task's episodes are keyed)
    # must not key them by the new text, which a later run would then take for its own.
    import hashlib

    from test_metta_policies import save_metta

    from pytest_policyeval.gating import policy_identity
    from pytest_policyeval.policies import LoadOptions

    path, config = save_metta(tmp_path / "a.pt"), tmp_path / "arch.yaml"
    text = (
        "_target_: metta.agent.external.example.Recurrent\n"
        "policy:\n  _target_: metta.agent.external.example.Policy\n"
    )
    config.write_text(text)
    policy = load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=config))
    config.write_text(text.replace("Policy\n", "Policy\n  cnn_channels: 128\n"))
    identity = policy_identity(policy)
    assert identity["config_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert "config" not in identity  # by content, not by where it lies


def test_a_load_that_fails_because_the_file_changed_is_tried_again(monkeypatch, tmp_path: Path) -> None:
    # torch.save in place: the reader meets a half-written file and fails. The file changed while
    # it was read, so that failure is not the checkpoint's: the load is tried again.
    import pytest_policyeval.policies.torch_policy as module

    live = make_checkpoint(tmp_path / "live.pt", seed=1)
    original, calls = module.read_checkpoint, [0]

    def half_written(path):
        calls[0] += 1
        if calls[0] == 1:
            os.utime(path, ns=(0, 0))  # the writer touches it...
            raise PolicyLoadError(f"{path}: not a zip file")  # ...as the reader meets a torn file
        return original(path)

    monkeypatch.setattr(module, "read_checkpoint", half_written)
    policy = load_policy(f"file://{live}")
    assert calls[0] == 2 and policy.info["digest"] == file_digest(live)
    # A file that fails to load and does not change fails at once, with its own error.
    calls[0] = 1
    monkeypatch.setattr(
        module, "read_checkpoint", lambda path: (_ for _ in ()).throw(PolicyLoadError("torn"))
    )
    with pytest.raises(PolicyLoadError, match="torn"):
        load_policy(f"file://{live}")
