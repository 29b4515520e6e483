"""Replay files on disk (`--save-replays`): where each recorded episode goes and how it is linked."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

# mettagrid's web viewer; it loads a replay from a URL it can fetch (http(s), not a local path).
METTASCOPE_URL = "https://metta-ai.github.io/metta/mettascope/mettascope.html?replay="
REPLAY_SUFFIX = ".json.z"


def _component(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "_"


def replay_path(root: Path, suite: str, policy_label: str, task: str, episode: int) -> Path:
    """`ROOT/SUITE/POLICY/CATEGORY/TASK/episode-N.json.z`: unique per run, readable by people."""
    parts = [_component(part) for part in (suite, policy_label, *task.split("/"))]
    return root.joinpath(*parts, f"episode-{episode}{REPLAY_SUFFIX}")


def replay_url(path: Path) -> str:
    """A local replay's URL is its absolute path, as mettagrid's own replay writer records it."""
    return str(path.resolve())


def mettascope_url(url: str) -> str:
    return METTASCOPE_URL + quote(url, safe=":/")
