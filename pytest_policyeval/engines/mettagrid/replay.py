"""mettagrid replays (format version 4) read into a `Film`: what the report's player draws.

A mettagrid replay lists every grid object; each field is either a constant or a list of
`[step, value]` changes. Locations are `[x, y]`. Step `s` is the state after the agents' `s+1`-th
action. This module knows that format and the games' conventions (which item means "ready" in
laser_tag); the player knows only the `Film`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from pytest_policyeval.reporting.film import Film, FilmAgent, FilmObject

SUPPORTED_VERSIONS = (4,)
READY_ITEM = "ready"  # laser_tag: an agent holding less than its full stock is frozen


class ReplayFormatError(ValueError):
    """The replay is not one this reader understands."""


def changes(field: Any, list_valued: bool = False) -> list[tuple[int, Any]]:
    """A replay field as `[(step, value), ...]`, whether it was stored as a constant or as changes.

    mettagrid stores a field that never changed as its bare value, so a list is a change list
    only if its entries' values have the field's type: lists for `list_valued` fields
    (locations, inventories), anything else otherwise.
    """
    if isinstance(field, list) and field:
        first = field[0]
        # In memory a value may be a tuple; read back from JSON it is a list.
        is_changes = isinstance(first, list | tuple) and len(first) == 2 and isinstance(first[0], int)
        if is_changes and (not list_valued or isinstance(first[1], list | tuple)):
            return [(int(step), value) for step, value in field]
    return [(0, field)]


def _constant(field: Any, list_valued: bool = False) -> Any:
    return changes(field, list_valued)[-1][1]


def _location(value: Any) -> tuple[int, int]:
    x, y = value
    return int(x), int(y)


def _alive_spans(obj: dict[str, Any], steps: int) -> list[tuple[int, int]]:
    """Half-open step ranges in which the object exists."""
    spans, start = [], None
    for step, alive in changes(obj.get("alive", True)):
        if alive and start is None:
            start = step
        elif not alive and start is not None:
            spans.append((start, step))
            start = None
    if start is not None:
        spans.append((start, steps))
    return [span for span in spans if span[0] < span[1]]


def _objects(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    objects = data.get("objects")
    if not isinstance(objects, list):
        raise ReplayFormatError("replay has no 'objects' list")
    yield from objects


def _inventory_count(inventory: Any, item: int) -> int:
    return next((int(count) for item_id, count in inventory or [] if item_id == item), 0)


def film_from_replay(
    data: dict[str, Any], title: str = "", policy_agents: Sequence[int] | None = None
) -> Film:
    """The film of one replay; `policy_agents` are the agents the policy under test played (default all)."""
    version = data.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise ReplayFormatError(f"replay format version {version!r} (this reader knows {SUPPORTED_VERSIONS})")
    width, height = (int(v) for v in data["map_size"])
    steps = int(data["max_steps"])
    items = list(data.get("item_names", []))
    ready = items.index(READY_ITEM) if READY_ITEM in items else None

    walls: list[int] = []
    objects: list[FilmObject] = []
    agents: list[FilmAgent] = []
    for obj in _objects(data):
        kind = str(_constant(obj.get("type_name", "")))
        if kind == "wall":
            x, y = _location(_constant(obj["location"], list_valued=True))
            walls.append(y * width + x)
        elif _constant(obj.get("is_agent", False)):
            agents.append(_agent(obj, ready, policy_agents))
        else:
            x, y = _location(_constant(obj["location"], list_valued=True))
            objects.extend(FilmObject(kind, x, y, start, end) for start, end in _alive_spans(obj, steps))
    agents.sort(key=lambda agent: agent.id)
    return Film(
        title=title,
        width=width,
        height=height,
        steps=steps,
        walls=sorted(walls),
        objects=objects,
        agents=agents,
    )


def _agent(obj: dict[str, Any], ready: int | None, policy_agents: Sequence[int] | None) -> FilmAgent:
    agent_id = int(_constant(obj.get("agent_id", 0)))
    path = [(step, *_location(value)) for step, value in changes(obj["location"], list_valued=True)]
    rewards = [(step, float(value)) for step, value in changes(obj.get("total_reward", 0.0))]
    frozen: list[tuple[int, bool]] = []
    if ready is not None:
        inventory = changes(obj.get("inventory", []), list_valued=True)
        full = _inventory_count(inventory[0][1], ready)
        for step, value in inventory:
            is_frozen = _inventory_count(value, ready) < full
            if not frozen or frozen[-1][1] != is_frozen:
                frozen.append((step, is_frozen))
    # A hit is a step at which the agent's total reward grew (a goal reached, an opponent tagged).
    hits = [step for (step, total), (_, before) in zip(rewards[1:], rewards, strict=False) if total > before]
    if rewards and rewards[0][1] > 0:
        hits.insert(0, rewards[0][0])
    return FilmAgent(
        id=agent_id,
        under_test=policy_agents is None or agent_id in policy_agents,
        team=int(_constant(obj.get("group_id", 0))),
        path=path,
        rewards=rewards,
        frozen=frozen,
        hits=hits,
    )


def read_replay_file(raw: bytes) -> dict[str, Any]:
    """A `.json.z` replay (zlib-compressed JSON) as a dict."""
    try:
        return json.loads(zlib.decompress(raw))
    except (zlib.error, ValueError) as exc:
        raise ReplayFormatError(f"not a zlib-compressed JSON replay: {exc}") from None


def encode_replay_file(data: dict[str, Any]) -> bytes:
    """mettagrid's own file encoding: compact JSON, zlib-compressed."""
    return zlib.compress(json.dumps(data, separators=(",", ":")).encode("utf-8"))
