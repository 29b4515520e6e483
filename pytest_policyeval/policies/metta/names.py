"""What a bare Metta state dict is assumed to mean: its features, object types and action heads.

A state dict carries no names, so `pytorch://` assumes Metta's mid-2025 conventions unless the
config's `feature_names`, `action_types` or `type_ids` say otherwise.
"""

from __future__ import annotations

# Observation channels, in Metta's order (the first 22 feature ids of its environments).
METTA_FEATURES: tuple[str, ...] = (
    "type_id",
    "agent:group",
    "hp",
    "agent:frozen",
    "agent:orientation",
    "agent:color",
    "converting",
    "swappable",
    "episode_completion_pct",
    "last_action",
    "last_action_arg",
    "last_reward",
    "agent:glyph",
    "resource_rewards",
    *(f"inv:{index}" for index in range(8)),
)

# The first action head picks one of these; a checkpoint's head size says how many it knew.
METTA_ACTION_TYPES: tuple[str, ...] = (
    "noop",
    "move",
    "rotate",
    "put_items",
    "get_items",
    "attack",
    "swap",
    "change_color",
    "change_glyph",
)

# `type_id` feature values by object type. mettagrid 0.26 shows types as `type:<name>` tags; the
# adapter turns those tags back into these ids. Types not listed get ids above the largest listed.
METTA_TYPE_IDS: dict[str, int] = {"agent": 0, "wall": 1, "altar": 8}

# Metta orientations, the argument of `rotate`: Up, Down, Left, Right.
ORIENTATIONS: tuple[str, ...] = ("north", "south", "west", "east")
OPPOSITE = {0: 1, 1: 0, 2: 3, 3: 2}
