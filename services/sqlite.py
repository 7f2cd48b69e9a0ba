"""SQLite files the services keep locally (ledger, embedded log, processor state).

One way to open them: autocommit (explicit transactions where needed), WAL so readers
do not block the writer, and synchronous=FULL because a commit here is what lets the
intake answer 201 — it must survive a power cut.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_durable(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db
