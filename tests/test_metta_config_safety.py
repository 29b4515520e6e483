"""A config names architectures from a closed vocabulary: nothing it says is imported or called.

The payloads are the ones that worked against a general `instantiate`: `torch.load` of a pickle
with `weights_only: false`, `builtins.open` in write mode, `os.system`, and a module that acts
when it is imported. Each must be refused before anything runs, so the marker file never appears.
"""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import MINI_SUITE, write_suite

from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy
from pytest_policyeval.policies.metta.architecture import known_architectures
from pytest_policyeval.policies.metta.network import Policy, Recurrent


class _Payload:
    """Unpickling this (with weights_only=False) would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    network = Recurrent(Policy(cnn_channels=8, hidden_size=16, action_heads=(9, 10)), 16, 16)
    torch.save(network.state_dict(), path)
    return path


def _payloads(tmp_path: Path, marker: Path) -> dict[str, str]:
    pickled = tmp_path / "payload.pt"
    pickled.write_bytes(pickle.dumps(_Payload(marker)))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    module = tmp_path / "importme" / "evil.py"
    module.parent.mkdir()
    module.write_text(f"open({str(marker)!r}, 'w').close()\nclass Recurrent: pass\n")
    return {
        "torch.load": f"_target_: torch.load\nf: {pickled}\nweights_only: false\n",
        "builtins.open": f"_target_: builtins.open\nfile: {victim}\nmode: w\n",
        "os.system": f"_target_: os.system\ncommand: touch {marker}\n",
        "import": "_target_: evil.Recurrent\n",
        "nested": (
            "_target_: metta.agent.external.example.Recurrent\n"
            f"policy:\n  _target_: builtins.open\n  file: {victim}\n  mode: w\n"
        ),
        "under pytorch:": f"pytorch:\n  _target_: torch.load\n  f: {pickled}\n  weights_only: false\n",
    }


@pytest.mark.parametrize(
    "payload", ["torch.load", "builtins.open", "os.system", "import", "nested", "under pytorch:"]
)
def test_a_config_cannot_make_the_loader_import_or_call_anything(
    tmp_path: Path, payload: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "MARKER"
    config = tmp_path / "config.yaml"
    config.write_text(_payloads(tmp_path, marker)[payload])
    monkeypatch.syspath_prepend(str(tmp_path / "importme"))
    path = _checkpoint(tmp_path / "policy.pt")
    with pytest.raises(PolicyLoadError, match="unknown architecture") as error:
        load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=config))
    assert "metta.agent.external.example.Recurrent" in str(error.value)  # the known names are listed
    assert not marker.exists()
    assert "evil" not in sys.modules
    assert (tmp_path / "victim.txt").read_text() == "precious\n"


def test_the_known_names_are_the_registered_architectures_only() -> None:
    names = known_architectures()
    assert "metta.agent.external.example.Recurrent" in names
    assert not any(name.startswith(("torch.", "builtins.", "os.")) for name in names)


def test_a_suite_naming_a_malicious_config_runs_nothing(pytester: pytest.Pytester) -> None:
    marker = pytester.path / "MARKER"
    config = pytester.path / "suites" / "arch.yaml"
    config.parent.mkdir()
    config.write_text(_payloads(pytester.path, marker)["torch.load"])
    suite = write_suite(
        pytester.path, MINI_SUITE.replace("name: mini", "name: mini\npytorch_config: arch.yaml")
    )
    path = _checkpoint(pytester.path / "policy.pt")
    result = pytester.runpytest(str(suite), f"--policy-uri=pytorch://{path}", "-k", "easy")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown architecture '_target_: torch.load'*"])
    assert not marker.exists()


def test_metta_user_config_forms_build_the_checkpoint_architecture(tmp_path: Path) -> None:
    """Metta's `configs/user/*.yaml` form (policy built from the remaining keys), bare or under
    `pytorch:`, and the nested form, all describe the same network."""
    path = _checkpoint(tmp_path / "policy.pt")
    flat = "_target_: metta.agent.external.example.Recurrent\nhidden_size: 16\ncnn_channels: 8\n"
    nested = textwrap.dedent(
        """
        _target_: metta.agent.external.example.Recurrent
        input_size: 16
        hidden_size: 16
        policy:
          _target_: metta.agent.external.example.Policy
          cnn_channels: 8
          hidden_size: 16
        """
    )
    user = "pytorch:\n" + textwrap.indent(flat, "  ") + "other_setting: 3\n"
    networks = []
    for index, text in enumerate([flat, nested, user]):
        config = tmp_path / f"config{index}.yaml"
        config.write_text(text)
        networks.append(load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=config)).network)
    saved = torch.load(path, weights_only=True)
    for network in networks:
        assert set(network.state_dict()) == set(saved)
        assert all(torch.equal(network.state_dict()[key], saved[key]) for key in saved)
    # A size that contradicts the checkpoint is refused with both shapes, never run at random.
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(flat.replace("cnn_channels: 8", "cnn_channels: 128"))
    with pytest.raises(
        PolicyLoadError, match=r"'policy.network.0.weight'.*\(8, 22, 5, 5\).*\(128, 22, 5, 5\)"
    ):
        load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=wrong))
    typo = tmp_path / "typo.yaml"
    typo.write_text(flat + "cnn_chanels: 8\n")
    with pytest.raises(PolicyLoadError, match=r"unknown Policy keys \['cnn_chanels'\]"):
        load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=typo))
    assert os.environ.get("HYDRA_FULL_ERROR") is None
