"""The port a fold keeps its local state behind: key → plain JSON dict.

A SQLite file in embedded mode (``services/processors/sqlite_state.py``), a faust table in
distributed mode; a dict in unit tests."""

from __future__ import annotations

from typing import Any, Protocol


class State(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...
    def put(self, key: str, value: dict[str, Any]) -> None: ...
