"""ASCII maps for grid tasks, read and checked without the engine.

Legend: `#` wall, `.` empty floor, `@` an agent's start, `_` a goal (the altar: walking into it
gives one heart, the reward), `1` / `2` the start of an agent of team 1 / team 2 (`@` is team 1).
Lines must all have the same width. Agents are numbered in reading order (row by row).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WALL, EMPTY, AGENT, GOAL = "#", ".", "@", "_"
TEAM_CHARS = {AGENT: 0, "1": 0, "2": 1}
LEGEND = {
    WALL: "wall",
    EMPTY: "empty",
    AGENT: "agent",
    GOAL: "goal",
    "1": "agent of team 1",
    "2": "agent of team 2",
}


class MapError(ValueError):
    """A map file that cannot be played."""


@dataclass(frozen=True)
class GridMap:
    rows: tuple[str, ...]

    @property
    def height(self) -> int:
        return len(self.rows)

    @property
    def width(self) -> int:
        return len(self.rows[0])

    def count(self, char: str) -> int:
        return sum(row.count(char) for row in self.rows)

    @property
    def agent_teams(self) -> tuple[int, ...]:
        """Team index (0 or 1) of each agent, in agent order."""
        return tuple(TEAM_CHARS[char] for row in self.rows for char in row if char in TEAM_CHARS)

    @property
    def num_agents(self) -> int:
        return len(self.agent_teams)

    @property
    def num_teams(self) -> int:
        return len(set(self.agent_teams))

    @property
    def num_goals(self) -> int:
        return self.count(GOAL)


def parse_map(text: str) -> GridMap:
    rows = tuple(line.rstrip("\r") for line in text.splitlines() if line.strip())
    if not rows:
        raise MapError("the map is empty")
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise MapError(f"line {number} is {len(row)} wide, the first line is {width}")
        unknown = sorted(set(row) - LEGEND.keys())
        if unknown:
            raise MapError(f"line {number} has unknown characters {unknown}; known: {sorted(LEGEND)}")
    grid = GridMap(rows)
    if grid.num_agents == 0:
        raise MapError(f"no agent start ('{AGENT}', '1' or '2')")
    return grid


def read_map(path: Path) -> GridMap:
    return parse_map(Path(path).read_text(encoding="utf-8"))
