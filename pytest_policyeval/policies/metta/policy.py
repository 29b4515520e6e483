"""`pytorch://PATH`: a Metta external checkpoint (a bare state dict) as a batched policy.

Loading: read the state dict safely and within bounds (`torch_files`), bring its layout to
PufferLib 3.0's (`layouts`), know the architecture (inferred from the shapes, or built from
`--pytorch-config`) and load the weights strictly: the first key whose shape does not fit is
named with both shapes. Random weights are never evaluated. The preset (`presets`) says what
the engine the policy was trained on meant by each channel and action type.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytest_policyeval.policies.base import Actor, Policy, PolicyLoadError, token_spec
from pytest_policyeval.policies.blocks import in_fixed_blocks
from pytest_policyeval.policies.checkpoint import FORMAT, file_digest
from pytest_policyeval.policies.metta.adapter import DERIVED, ActionMap, ObservationMap
from pytest_policyeval.policies.metta.architecture import build_from_config, build_inferred, read_config
from pytest_policyeval.policies.metta.layouts import LAYOUTS, to_puffer3
from pytest_policyeval.policies.metta.network import Recurrent
from pytest_policyeval.policies.metta.presets import Preset, get_preset
from pytest_policyeval.policies.metta.sparse_encoder import SparseEncoder
from pytest_policyeval.policies.observations import EMPTY_TOKEN, used_tokens
from pytest_policyeval.policies.sampling import check_finite, gumbel_noise
from pytest_policyeval.policies.steady import read_steadily
from pytest_policyeval.policies.torch_files import check_weights, load_torch_file, unwrap_state_dict
from pytest_policyeval.policies.torch_policy import load_state_strict, network_on, torch_device
from pytest_policyeval.spec import EnvSpec

log = logging.getLogger(__name__)

ORIENTATION, COMPLETION, LAST_ACTION, LAST_ARG, LAST_REWARD = (
    DERIVED.index(name)
    for name in (
        "agent:orientation",
        "episode_completion_pct",
        "last_action",
        "last_action_arg",
        "last_reward",
    )
)


class MettaActor(Actor):
    def __init__(self, policy: MettaPolicy, env: EnvSpec, device: str):
        self.policy = policy
        self.device = torch.device(device)
        self.network = network_on(policy.network, self.device)
        self.observe_map = ObservationMap(
            env, policy.feature_names, policy.type_ids, self.network.window, policy.uri
        ).to(self.device)
        # Built per actor, from the weights as they are now (a training loop may change them).
        self.encoder = SparseEncoder(self.network.policy)
        heads = self.network.policy.action_heads
        self.heads = heads
        self.actions = ActionMap(env, policy.action_types, heads[1] if len(heads) > 1 else 0, policy.uri)
        self.max_steps = max(env.max_steps, 1)
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None
        self.seeds = np.zeros(0, dtype=np.uint64)
        # Per slot, what Metta's engine reported back to the policy: columns in DERIVED's order.
        self.memory = np.zeros((0, len(DERIVED)), dtype=np.float32)
        self.columns = [DERIVED.index(name) for name in self.observe_map.derived]

    def reset(self, slot_seeds: np.ndarray) -> None:
        self.seeds = np.asarray(slot_seeds, dtype=np.uint64)
        self.state = self.network.initial_state(len(self.seeds), self.device)
        self.memory = np.zeros((len(self.seeds), len(DERIVED)), dtype=np.float32)

    @property
    def orientation(self) -> np.ndarray:
        return self.memory[:, ORIENTATION].astype(np.int8)

    def rewarded(self, rewards: np.ndarray, slots: np.ndarray) -> None:
        encode = self.policy.preset.reward_value
        self.memory[slots, LAST_REWARD] = [encode(float(reward)) for reward in rewards]

    def _inputs(
        self, observations: np.ndarray, slots: np.ndarray, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Metta's padding rule needs to know whether a row had free slots before they are cut.
        padded = torch.from_numpy(observations[:, -1, 0] == EMPTY_TOKEN)
        tokens = torch.from_numpy(used_tokens(observations))
        memory = self.memory[slots]
        memory[:, COMPLETION] = np.floor(step / self.max_steps * 255.0 + 0.5)
        derived = torch.from_numpy(memory[:, self.columns])
        return tuple(part.to(self.device, non_blocking=True) for part in (tokens, derived, padded))

    @torch.inference_mode()
    def observe(self, observations: np.ndarray, slots: np.ndarray, step: int = 0) -> torch.Tensor:
        """The policy's feature box `[rows, C, W, W]` for these rows' tokens."""
        return self.observe_map(*self._inputs(observations, slots, step))

    @torch.inference_mode()
    def decide(self, box: torch.Tensor, slots: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample (action type, argument) for each row from its box; advances the recurrent state."""
        return self._sample(in_fixed_blocks(self.network.policy.encode, box), slots, step)

    def _sample(self, encoded: torch.Tensor, slots: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.state is not None, "reset() before act()"
        index = torch.from_numpy(np.asarray(slots, dtype=np.int64)).to(self.device)
        hidden, cell = self.state
        logits, _value, (new_hidden, new_cell) = in_fixed_blocks(
            lambda rows, h, c: self.network.advance(rows, (h, c)), encoded, hidden[index], cell[index]
        )
        hidden[index] = new_hidden
        cell[index] = new_cell
        joined = torch.cat(logits, dim=1)
        check_finite(joined, self.policy.uri, step, slots)
        scores = joined + gumbel_noise(self.seeds[slots], step, joined.shape[1], joined)
        parts = [part.argmax(dim=1) for part in scores.split(self.heads, dim=1)]
        kinds = parts[0]
        args = parts[1] if len(parts) > 1 else torch.zeros_like(kinds)
        return kinds.cpu().numpy(), args.cpu().numpy()

    def apply(self, kinds: np.ndarray, args: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Environment actions for (type, argument) pairs; remembers them and the new orientations."""
        env_actions, orientation = self.actions(kinds, args, self.orientation[slots])
        self.memory[slots, ORIENTATION] = orientation
        self.memory[slots, LAST_ACTION] = kinds
        self.memory[slots, LAST_ARG] = args
        return env_actions

    @torch.inference_mode()
    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        # Tokens go straight into the encoder; the box is built only for `observe` (training).
        encoded = in_fixed_blocks(
            lambda *inputs: self.encoder(*self.observe_map.cells(*inputs)),
            *self._inputs(observations, slots, step),
        )
        return self.apply(*self._sample(encoded, slots, step), slots)


class MettaPolicy(Policy):
    uses_torch = True

    def __init__(
        self,
        uri: str,
        name: str,
        network: Recurrent,
        feature_names: list[str],
        action_types: list[str],
        type_ids: dict[str, int],
        info: dict[str, Any],
        preset: Preset | None = None,
    ):
        self.uri = uri
        self.name = name
        self.network = network.eval()
        self.feature_names = feature_names
        self.action_types = action_types
        self.type_ids = type_ids
        self.info = info
        self.preset = preset or get_preset(None, uri)

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        return MettaActor(self, token_spec(env, self.uri), torch_device(device))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A bare (or unambiguously wrapped) state dict of floating-point tensors, read safely."""
    raw = load_torch_file(path)
    if isinstance(raw, Mapping) and raw.get("format") == FORMAT:
        raise PolicyLoadError(f"{path}: this is a pytest-policyeval checkpoint; use file://{path}")
    return check_weights(unwrap_state_dict(raw, str(path)), str(path))


def _names(
    config: dict[str, Any],
    key: str,
    preset_names: list[str] | tuple[str, ...],
    size: int,
    what: str,
    source: str,
) -> list[str]:
    if key in config:
        names = config[key]
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise PolicyLoadError(f"{source}: '{key}' must be a list of names")
        if len(names) != size:
            raise PolicyLoadError(
                f"{source}: '{key}' lists {len(names)} names but the checkpoint has {size} {what}"
            )
        return list(names)
    return list(preset_names)


def _type_ids(config: dict[str, Any], preset: Preset, source: str) -> dict[str, int]:
    raw = config.get("type_ids", preset.type_ids)
    valid = isinstance(raw, dict) and all(type(value) is int and 0 <= value <= 255 for value in raw.values())
    if not valid:
        raise PolicyLoadError(f"{source}: 'type_ids' must map object type names to integers from 0 to 255")
    return {str(name): int(value) for name, value in raw.items()}


def load_pytorch_policy(
    uri: str, path: Path, name: str, config_path: Path | None = None, preset: str | None = None
) -> MettaPolicy:
    # The digests are of the bytes the weights and the config came from.
    with read_steadily(str(path), path, config_path):
        return _load_pytorch_policy(uri, path, name, config_path, preset)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _load_pytorch_policy(
    uri: str, path: Path, name: str, config_path: Path | None, preset: str | None
) -> MettaPolicy:
    source = str(path)
    state, layout = to_puffer3(read_state_dict(path), source)
    config: dict[str, Any] = read_config(config_path) if config_path is not None else {}
    if not isinstance(config.get("preset", ""), str):
        raise PolicyLoadError(f"{source}: 'preset' in {config_path} must be a name")
    try:
        if config_path is not None:
            network, arch = build_from_config(config, state, f"{source} with --pytorch-config {config_path}")
        else:
            network, arch = build_inferred(state, source)
        load_state_strict(network, state, source)
    except PolicyLoadError as exc:
        if layout == "puffer3":
            raise
        raise PolicyLoadError(
            f"{exc} (read as a {LAYOUTS[layout]} checkpoint, whose policy may differ from Metta's "
            "external Policy: give its architecture in --pytorch-config)"
        ) from None
    heads = network.policy.action_heads
    if len(heads) > 2:
        raise PolicyLoadError(f"{source}: {len(heads)} action heads; Metta policies have one or two")
    chosen = get_preset(preset or config.get("preset"), source)
    if "action_types" not in config and heads[0] != len(chosen.action_types):
        raise PolicyLoadError(
            f"{source}: the action-type head has {heads[0]} outputs but preset '{chosen.name}' has "
            f"{len(chosen.action_types)} action types {list(chosen.action_types)}; choose another preset "
            "(--metta-preset) or list the checkpoint's 'action_types' in --pytorch-config"
        )
    feature_names = (
        chosen.feature_names(network.obs_channels, source) if "feature_names" not in config else []
    )
    return MettaPolicy(
        uri=uri,
        name=name,
        network=network,
        feature_names=_names(
            config, "feature_names", feature_names, network.obs_channels, "observation channels", source
        ),
        action_types=_names(config, "action_types", chosen.action_types, heads[0], "action types", source),
        type_ids=_type_ids(config, chosen, source),
        preset=chosen,
        info={
            "kind": "metta-external",
            "path": source,
            "digest": file_digest(path),
            "layout": layout,
            "preset": chosen.name,
            "architecture": arch,
            "config": str(config_path) if config_path else None,
            # Inside the load's bracket: the bytes the network was built from, whatever the file
            # says by the time a task's episodes are keyed.
            **({"config_sha256": _sha256(config_path)} if config_path else {}),
        },
    )
