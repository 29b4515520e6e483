"""A recorded episode drawn as an animated GIF, for places without the HTML player (W&B).

It reads a film's JSON form (`Film.to_json()`, which is also what travels from xdist workers).
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path
from typing import Any

TEAM_COLORS = [(52, 120, 246), (230, 80, 60), (60, 170, 90), (170, 90, 200)]
WALL, FLOOR, GOAL, FROZEN = (60, 60, 70), (245, 245, 240), (240, 190, 40), (160, 160, 160)


def _at(timeline: list, step: int, default):
    """The value of a change list [(step, ...)] at `step`."""
    index = bisect_right([entry[0] for entry in timeline], step) - 1
    return timeline[index] if index >= 0 else default


def film_gif(
    film: dict[str, Any], path: Path, cell: int = 12, max_frames: int = 200, frame_ms: int = 80
) -> Path:
    """Write the film as a GIF (at most `max_frames` frames, evenly spaced steps) and return its path."""
    from PIL import Image, ImageDraw

    width, height, last = film["width"], film["height"], film["steps"]
    steps = list(range(last + 1))
    if len(steps) > max_frames:
        steps = [round(i * last / (max_frames - 1)) for i in range(max_frames)]
    size = (width * cell, height * cell)
    background = Image.new("RGB", size, FLOOR)
    draw = ImageDraw.Draw(background)
    for index in film["walls"]:
        x, y = index % width, index // width
        draw.rectangle([x * cell, y * cell, (x + 1) * cell - 1, (y + 1) * cell - 1], fill=WALL)
    frames = []
    for step in steps:
        frame = background.copy()
        draw = ImageDraw.Draw(frame)
        inset = cell // 4
        for _kind, x, y, start, end in film["objects"]:
            if start <= step < end:
                box = [x * cell + inset, y * cell + inset, (x + 1) * cell - inset, (y + 1) * cell - inset]
                draw.rectangle(box, fill=GOAL)
        for agent in film["agents"]:
            first = agent["path"][0] if agent["path"] else (0, 0, 0)
            _, x, y = _at(agent["path"], step, first)
            frozen = _at(agent["frozen"], step, (0, 0))[1]
            color = FROZEN if frozen else TEAM_COLORS[agent["team"] % len(TEAM_COLORS)]
            draw.ellipse([x * cell + 1, y * cell + 1, (x + 1) * cell - 2, (y + 1) * cell - 2], fill=color)
        frames.append(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return path
