"""Knowing a Metta external checkpoint's architecture: inferred from tensor shapes, or from a config.

Inference reads every size from the state dict (observation channels, both CNN widths and
kernels, encoder widths, LSTM sizes, every head). Only the conv strides and the box size are not
stored in a state dict; they are solved from the flattened CNN output size, preferring Metta's
values (strides 3 and 1, an 11x11 box) when several fit, and can be pinned in a config.

A config is what Metta users wrote (`configs/user/*.yaml`, under `pytorch:` or bare):

    _target_: metta.agent.external.example.Recurrent
    hidden_size: 512
    cnn_channels: 128          # Metta built the Policy from the remaining keys (policy=None)

or the nested form, with `policy: {_target_: metta.agent.external.example.Policy, ...}`.
`_target_` is a name from a closed vocabulary, never a dotted path to import: the names in
`ARCHITECTURES`, and those a plugin or conftest registers through the
`pytest_policyeval_metta_architectures` hook (name = the `_target_`, value = a `build(config, state,
source)` returning a `Recurrent`). Anything else is refused before anything is imported or called.
Sizes a config leaves out are read from the checkpoint, as Metta read the heads from the env.
Naming keys (`feature_names`, `action_types`, `type_ids`, `preset`) are read off the top level.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from pytest_policyeval.policies.base import PolicyLoadError
from pytest_policyeval.policies.metta.network import Policy, Recurrent, conv_output

log = logging.getLogger(__name__)

NAMING_KEYS = ("feature_names", "action_types", "type_ids", "preset")
METTA_STRIDES = (3, 1)
METTA_WINDOW = 11
HOOK = "pytest_policyeval_metta_architectures"  # where other packages add `_target_` names
# Keyword arguments of this package's `Policy` (upstream's are `cnn_channels` and `hidden_size`).
POLICY_KEYS = (
    "obs_channels", "cnn_channels", "hidden_size", "window", "kernel_sizes", "strides",
    "cnn_hidden", "self_hidden", "action_heads",
)  # fmt: skip
RECURRENT_KEYS = ("input_size", "hidden_size", "policy")

Builder = Callable[[dict[str, Any], Mapping[str, torch.Tensor], str], Recurrent]


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


def infer_architecture(
    state: Mapping[str, torch.Tensor], source: str, pinned: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Constructor arguments of `Policy` and `Recurrent`, read from the state dict's shapes.

    `pinned` window and strides (from a config) are taken as given instead of solved for.
    """
    pinned = pinned or {}
    conv1 = _shape(state, "policy.network.0.weight", source)
    conv2 = _shape(state, "policy.network.2.weight", source)
    linear = _shape(state, "policy.network.5.weight", source)
    own = _shape(state, "policy.self_encoder.0.weight", source)
    heads = []
    while f"policy.actor.{len(heads)}.weight" in state:
        heads.append(_shape(state, f"policy.actor.{len(heads)}.weight", source))
    if not heads:
        raise PolicyLoadError(f"{source}: not a Metta external policy: no 'policy.actor.0.weight'")
    weight_ih = _shape(state, "lstm.weight_ih_l0", source)
    weight_hh = _shape(state, "lstm.weight_hh_l0", source)
    if len(conv1) != 4 or len(conv2) != 4 or len(linear) != 2 or len(own) != 2 or len(weight_ih) != 2:
        raise PolicyLoadError(
            f"{source}: the encoder's tensors do not have Metta's ranks (conv 4-D, linear 2-D)"
        )
    kernels = (conv1[2], conv2[2])
    if "window" in pinned and "strides" in pinned:
        window, strides = pinned["window"], tuple(pinned["strides"])
    else:
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


