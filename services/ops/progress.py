"""Progress of a long operation on stderr: one line rewritten in place on a terminal, a line every
``interval_s`` otherwise (a log file, CI, ``docker compose run``), and always the last one."""

from __future__ import annotations

import shutil
import sys
import time
from typing import IO


class Progress:
    def __init__(self, stream: IO[str] | None = None, interval_s: float = 5.0):
        self._stream = stream or sys.stderr
        self._interval_s = interval_s
        self._tty = hasattr(self._stream, "isatty") and self._stream.isatty()
        self._last_at = 0.0
        self._last_text = ""

    def update(self, text: str) -> None:
        now = time.monotonic()
        if self._tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            self._stream.write("\r" + text[:width].ljust(min(width, max(len(self._last_text), len(text)))))
            self._stream.flush()
        elif now - self._last_at >= self._interval_s:
            self._stream.write(text + "\n")
            self._stream.flush()
            self._last_at = now
        self._last_text = text

    def done(self, text: str | None = None) -> None:
        """The final state, on its own line."""
        text = self._last_text if text is None else text
        if self._tty:
            self.update(text)
            self._stream.write("\n")
        elif text:
            self._stream.write(text + "\n")
        self._stream.flush()
