"""What a bare Metta state dict means: the engine's feature ids, object type ids and action order.

A state dict records none of this, and Metta's engine changed all three during 2025, so each
engine version a policy may have been trained on is a named preset, read from Metta-AI/metta's
source at the commit it names:

    june-2025   8a445b65c0 (2025-06-27, "updated external example.py to match pufferlib 3.0"):
                mettagrid/src/metta/mettagrid/objects/constants.hpp (12 base features, inventory
                from id 12, ObjectType ids), mettagrid_c.cpp (actions registered in a fixed order,
                attack also registering attack_nearest; last_reward = clamp(round(100 r), 0, 255)),
                configs/env/mettagrid/mettagrid.yaml (inventory_item_names).
    july-2025   4d84e5f694 (2025-07-23): constants.hpp (14 base features: agent:glyph and
                resource_rewards added, inventory from id 14), mettagrid_c.cpp (actions in the
                order of a std::map over their names, i.e. alphabetical; no attack_nearest;
                last_reward = round(100 r) cast to a byte, wrapping), object type_ids from
                configs/env/mettagrid/game/objects/*.yaml.

The default is june-2025: the commit whose example.py is the external format (its max_vec has
22 entries in june's feature order, and its 9-way action-type head is june's 9 action types).
Choose another with `preset:` in a --pytorch-config, or --metta-preset NAME; a config's
`feature_names`, `action_types` and `type_ids` override single parts. Plugins add presets
through the `pytest_policyeval_metta_presets` hook (name -> a `Preset`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_policyeval.policies.base import PolicyLoadError

HOOK = "pytest_policyeval_metta_presets"  # where other packages add presets

# Orientations, the argument of `rotate` (Orientation enum in grid_object.hpp): Up, Down, Left, Right.
ORIENTATIONS: tuple[str, ...] = ("north", "south", "west", "east")
OPPOSITE = {0: 1, 1: 0, 2: 3, 3: 2}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    base_features: tuple[str, ...]  # feature ids 0..n-1
    inventory: tuple[str, ...]  # item names; inventory features follow the base ones, as inv:<item>
    action_types: tuple[str, ...]  # the action-type head's order
    type_ids: dict[str, int] = field(default_factory=dict)  # type_id feature values by object type
    reward_byte: str = "clamp"  # how last_reward became a byte: "clamp" to 0..255, or "wrap" mod 256

    def feature_names(self, channels: int, source: str) -> list[str]:
        """Names of the first `channels` feature ids (Metta's policies read ids 0..21)."""
        names = [*self.base_features, *(f"inv:{item}" for item in self.inventory)]
        if channels > len(names):
            raise PolicyLoadError(
                f"{source}: the checkpoint reads {channels} observation channels but preset "
                f"'{self.name}' names {len(names)}; choose another preset or list 'feature_names' "
                "in --pytorch-config"
            )
        return names[:channels]

    def reward_value(self, reward: float) -> int:
        scaled = int(_round_half_away(reward * 100.0))
        return min(max(scaled, 0), 255) if self.reward_byte == "clamp" else scaled % 256


def _round_half_away(value: float) -> float:
    """C++'s std::round (Python's round() rounds halves to even)."""
    import math

    return math.copysign(math.floor(abs(value) + 0.5), value)


_BASE_JUNE = (
    "type_id", "agent:group", "hp", "agent:frozen", "agent:orientation", "agent:color",
    "converting", "swappable", "episode_completion_pct", "last_action", "last_action_arg",
    "last_reward",
)  # fmt: skip
_TYPE_IDS = {
    "agent": 0, "wall": 1, "mine_red": 2, "mine_blue": 3, "mine_green": 4, "generator_red": 5,
    "generator_blue": 6, "generator_green": 7, "altar": 8, "armory": 9, "lasery": 10, "lab": 11,
    "factory": 12, "temple": 13,
}  # fmt: skip

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="june-2025",
            description="Metta's engine of June 2025 (8a445b65c0), the external example's",
            base_features=_BASE_JUNE,
            inventory=(
                "ore.red",
                "ore.blue",
                "ore.green",
                "battery.red",
                "battery.blue",
                "battery.green",
                "heart",
                "armor",
                "laser",
                "blueprint",
            ),
            action_types=(
                "put_items",
                "get_items",
                "noop",
                "move",
                "rotate",
                "attack",
                "attack_nearest",
                "swap",
                "change_color",
            ),
            type_ids={**_TYPE_IDS, "converter": 14},
            reward_byte="clamp",
        ),
        Preset(
            name="july-2025",
            description="Metta's engine of July 2025 (4d84e5f694)",
            base_features=(*_BASE_JUNE, "agent:glyph", "resource_rewards"),
            inventory=(
                "ore_red",
                "ore_blue",
                "ore_green",
                "battery_red",
                "battery_blue",
                "battery_green",
                "heart",
                "armor",
                "laser",
            ),
            action_types=(
                "attack",
                "change_color",
                "change_glyph",
                "get_items",
                "move",
                "noop",
                "put_items",
                "rotate",
                "swap",
            ),
            type_ids={**_TYPE_IDS, "block": 14},
            reward_byte="wrap",
        ),
    )
}
DEFAULT_PRESET = "june-2025"


def _registered() -> dict[str, object]:
    from pytest_policyeval import registry

    return registry.table(HOOK)


def known_presets() -> list[str]:
    return sorted(set(PRESETS) | set(_registered()))


def get_preset(name: str | None, source: str) -> Preset:
    name = name or DEFAULT_PRESET
    if name in PRESETS:
        return PRESETS[name]
    if name in _registered():
        from pytest_policyeval import registry

        preset = registry.lookup(HOOK, name, "Metta preset")
        if isinstance(preset, Preset):
            return preset
        raise PolicyLoadError(f"{source}: preset '{name}' is a {type(preset).__name__}, not a Preset")
    raise PolicyLoadError(f"{source}: unknown Metta preset '{name[:80]}'; known: {known_presets()}")
