"""A live progress line per task while its episodes run (`--eval-progress`; on in the CLI).

On a terminal the line sits below pytest's current line, is rewritten in place, and is erased
when the task ends, with the cursor put back where pytest left it; in a log (not a TTY) a line is
printed at most every 10 seconds. pytest captures output during a test, so the line is written to
the real stdout with capture suspended, as pytest's live logging does. xdist workers have no
terminal: only serial runs show it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any


class ProgressLine:
    def __init__(self, config: Any, title: str, max_steps: int):
        self._writer = config.get_terminal_writer()
        self._capture = config.pluginmanager.getplugin("capturemanager")
        self._out = sys.__stdout__  # the real stdout: pytest captures sys.stdout during tests
        with self._uncaptured():  # fd 1 is a capture file until capture is suspended
            self._tty = bool(self._out and self._out.isatty())
        self._interval = 0.1 if self._tty else 10.0
        self._title, self._max_steps = title, max_steps
        self._last, self._shown, self._column = 0.0, False, 0

    def _uncaptured(self) -> Any:
        if self._capture is None:
            return contextlib.nullcontext()
        return self._capture.global_and_fixture_disabled()

    def _write(self, text: str) -> None:
        try:
            with self._uncaptured():
                self._out.write(text)
                self._out.flush()
        except Exception:  # a display problem must never fail an evaluation: stop showing
            self._interval = float("inf")

    def __call__(self, done: int, total: int, step: int) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        text = f"  {self._title}: {done}/{total} episodes done, step {step}/{self._max_steps}"
        if not self._tty:
            self._write("\n" + text)
        elif not self._shown:
            self._column = self._writer.width_of_current_line
            self._write("\n" + text)
        else:
            self._write("\r\x1b[2K" + text)
        self._shown = True

    def close(self) -> None:
        if not self._shown:
            return
        if self._tty:  # erase the line, go back up to the end of pytest's line
            self._write("\r\x1b[2K\x1b[1A" + (f"\x1b[{self._column}C" if self._column else ""))
        else:
            self._write("\n")
