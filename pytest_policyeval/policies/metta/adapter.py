"""Running a Metta-format policy on a mettagrid 0.26 task: what it saw in training, and its actions.

Observations. The policy's channels are the feature ids of the engine it was trained on (its
preset, `presets.py`); each is looked up by name among this task's features. Some names have no
engine feature of their own, or one whose meaning changed, and are derived here instead:
    type_id                 from the engine's `type:<name>` tags, numbered by the preset's type ids
    agent:orientation       the orientation this adapter tracks
    episode_completion_pct  round(255 * step / max_steps), as Metta computed it
    last_action             the action-type index the policy chose last (0.26 records a flat id)
    last_action_arg         its argument
    last_reward             last step's reward as the preset's engine made it a byte
    inv:<N>                 (a number) the N-th resource of the task
A feature the task expresses through another (`TokenSpec.equivalent_features`: laser_tag's
`agent:frozen` is its freeze length minus `inv:ready`) is read through that one.
Derived values are global tokens on the agent's own cell, where Metta put them. Any other
feature the engine does not emit reads as zero; the list is logged once per (policy, task layout).

The box is then filled as Metta's `encode_observations` filled it: every byte equal to 255 reads
as 0, and of two tokens for the same channel and cell the later one wins (an indexed assignment,
not a sum). Metta's padding tokens ([255, 255, 255], hence [0, 0, 0]) are not skipped there: they
write 0 into channel 0 at cell (0, 0) after every real token, so an agent whose observation has
free slots never sees a type_id in that corner; that is reproduced too.

Actions. Metta's heads give (action type, argument) and agents have an orientation; mettagrid 0.26
moves in absolute directions. Per agent slot the adapter keeps the orientation (Up at the start):
    move 0 / 1       step forward / backward, keeping the facing
    rotate k         face orientation k (the engine sees a noop)
    attack, attack_nearest, get_items, put_items
                     act on the cell in front, which in mettagrid means walking into it
                     (tags an opponent there, collects from a goal)
    noop, swap, change_color, change_glyph, invalid arguments: noop
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from pytest_policyeval.policies.base import PolicyLoadError
from pytest_policyeval.policies.metta.presets import OPPOSITE, ORIENTATIONS
from pytest_policyeval.policies.observations import EMPTY_TOKEN, GLOBAL_TOKEN
from pytest_policyeval.spec import TokenSpec

log = logging.getLogger(__name__)

TYPE_PREFIX = "type:"
NOWHERE = -(1 << 40)  # below any sum of a real offset and cell
EMPTY_BYTE = 255  # Metta's encoder read every byte equal to 255 as 0
# Features whose value the actor supplies each step, in the order of `ObservationMap.derived`.
DERIVED = ("agent:orientation", "episode_completion_pct", "last_action", "last_action_arg", "last_reward")
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


def _env_features(env: TokenSpec) -> dict[str, int]:
    """Feature id by name, with `inv:<N>` naming the task's N-th resource."""
    ids = {name: index for index, name in enumerate(env.feature_names) if name}
    for index, resource in enumerate(env.resource_names):
        ids.setdefault(f"inv:{index}", ids.get(f"inv:{resource}", -1))
    return ids


def keep_last(index: torch.Tensor, nowhere: int) -> torch.Tensor:
    """`index` with every entry that a later entry of its row repeats moved to `nowhere`."""
    if index.shape[1] < 2:
        return index
    ordered, order = torch.sort(index, dim=1, stable=True)  # equal entries keep their order
    last = torch.ones_like(ordered, dtype=torch.bool)
    last[:, :-1] = ordered[:, 1:] != ordered[:, :-1]
    keep = torch.empty_like(last).scatter_(1, order, last)
    return torch.where(keep, index, nowhere)


