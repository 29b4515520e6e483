"""Running a Metta-format policy on a mettagrid 0.26 task: features by name, actions with orientation.

Observations. Each of the policy's feature names is looked up among the environment's features.
Three names have no engine feature of their own and are derived here:
    type_id            from the engine's `type:<name>` tags, numbered by `type_ids`
    agent:orientation  the orientation this adapter tracks, on the agent's own cell
    inv:<N>            the N-th resource of the task (inventory features are named by resource)
Global tokens go to the agent's own cell, where Metta put them. Any other feature the engine does
not emit reads as zero; the list is logged once per (policy, task layout).

Actions. Metta's heads give (action type, argument) and agents have an orientation; mettagrid 0.26
moves in absolute directions. Per agent slot the adapter keeps the orientation (Up at the start):
    move 0 / 1       step forward / backward, keeping the facing
    rotate k         face orientation k (the engine sees a noop)
    attack, get_items, put_items
                     act on the cell in front, which in mettagrid means walking into it
                     (tags an opponent there, collects from a goal)
    noop, swap, change_color, change_glyph, invalid arguments: noop
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from pytest_policyeval.envs.spec import EnvSpec
from pytest_policyeval.policies.base import PolicyLoadError
from pytest_policyeval.policies.metta.names import OPPOSITE, ORIENTATIONS

log = logging.getLogger(__name__)

EMPTY_TOKEN = 0xFF
GLOBAL_TOKEN = 0xFE
TYPE_PREFIX = "type:"
_logged: set[tuple[str, ...]] = set()


def resolve_type_ids(tag_names: Sequence[str], type_ids: dict[str, int]) -> dict[str, int]:
    """Ids for every `type:` tag of the task; types missing from the table get fresh ids."""
    ids = dict(type_ids)
    next_id = max(ids.values(), default=-1) + 1
    for tag in sorted(tag_names):
        if tag.startswith(TYPE_PREFIX) and tag[len(TYPE_PREFIX) :] not in ids:
            ids[tag[len(TYPE_PREFIX) :]] = next_id
            next_id += 1
    return ids


class ObservationMap(torch.nn.Module):
    """Tokens `[B, T, 3]` of one task -> the policy's raw feature box `[B, C, W, W]`."""

    def __init__(
        self,
        env: EnvSpec,
        feature_names: Sequence[str],
        type_ids: dict[str, int],
        window: int,
        source: str,
    ):
        super().__init__()
        self.window = window
        self.num_channels = len(feature_names)
        env_feature = {name: index for index, name in enumerate(env.feature_names) if name}
        for index, resource in enumerate(env.resource_names):
            env_feature.setdefault(f"inv:{index}", env_feature.get(f"inv:{resource}", -1))
        feature_lut = torch.full((256,), -1, dtype=torch.long)
        missing = []
        self.type_channel = self.orientation_channel = -1
        for channel, name in enumerate(feature_names):
            if name == "type_id":
                self.type_channel = channel
            elif name == "agent:orientation":
                self.orientation_channel = channel
            elif env_feature.get(name, -1) >= 0:
                feature_lut[env_feature[name]] = channel
            else:
                missing.append(name)
        key = (source, *env.feature_names, *feature_names)
        if missing and key not in _logged:
            _logged.add(key)
            log.info("%s: features this task does not emit read as zero: %s", source, missing)
        type_lut = torch.full((256,), -1, dtype=torch.long)
        ids = resolve_type_ids(env.tag_names, type_ids)
        for value, tag in enumerate(env.tag_names):
            if tag.startswith(TYPE_PREFIX):
                type_lut[value] = ids[tag[len(TYPE_PREFIX) :]]
        self.tag_feature = env_feature.get("tag", -1)
        self.register_buffer("feature_lut", feature_lut)
        self.register_buffer("type_lut", type_lut)
        self.row_offset = (window - env.obs_height) // 2
        self.col_offset = (window - env.obs_width) // 2
        self.env_centre = ((env.obs_height // 2) << 4) | (env.obs_width // 2)

    def forward(self, tokens: torch.Tensor, orientation: torch.Tensor) -> torch.Tensor:
        batch = tokens.shape[0]
        tokens = tokens.long()
        coord, feature, value = tokens[..., 0], tokens[..., 1], tokens[..., 2]
        coord = torch.where(coord == GLOBAL_TOKEN, self.env_centre, coord)
        channel = self.feature_lut[feature]
        amount = value.float()
        if self.tag_feature >= 0 and self.type_channel >= 0:
            type_id = self.type_lut[value]
            is_type = (feature == self.tag_feature) & (type_id >= 0)
            channel = torch.where(is_type, self.type_channel, channel)
            amount = torch.where(is_type, type_id.float(), amount)
        rows = (coord >> 4) + self.row_offset
        cols = (coord & 0xF) + self.col_offset
        keep = (coord != EMPTY_TOKEN) & (channel >= 0)
        keep &= (rows >= 0) & (rows < self.window) & (cols >= 0) & (cols < self.window)
        batch_index = torch.arange(batch, device=tokens.device).unsqueeze(1).expand_as(coord)
        box = torch.zeros((batch, self.num_channels, self.window, self.window), device=tokens.device)
        box.index_put_(
            (batch_index[keep], channel[keep], rows[keep], cols[keep]), amount[keep], accumulate=True
        )
        if self.orientation_channel >= 0:
            centre = self.window // 2
            box[:, self.orientation_channel, centre, centre] = orientation.float()
        return box


# What each action type does in mettagrid: "noop", "forward", "backward" or "rotate".
ACTION_EFFECTS = {
    "noop": "noop",
    "move": "move",
    "rotate": "rotate",
    "attack": "forward",
    "get_items": "forward",
    "put_items": "forward",
    "swap": "noop",
    "change_color": "noop",
    "change_glyph": "noop",
}


class ActionMap:
    """(action type, argument, orientation) -> (environment action, new orientation), as tables."""

    def __init__(self, env: EnvSpec, action_types: Sequence[str], num_args: int, source: str):
        needed = ["noop", *(f"move_{direction}" for direction in ORIENTATIONS)]
        lacking = [name for name in needed if name not in env.action_names]
        if lacking:
            raise PolicyLoadError(
                f"{source}: Metta's actions need the environment actions {lacking}, which this task "
                f"lacks (it has {list(env.action_names)})"
            )
        unknown = [name for name in action_types if name not in ACTION_EFFECTS]
        if unknown:
            raise PolicyLoadError(
                f"{source}: unknown Metta action types {unknown}; known: {sorted(ACTION_EFFECTS)}"
            )
        self.noop = env.action_names.index("noop")
        self.move = [env.action_names.index(f"move_{direction}") for direction in ORIENTATIONS]
        self.action_types = list(action_types)
        shape = (len(action_types), max(num_args, 1), len(ORIENTATIONS))
        self.env_action = np.full(shape, self.noop, dtype=np.int32)
        self.orientation = np.broadcast_to(np.arange(len(ORIENTATIONS), dtype=np.int8), shape).copy()
        for kind, name in enumerate(action_types):
            effect = ACTION_EFFECTS[name]
            for facing in range(len(ORIENTATIONS)):
                if effect == "forward":
                    self.env_action[kind, :, facing] = self.move[facing]
                elif effect == "move":
                    self.env_action[kind, 0, facing] = self.move[facing]
                    if num_args > 1:
                        self.env_action[kind, 1, facing] = self.move[OPPOSITE[facing]]
                elif effect == "rotate":
                    turns = min(num_args, len(ORIENTATIONS))
                    self.orientation[kind, :turns, facing] = np.arange(turns)

    def __call__(
        self, kinds: np.ndarray, args: np.ndarray, orientation: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.env_action[kinds, args, orientation], self.orientation[kinds, args, orientation]

    def label(self, env_actions: np.ndarray, orientation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (type, argument) that makes each agent take `env_actions` (absolute moves or noop).

        A move along the facing is `move 0`, against it `move 1`; any other direction turns first
        (`rotate`), so the move happens a step later. Used to teach a policy from a scripted one.
        """
        noop, move, rotate = (self.action_types.index(name) for name in ("noop", "move", "rotate"))
        kinds = np.full(len(env_actions), noop, dtype=np.int64)
        args = np.zeros(len(env_actions), dtype=np.int64)
        for row, (action, facing) in enumerate(zip(env_actions.tolist(), orientation.tolist(), strict=True)):
            if action not in self.move:
                continue
            direction = self.move.index(action)
            if direction == facing:
                kinds[row] = move
            elif direction == OPPOSITE[facing]:
                kinds[row], args[row] = move, 1
            else:
                kinds[row], args[row] = rotate, direction
        return kinds, args
