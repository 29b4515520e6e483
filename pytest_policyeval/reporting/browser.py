"""Opening a report in headless Chromium (screenshots, the report's browser test).

playwright drives the system's Chromium (Debian's `chromium`); it downloads no browser. The flags
keep a root user's headless Chromium from sandboxing and from calling out to the network.
"""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def launch(playwright: Any, executable: str = CHROMIUM) -> Any:
    """A headless Chromium browser from a running `sync_playwright()` context."""
    return playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