class ObservationMap(torch.nn.Module):
    """Tokens `[B, T, 3]` of one task -> the policy's raw feature box `[B, C, W, W]`.

    Each token lands in one cell of the box, flattened as `channel * W * W + row * W + col`
    (`size`, one past the box, where it lands nowhere). `cells` gives those indices and the
    amounts, later tokens overriding earlier ones; `forward` writes them into the box, and
    `SparseEncoder` feeds them to the policy's first layers without building the box at all.
    """

    def __init__(
        self,
        env: TokenSpec,
        feature_names: Sequence[str],
        type_ids: dict[str, int],
        window: int,
        source: str,
    ):
        super().__init__()
        self.window = window
        self.num_channels = len(feature_names)
        self.size = self.num_channels * window * window
        env_feature = _env_features(env)
        equivalents = {name: rest for name, *rest in env.equivalent_features}
        # (feature id, value) -> channel and amount: a value is the amount, except for the tag
        # feature, whose value names a `type:` tag that becomes the type_id channel's amount.
        channel = torch.full((256, 256), -1, dtype=torch.long)
        amount = torch.arange(256, dtype=torch.float32).expand(256, 256).clone()
        missing = []
        type_channel = -1
        derived: dict[str, int] = {}
        through: dict[str, int] = {}  # policy features read through an equivalent one
        for index, name in enumerate(feature_names):
            if name == "type_id" and "type_id" not in env_feature:
                type_channel = index
            elif name in DERIVED:
                derived[name] = index
            elif env_feature.get(name, -1) >= 0:
                channel[env_feature[name]] = index
            elif name in equivalents and env_feature.get(equivalents[name][0], -1) >= 0:
                through[name] = index
            else:
                missing.append(name)
        for name, index in through.items():
            via, scale, offset = equivalents[name]
            via_id = env_feature[via]
            if (channel[via_id] >= 0).any():  # the policy reads that feature as itself: that wins
                missing.append(name)
                continue
            channel[via_id] = index
            amount[via_id] = (offset + scale * torch.arange(256, dtype=torch.float32)).round().clamp(0, 255)
        key = (source, *env.feature_names, *feature_names)
        if missing and key not in _logged:
            _logged.add(key)
            log.info("%s: features this task does not emit read as zero: %s", source, missing)
        tag_feature = env_feature.get("tag", -1)
        if tag_feature >= 0 and type_channel >= 0:
            ids = resolve_type_ids(env.tag_names, type_ids)
            for value, tag in enumerate(env.tag_names):
                if tag.startswith(TYPE_PREFIX):
                    channel[tag_feature, value] = type_channel
                    amount[tag_feature, value] = ids[tag[len(TYPE_PREFIX) :]]
        # Coordinate byte -> cell of the window (NOWHERE: an empty slot, or outside the window).
        # The environment's view is centred in the policy's; global tokens go to the agent's cell.
        cell = torch.full((256,), NOWHERE, dtype=torch.long)
        row_offset = (window - env.obs_height) // 2
        col_offset = (window - env.obs_width) // 2
        centre = window // 2
        for coord in range(256):
            if coord == EMPTY_TOKEN:
                continue
            if coord == GLOBAL_TOKEN:
                row, col = centre, centre
            else:
                row, col = (coord >> 4) + row_offset, (coord & 0xF) + col_offset
            if 0 <= row < window and 0 <= col < window:
                cell[coord] = row * window + col
        # Where a token lands = its channel's offset + its cell; either part is NOWHERE (so the
        # sum is negative) when the token lands nowhere.
        offset = torch.where(channel >= 0, channel * (window * window), NOWHERE)
        self.register_buffer("offset_lut", offset.flatten())
        self.register_buffer("amount_lut", amount.flatten())
        self.register_buffer("cell_lut", cell)
        # Derived features: one more token each, on the agent's own cell, in DERIVED's order.
        self.derived = [name for name in DERIVED if name in derived]
        self.register_buffer(
            "derived_index",
            torch.tensor(
                [derived[name] * window * window + centre * window + centre for name in self.derived]
            ),
        )

    def cells(
        self, tokens: torch.Tensor, derived: torch.Tensor, padded: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat box index `[B, T']` of each token (`size`: nowhere) and its amount `[B, T']`.

        `derived` holds the values of `self.derived` per row; `padded` says which rows' observations
        had free token slots (Metta's padding then zeroed channel 0 at cell (0, 0)).
        """
        tokens = tokens.long()
        feature_value = tokens[..., 1] * 256 + tokens[..., 2]
        index = self.offset_lut[feature_value] + self.cell_lut[tokens[..., 0]]
        index = torch.where(index >= 0, index, self.size)
        amount = self.amount_lut[feature_value]
        rows = tokens.shape[0]
        corner = torch.where(padded, 0, self.size).to(index.dtype)[:, None]
        index = torch.cat([index, self.derived_index.expand(rows, -1), corner], dim=1)
        amount = torch.cat([amount, derived.to(amount.dtype), amount.new_zeros((rows, 1))], dim=1)
        amount = amount.masked_fill(amount == EMPTY_BYTE, 0.0)
        return keep_last(index, self.size), amount

    def forward(self, tokens: torch.Tensor, derived: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
        index, amount = self.cells(tokens, derived, padded)
        # Each index now occurs once per row (or is `size`), so a sum writes each value once.
        box = amount.new_zeros((tokens.shape[0], self.size + 1)).scatter_add_(1, index, amount)
        return box[:, : self.size].view(-1, self.num_channels, self.window, self.window)


# What each action type does in mettagrid: "noop", "forward", "backward" or "rotate".
ACTION_EFFECTS = {
    "noop": "noop",
    "move": "move",
    "rotate": "rotate",
    "attack": "forward",
    "attack_nearest": "forward",
    "get_items": "forward",
    "put_items": "forward",
    "swap": "noop",
    "change_color": "noop",
    "change_glyph": "noop",
}


class ActionMap:
    """(action type, argument, orientation) -> (environment action, new orientation), as tables."""

    def __init__(self, env: TokenSpec, action_types: Sequence[str], num_args: int, source: str):
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
