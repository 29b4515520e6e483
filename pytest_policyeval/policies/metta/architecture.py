"""Knowing a Metta external checkpoint's architecture: inferred from tensor shapes, or from a config.

Inference reads every size from the state dict (observation channels, both CNN widths and
kernels, encoder widths, LSTM sizes, every head). Only the conv strides and the box size are not
stored in a state dict; they are solved from the flattened CNN output size, preferring Metta's
values (strides 3 and 1, an 11x11 box) when several fit, and can be pinned in a config.

A config is Hydra-style YAML: `_target_` names a class, nested mappings with their own
`_target_` are built first and passed in (Metta's `policy:` inside `Recurrent`). Metta's class
paths (`metta.agent.external.example.Recurrent` / `.Policy`) resolve to this package's classes.
Three keys are not architecture but naming, and are read off the top level before building:
`feature_names`, `action_types` and `type_ids` (see `names.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from pytest_policyeval.policies.base import PolicyLoadError
from pytest_policyeval.policies.metta.network import Policy, Recurrent, conv_output

log = logging.getLogger(__name__)

METTA_TARGETS = {
    "metta.agent.external.example.Recurrent": "pytest_policyeval.policies.metta.network.Recurrent",
    "metta.agent.external.example.Policy": "pytest_policyeval.policies.metta.network.Policy",
}
NAMING_KEYS = ("feature_names", "action_types", "type_ids")
METTA_STRIDES = (3, 1)
METTA_WINDOW = 11


def _shape(state: Mapping[str, torch.Tensor], key: str, source: str) -> tuple[int, ...]:
    if key not in state:
        raise PolicyLoadError(f"{source}: not a Metta external policy: the state dict lacks '{key}'")
    return tuple(state[key].shape)


def _solve_box(
    flat: int, channels: int, kernels: tuple[int, int], source: str
) -> tuple[int, tuple[int, int]]:
    """The (window, strides) whose CNN output flattens to `flat` values, Metta's choice first."""
    if flat % channels:
        raise PolicyLoadError(
            f"{source}: 'policy.network.5.weight' reads {flat} values, not a multiple of the "
            f"{channels} channels of 'policy.network.2.weight'"
        )
    spatial = flat // channels
    fits = []
    for window in range(3, 16, 2):
        for first in range(1, 6):
            for second in range(1, 4):
                side = conv_output(conv_output(window, kernels[0], first), kernels[1], second)
                if side >= 1 and side * side == spatial:
                    fits.append((window, (first, second)))
    if not fits:
        raise PolicyLoadError(
            f"{source}: no box size from 3 to 15 and conv strides give a {spatial}-cell CNN output "
            f"with kernels {list(kernels)}; give 'window' and 'strides' in --pytorch-config"
        )
    fits.sort(key=lambda fit: (fit[1] != METTA_STRIDES, fit[0] != METTA_WINDOW, fit[0], fit[1]))
    return fits[0]


def infer_architecture(state: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """Constructor arguments of `Policy` and `Recurrent`, read from the state dict's shapes."""
    conv1 = _shape(state, "policy.network.0.weight", source)
    conv2 = _shape(state, "policy.network.2.weight", source)
    linear = _shape(state, "policy.network.5.weight", source)
    own = _shape(state, "policy.self_encoder.0.weight", source)
    heads = []
    while f"policy.actor.{len(heads)}.weight" in state:
        heads.append(_shape(state, f"policy.actor.{len(heads)}.weight", source))
    if not heads:
        raise PolicyLoadError(f"{source}: not a Metta external policy: no 'policy.actor.0.weight'")
    prefix = "lstm" if "lstm.weight_ih_l0" in state else "cell"
    suffix = "_l0" if prefix == "lstm" else ""
    weight_ih = _shape(state, f"{prefix}.weight_ih{suffix}", source)
    weight_hh = _shape(state, f"{prefix}.weight_hh{suffix}", source)
    kernels = (conv1[2], conv2[2])
    window, strides = _solve_box(linear[1], conv2[0], kernels, source)
    policy = {
        "obs_channels": conv1[1],
        "cnn_channels": [conv1[0], conv2[0]],
        "hidden_size": heads[0][1],
        "window": window,
        "kernel_sizes": list(kernels),
        "strides": list(strides),
        "cnn_hidden": linear[0],
        "self_hidden": own[0],
        "action_heads": [head[0] for head in heads],
    }
    recurrent = {"input_size": weight_ih[1], "hidden_size": weight_hh[1]}
    log.info("%s: inferred Metta architecture: policy %s, lstm %s", source, policy, recurrent)
    return {"policy": policy, **recurrent}


def build_inferred(state: Mapping[str, torch.Tensor], source: str) -> tuple[Recurrent, dict[str, Any]]:
    arch = infer_architecture(state, source)
    try:
        return Recurrent(Policy(**arch["policy"]), arch["input_size"], arch["hidden_size"]), arch
    except ValueError as exc:
        raise PolicyLoadError(f"{source}: inconsistent Metta architecture: {exc}") from None


# -- configs ----------------------------------------------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyLoadError(f"--pytorch-config {path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PolicyLoadError(f"--pytorch-config {path}: not valid YAML: {exc}") from None
    if isinstance(raw, dict) and "pytorch" in raw and "_target_" not in raw:
        raw = raw["pytorch"]  # a Metta user config, with the architecture under `pytorch:`
    if not isinstance(raw, dict) or "_target_" not in raw:
        raise PolicyLoadError(f"--pytorch-config {path}: expected a mapping with a '_target_' key")
    return raw


def _metta_targets(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: _metta_targets(value) for key, value in node.items()}
        if node.get("_target_") in METTA_TARGETS:
            node["_target_"] = METTA_TARGETS[node["_target_"]]
        return node
    if isinstance(node, list):
        return [_metta_targets(value) for value in node]
    return node


def build_from_config(config: dict[str, Any], source: str) -> tuple[Recurrent, dict[str, Any]]:
    """Instantiate a Hydra-style config (nested `_target_`s built depth first)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    arch = {key: value for key, value in config.items() if key not in NAMING_KEYS}
    try:
        module = instantiate(_metta_targets(arch), _convert_="all")
    except InstantiationException as exc:
        raise PolicyLoadError(f"{source}: cannot build the configured architecture: {exc}") from None
    if not isinstance(module, Recurrent):
        raise PolicyLoadError(
            f"{source}: the config's _target_ built a {type(module).__name__}; pytorch:// needs "
            "a Recurrent (metta.agent.external.example.Recurrent) wrapping a Policy"
        )
    return module, arch
