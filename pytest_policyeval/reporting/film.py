"""A recorded episode reduced to what the report's replay player draws, and its compact encoding.

Engine adapters turn their replay format into a `Film` (see `engines/mettagrid/replay.py`); the player
(`assets/replay_player.js`) decodes `Film.encode()`: zlib-compressed JSON in base64, which the
browser inflates with its built-in `DecompressionStream`, so the report needs no library and no
network. Timelines hold changes only, `[step, ...values]`, as the engine's replay does.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

FORMAT = 1


@dataclass(frozen=True)
class FilmObject:
    """A non-agent object (a goal, ...) present on the map during steps [start, end)."""

    kind: str
    x: int
    y: int
    start: int
    end: int


@dataclass
class FilmAgent:
    id: int
    team: int
    path: list[tuple[int, int, int]]  # (step, x, y) at each move
    rewards: list[tuple[int, float]]  # (step, total reward so far) at each change
    frozen: list[tuple[int, bool]] = field(default_factory=list)  # (step, frozen?) at each change
    hits: list[int] = field(default_factory=list)  # steps at which the agent scored
    under_test: bool = True  # played by the policy under test (else by the npc policy)

    @property
    def final_reward(self) -> float:
        return self.rewards[-1][1] if self.rewards else 0.0


@dataclass
class Film:
    title: str
    width: int
    height: int
    steps: int
    walls: list[int]  # cells y * width + x
    objects: list[FilmObject]
    agents: list[FilmAgent]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "title": self.title,
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "walls": self.walls,
            "objects": [[o.kind, o.x, o.y, o.start, o.end] for o in self.objects],
            "agents": [
                {
                    "id": a.id,
                    "team": a.team,
                    "path": [list(entry) for entry in a.path],
                    "rewards": [[step, round(total, 4)] for step, total in a.rewards],
                    "frozen": [[step, int(flag)] for step, flag in a.frozen],
                    "hits": a.hits,
                    "under_test": a.under_test,
                }
                for a in self.agents
            ],
        }

    def encode(self) -> str:
        """The film as the player reads it: compact JSON, zlib-compressed, base64."""
        raw = json.dumps(self.to_json(), separators=(",", ":")).encode("utf-8")
        return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def decode(text: str) -> dict[str, Any]:
    """The inverse of `Film.encode` (the JSON form), as the browser computes it."""
    return json.loads(zlib.decompress(base64.b64decode(text)))
