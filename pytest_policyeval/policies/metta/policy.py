"""`pytorch://PATH`: a Metta external checkpoint (a bare state dict) as a batched policy.

Loading: read the state dict with `weights_only=True`, know the architecture (inferred from the
shapes, or built from `--pytorch-config`), and load the weights strictly: the first key whose
shape does not fit is named with both shapes. Random weights are never evaluated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytest_policyeval.envs.spec import EnvSpec
from pytest_policyeval.policies.base import Actor, Policy, PolicyLoadError
from pytest_policyeval.policies.checkpoint import FORMAT, file_digest
from pytest_policyeval.policies.metta.adapter import ActionMap, ObservationMap
from pytest_policyeval.policies.metta.architecture import build_from_config, build_inferred, read_config
from pytest_policyeval.policies.metta.names import METTA_ACTION_TYPES, METTA_FEATURES, METTA_TYPE_IDS
from pytest_policyeval.policies.metta.network import Recurrent
from pytest_policyeval.policies.metta.sparse_encoder import SparseEncoder
from pytest_policyeval.policies.observations import used_tokens
from pytest_policyeval.policies.sampling import check_finite, gumbel_noise
from pytest_policyeval.policies.torch_policy import load_state_strict, network_on, torch_device

log = logging.getLogger(__name__)

LSTM_KEYS = {
    "weight_ih_l0": "weight_ih",
    "weight_hh_l0": "weight_hh",
    "bias_ih_l0": "bias_ih",
    "bias_hh_l0": "bias_hh",
}


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
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None
        self.seeds = np.zeros(0, dtype=np.uint64)
        self.orientation = np.zeros(0, dtype=np.int8)

    def reset(self, slot_seeds: np.ndarray) -> None:
        self.seeds = np.asarray(slot_seeds, dtype=np.uint64)
        self.state = self.network.initial_state(len(self.seeds), self.device)
        self.orientation = np.zeros(len(self.seeds), dtype=np.int8)

    def _tokens(self, observations: np.ndarray, slots: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = torch.from_numpy(used_tokens(observations)).to(self.device, non_blocking=True)
        return tokens, torch.from_numpy(self.orientation[slots]).to(self.device)

    @torch.inference_mode()
    def observe(self, observations: np.ndarray, slots: np.ndarray) -> torch.Tensor:
        """The policy's feature box `[rows, C, W, W]` for these rows' tokens."""
        return self.observe_map(*self._tokens(observations, slots))

    @torch.inference_mode()
    def decide(self, box: torch.Tensor, slots: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample (action type, argument) for each row from its box; advances the recurrent state."""
        return self._sample(self.network.policy.encode(box), slots, step)

    def _sample(self, encoded: torch.Tensor, slots: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.state is not None, "reset() before act()"
        index = torch.from_numpy(np.asarray(slots, dtype=np.int64)).to(self.device)
        hidden, cell = self.state
        logits, _value, (new_hidden, new_cell) = self.network.advance(encoded, (hidden[index], cell[index]))
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
        """Environment actions for (type, argument) pairs; updates the tracked orientations."""
        env_actions, self.orientation[slots] = self.actions(kinds, args, self.orientation[slots])
        return env_actions

    @torch.inference_mode()
    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        # Tokens go straight into the encoder; the box is built only for `observe` (training).
        encoded = self.encoder(*self.observe_map.cells(*self._tokens(observations, slots)))
        return self.apply(*self._sample(encoded, slots, step), slots)


class MettaPolicy(Policy):
    def __init__(
        self,
        uri: str,
        name: str,
        network: Recurrent,
        feature_names: list[str],
        action_types: list[str],
        type_ids: dict[str, int],
        info: dict[str, Any],
    ):
        self.uri = uri
        self.name = name
        self.network = network.eval()
        self.feature_names = feature_names
        self.action_types = action_types
        self.type_ids = type_ids
        self.info = info

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        return MettaActor(self, env, torch_device(device))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise PolicyLoadError(f"{path}: cannot read as a PyTorch state dict: {exc}") from None
    if isinstance(raw, Mapping) and raw.get("format") == FORMAT:
        raise PolicyLoadError(f"{path}: this is a pytest-policyeval checkpoint; use file://{path}")
    if not isinstance(raw, Mapping) or not all(isinstance(value, torch.Tensor) for value in raw.values()):
        raise PolicyLoadError(f"{path}: expected a state dict (names to tensors), got {type(raw).__name__}")
    return dict(raw)


def complete_recurrent_keys(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """PufferLib saves the LSTM twice (`lstm.*` and the shared `cell.*`); accept either or both."""
    state = dict(state)
    for lstm_name, cell_name in LSTM_KEYS.items():
        lstm_key, cell_key = f"lstm.{lstm_name}", f"cell.{cell_name}"
        if lstm_key in state and cell_key in state:
            same = state[lstm_key].shape == state[cell_key].shape and torch.equal(
                state[lstm_key], state[cell_key]
            )
            if not same:
                raise PolicyLoadError(
                    f"{source}: '{lstm_key}' and '{cell_key}' should be one shared tensor but differ"
                )
        elif lstm_key in state:
            state[cell_key] = state[lstm_key]
        elif cell_key in state:
            state[lstm_key] = state[cell_key]
    return state


def _names(
    config: dict[str, Any], key: str, default: tuple[str, ...], size: int, what: str, source: str
) -> list[str]:
    if key in config:
        names = [str(name) for name in config[key]]
        if len(names) != size:
            raise PolicyLoadError(
                f"{source}: '{key}' lists {len(names)} names but the checkpoint has {size} {what}"
            )
        return names
    if size > len(default):
        raise PolicyLoadError(
            f"{source}: the checkpoint has {size} {what}, Metta's defaults name {len(default)}; "
            f"list them as '{key}' in --pytorch-config"
        )
    return list(default[:size])


def load_pytorch_policy(uri: str, path: Path, name: str, config_path: Path | None = None) -> MettaPolicy:
    source = str(path)
    state = complete_recurrent_keys(read_state_dict(path), source)
    if config_path is not None:
        config = read_config(config_path)
        network, arch = build_from_config(config, f"{source} with --pytorch-config {config_path}")
    else:
        config = {}
        network, arch = build_inferred(state, source)
    load_state_strict(network, state, source)
    heads = network.policy.action_heads
    if len(heads) > 2:
        raise PolicyLoadError(f"{source}: {len(heads)} action heads; Metta policies have one or two")
    type_ids = {str(k): int(v) for k, v in config.get("type_ids", METTA_TYPE_IDS).items()}
    return MettaPolicy(
        uri=uri,
        name=name,
        network=network,
        feature_names=_names(
            config, "feature_names", METTA_FEATURES, network.obs_channels, "observation channels", source
        ),
        action_types=_names(config, "action_types", METTA_ACTION_TYPES, heads[0], "action types", source),
        type_ids=type_ids,
        info={
            "kind": "metta-external",
            "path": source,
            "digest": file_digest(path),
            "architecture": arch,
            "config": str(config_path) if config_path else None,
        },
    )
