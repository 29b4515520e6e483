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