def _build(arch: dict[str, Any], source: str, state: Mapping[str, torch.Tensor]) -> Recurrent:
    """The network, allocated only once its shapes are known to fit the checkpoint's.

    A small file can describe a huge network (a (1, 32768) tensor makes a 17 GB LSTM), so it is
    first built on the meta device, which allocates nothing, and compared with the state dict.
    An LSTM size left as None follows the policy (what it encodes, what it reads).
    """
    from pytest_policyeval.policies.torch_policy import check_shapes

    def build() -> Recurrent:
        policy = Policy(**arch["policy"])
        input_size = arch.get("input_size") or policy.encoded_size
        return Recurrent(policy, input_size, arch.get("hidden_size") or policy.hidden_size)

    try:
        with torch.device("meta"):
            check_shapes(build(), dict(state), source)
        return build()
    except (ValueError, TypeError, RuntimeError, ArithmeticError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise PolicyLoadError(f"{source}: inconsistent Metta architecture: {reason}") from None


def build_inferred(state: Mapping[str, torch.Tensor], source: str) -> tuple[Recurrent, dict[str, Any]]:
    arch = infer_architecture(state, source)
    return _build(arch, source, state), arch


# -- configs ----------------------------------------------------------------------------------------


MAX_CONFIG_BYTES = 1 << 20


def read_config(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise PolicyLoadError(f"--pytorch-config {path}: over {MAX_CONFIG_BYTES >> 20} MB: not a config")
        raw = yaml.safe_load(text.decode("utf-8"))
    except OSError as exc:
        raise PolicyLoadError(f"--pytorch-config {path}: cannot read: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise PolicyLoadError(f"--pytorch-config {path}: not valid YAML: {first}") from None
    except RecursionError:
        raise PolicyLoadError(f"--pytorch-config {path}: nests too deeply") from None
    if isinstance(raw, dict) and isinstance(raw.get("pytorch"), dict) and "_target_" not in raw:
        raw = raw["pytorch"]  # a Metta user config, with the architecture under `pytorch:`
    if not isinstance(raw, dict) or "_target_" not in raw:
        raise PolicyLoadError(f"--pytorch-config {path}: expected a mapping with a '_target_' key")
    return raw


# What a config may say of each size: (smallest, largest, how many numbers; 0 = one or a list of 2).
SIZE_RULES = {
    "obs_channels": (1, 255, 1), "hidden_size": (1, 1 << 16, 1), "cnn_hidden": (1, 1 << 16, 1),
    "self_hidden": (1, 1 << 16, 1), "input_size": (1, 1 << 16, 1), "cnn_channels": (1, 1 << 16, 0),
    "window": (1, 15, 1), "kernel_sizes": (1, 15, 2), "strides": (1, 15, 2), "action_heads": (1, 4096, -1),
}  # fmt: skip


def _check_size(key: str, value: Any, source: str) -> None:
    """Sizes are positive integers in sane bounds (a window is at most 15: coordinates are 4 bits)."""
    low, high, count = SIZE_RULES[key]
    numbers = value if isinstance(value, list) else [value]
    shape_ok = (
        (count == 1 and not isinstance(value, list))
        or (count == 2 and isinstance(value, list) and len(value) == 2)
        or (count == 0 and (not isinstance(value, list) or len(value) == 2))
        or (count == -1 and isinstance(value, list) and 1 <= len(value) <= 2)
    )
    if not shape_ok or not all(type(n) is int and low <= n <= high for n in numbers):
        wanted = {
            1: "an integer",
            2: "a list of 2 integers",
            0: "an integer or a list of 2",
            -1: "a list of 1 or 2",
        }
        raise PolicyLoadError(
            f"{source}: '{key}' must be {wanted[count]} from {low} to {high}, got {str(value)[:60]}"
        )


def _config_policy(
    kwargs: dict[str, Any], state: Mapping[str, torch.Tensor], source: str, hidden: Any = None
) -> dict[str, Any]:
    """Policy arguments: the config's, and the checkpoint's for what the config leaves out.

    As in Metta's `Policy`, a configured `hidden_size` sets both encoders' widths (half of it)
    and a configured `cnn_channels` both convolutions' unless given separately.
    """
    unknown = sorted(set(kwargs) - set(POLICY_KEYS))
    if unknown:
        raise PolicyLoadError(f"{source}: unknown Policy keys {unknown[:5]}; known: {list(POLICY_KEYS)}")
    for key, value in kwargs.items():
        _check_size(key, value, source)
    if hidden is not None:
        kwargs = {"hidden_size": hidden, **kwargs}
    inferred = infer_architecture(state, source, kwargs)["policy"]
    if "hidden_size" in kwargs:
        for key in ("cnn_hidden", "self_hidden"):
            inferred.pop(key)
    return {"policy": {**inferred, **kwargs}, "input_size": None, "hidden_size": None}


def _recurrent(config: dict[str, Any], state: Mapping[str, torch.Tensor], source: str) -> Recurrent:
    """Metta's `instantiate(cfg, env=env, policy=None)` of its external `Recurrent`."""
    kwargs = {key: value for key, value in config.items() if key != "_target_"}
    nested = kwargs.pop("policy", None)
    sizes = {key: kwargs.pop(key) for key in ("input_size", "hidden_size") if key in kwargs}
    for key, value in sizes.items():
        _check_size(key, value, source)
    if nested is None:  # Recurrent built the Policy from the remaining keys
        arch = _config_policy(kwargs, state, source, sizes.get("hidden_size"))
    else:
        if kwargs:
            raise PolicyLoadError(
                f"{source}: unknown Recurrent keys {sorted(kwargs)}; known: {list(RECURRENT_KEYS)}"
            )
        if not isinstance(nested, dict) or _target(nested, source) not in POLICY_TARGETS:
            raise PolicyLoadError(
                f"{source}: 'policy' must be a mapping with _target_ one of {POLICY_TARGETS}"
            )
        arch = _config_policy({k: v for k, v in nested.items() if k != "_target_"}, state, source)
    return _build({**arch, **sizes}, source, state)


def _policy_alone(config: dict[str, Any], state: Mapping[str, torch.Tensor], source: str) -> Recurrent:
    raise PolicyLoadError(
        f"{source}: the config's _target_ is a Policy; pytorch:// needs a Recurrent "
        "(metta.agent.external.example.Recurrent) wrapping a Policy"
    )


RECURRENT_TARGETS = (
    "metta.agent.external.example.Recurrent",
    "pytest_policyeval.policies.metta.network.Recurrent",
)
POLICY_TARGETS = ("metta.agent.external.example.Policy", "pytest_policyeval.policies.metta.network.Policy")
ARCHITECTURES: dict[str, Builder] = {
    **dict.fromkeys(RECURRENT_TARGETS, _recurrent),
    **dict.fromkeys(POLICY_TARGETS, _policy_alone),
}


def _target(node: Mapping[str, Any], source: str) -> str:
    target = node.get("_target_")
    if not isinstance(target, str):
        raise PolicyLoadError(f"{source}: '_target_' must be a name, got {type(target).__name__}")
    return target


def _registered() -> dict[str, Any]:
    from pytest_policyeval import registry

    return registry.table(HOOK)


def known_architectures() -> list[str]:
    return sorted(set(ARCHITECTURES) | set(_registered()))


def builder_for(target: str, source: str) -> Builder:
    """The builder registered for `target`; nothing is imported for an unknown name."""
    if target in ARCHITECTURES:
        return ARCHITECTURES[target]
    if target in _registered():
        from pytest_policyeval import registry

        return registry.lookup(HOOK, target, "architecture")
    raise PolicyLoadError(
        f"{source}: unknown architecture '_target_: {target[:120]}'; a config names one of "
        f"{known_architectures()} (other packages add names through the '{HOOK}' hook)"
    )


def _check_targets(node: Any, source: str, seen: set[int] | None = None) -> None:
    """Every `_target_` anywhere in the config must be a known name, before anything is built.

    YAML aliases make one node appear many times (a 1 KB file can hold 10^9 references): each
    node is checked once.
    """
    seen = set() if seen is None else seen
    if id(node) in seen or not isinstance(node, dict | list):
        return
    seen.add(id(node))
    if isinstance(node, dict):
        if "_target_" in node:
            target = _target(node, source)
            if target not in ARCHITECTURES and target not in _registered():
                builder_for(target, source)  # raises, naming the known names
        values = node.values()
    else:
        values = node
    for value in values:
        _check_targets(value, source, seen)


def build_from_config(
    config: dict[str, Any], state: Mapping[str, torch.Tensor], source: str
) -> tuple[Recurrent, dict[str, Any]]:
    """The network a config describes; sizes it leaves out come from the checkpoint."""
    arch = {key: value for key, value in config.items() if key not in NAMING_KEYS}
    _check_targets(arch, source)
    module = builder_for(_target(arch, source), source)(arch, state, source)
    if not isinstance(module, Recurrent):
        raise PolicyLoadError(
            f"{source}: the config's _target_ built a {type(module).__name__}; pytorch:// needs "
            "a Recurrent (metta.agent.external.example.Recurrent) wrapping a Policy"
        )
    return module, arch
