"""Sends released together, for tests of what racing requests get."""

from __future__ import annotations

import threading
from collections.abc import Callable


def race(sends: list[Callable[[], object]]) -> list[object]:
    """Run every send at once (a barrier before each); each outcome: what it returned or raised."""
    barrier, outcomes = threading.Barrier(len(sends)), [None] * len(sends)

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = sends[i]()
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sends))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
