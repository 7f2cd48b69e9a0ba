"""The port a fold keeps its state behind: key → plain JSON dict.

The runners read the keys a batch touches from the store before the fold and write those it
changed after it (``services/processors/runner.py``); unit tests use a dict."""

from __future__ import annotations

from typing import Any, Protocol


class State(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...
    def put(self, key: str, value: dict[str, Any]) -> None: ...
