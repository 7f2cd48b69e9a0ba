"""The running embedded stack's claim on its ``STATE_DIR``: an ``flock``'d file, ``STATE_DIR/stack.lock``.

One process owns a data directory (the SQLite log, the processors' state, chDB): a second one
would die deep inside chDB with "Unable to open the chdb engine". Taking this lock first lets a
command that would open the same directory (``thuvien central pull`` on the embedded bus) say in
one sentence what to do instead. The kernel drops the lock when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

NAME = "stack.lock"


class StackRunning(RuntimeError):
    """Another process (a running ``make run``) holds this ``STATE_DIR``."""


class StackLock:
    def __init__(self, state_dir: Path):
        self.path = state_dir / NAME
        state_dir.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(self._fd)
            self._fd = None
            raise StackRunning(f"a running embedded stack (process {holder}) holds STATE_DIR={state_dir}") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
