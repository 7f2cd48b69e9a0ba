"""A small, real filesystem for disk-full faults: a size-limited tmpfs mounted over a directory.

The kernel answers ENOSPC when it is full: no mocked ``open``. Mounting needs root (CI runs as
root); elsewhere the fixture fails with a message saying so rather than skipping.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(path: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_bytes`` at ``path`` (created if missing); unmount on exit."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"the disk-full fault tests mount a small tmpfs and need root (CI runs as root): "
                    f"{done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave_bytes: int = 0) -> Path:
    """Write a filler file until only ``leave_bytes`` remain free on ``path``'s filesystem."""
    filler = path / "filler.bin"
    with filler.open("wb") as out:
        chunk = b"\0" * (1 << 20)
        while True:
            free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
            if free <= leave_bytes:
                break
            try:
                out.write(chunk[: max(1, min(len(chunk), free - leave_bytes))])
                out.flush()
            except OSError:
                break
    return filler
