"""ASCII maps for grid tasks, read and checked without the engine.

Legend: `#` wall, `.` empty floor, `@` an agent's start, `_` a goal (the altar: walking into it
gives one heart, the reward), `1` / `2` the start of an agent of team 1 / team 2 (`@` is team 1).
Lines must all have the same width. Agents are numbered in reading order (row by row).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_policyeval.task import Task

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
    # sha256 of the file's bytes this grid was parsed from: what an episode's cache key names,
    # so a map edited after it was read cannot file the old map's episodes under the new one.
    sha256: str = ""

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


# A map is a room for a few agents: these bounds keep a hostile file from costing minutes and GBs.
MAX_SIDE = 256
MAX_MAP_BYTES = MAX_SIDE * (MAX_SIDE + 2)


def parse_map(text: str, sha256: str = "") -> GridMap:
    rows = tuple(line.rstrip("\r") for line in text.splitlines() if line.strip())
    if not rows:
        raise MapError("the map is empty")
    width = len(rows[0])
    if len(rows) > MAX_SIDE or width > MAX_SIDE:
        raise MapError(f"the map is {width} x {len(rows)}; at most {MAX_SIDE} x {MAX_SIDE}")
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise MapError(f"line {number} is {len(row)} wide, the first line is {width}")
        unknown = sorted(set(row) - LEGEND.keys())
        if unknown:
            more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""  # never the whole line
            raise MapError(
                f"line {number} has unknown characters {unknown[:8]}{more}; known: {sorted(LEGEND)}"
            )
    grid = GridMap(rows, sha256)
    if grid.num_agents == 0:
        raise MapError(f"no agent start ('{AGENT}', '1' or '2')")
    return grid


def read_map(path: Path) -> GridMap:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MAP_BYTES + 1)
    except OSError as exc:
        raise MapError(f"cannot read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_MAP_BYTES:
        raise MapError(f"over {MAX_MAP_BYTES} bytes; a map is at most {MAX_SIDE} x {MAX_SIDE}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MapError(f"not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})") from None
    return parse_map(text, hashlib.sha256(data).hexdigest())


MAP_ROOTS_VAR = "POLICYEVAL_MAP_ROOTS"  # more folders maps may come from (os.pathsep-separated)


def resolve_map(folder: Path, name: str) -> Path:
    """A map file inside the suite's folder (or an allowed root); a refusal reads nothing."""
    import os

    from pytest_policyeval.engines.base import EngineError

    try:
        path = (folder / name).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop, say
        raise EngineError(f"key 'map': {name[:120]}: cannot resolve the path ({exc})") from None
    roots = [folder.resolve()]
    roots += [Path(root).resolve() for root in os.environ.get(MAP_ROOTS_VAR, "").split(os.pathsep) if root]
    if not any(path.is_relative_to(root) for root in roots):
        raise EngineError(
            f"key 'map': {name[:120]} is outside the suite's folder {roots[0]} (allow more folders "
            f"with ${MAP_ROOTS_VAR})"
        )
    if not path.is_file():
        raise EngineError(f"key 'map': map file not found: {name[:120]} (looked at {path})")
    return path


@lru_cache(maxsize=256)
def task_grid(task: Task) -> GridMap:
    """The task's map, read once per process (the engine checked it when the suite was read)."""
    return read_map(resolve_map(task.folder, task.env.map))
