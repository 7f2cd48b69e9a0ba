"""Numbered ClickHouse migrations from ``schemas/clickhouse/NNN_name.sql``, applied in order.

Idempotent twice over: each file uses ``IF NOT EXISTS`` and applied versions are recorded
in ``schema_migrations``, so start-up can always call ``migrate``.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from services.config import REPO_ROOT, TIMEZONE

MIGRATIONS_DIR = REPO_ROOT / "schemas" / "clickhouse"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: list[str]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name must look like 001_name.sql: {path.name}")
        text = "\n".join(line for line in path.read_text("utf-8").splitlines() if not line.strip().startswith("--"))
        statements = [s.strip() for s in text.split(";") if s.strip()]
        migrations.append(Migration(int(match.group(1)), match.group(2), statements))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return migrations


def migrate(client, directory: Path = MIGRATIONS_DIR, attempts: int = 5) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied now.

    Several processes may start at once against one server (workers, intake, query): one of them
    can find a migration half-run by another (its table already replaced). A failed statement is
    retried from the start, with what is recorded read again: what the other process finished is
    then skipped, and what it did not is applied again (every statement is idempotent)."""
    for attempt in range(attempts):
        try:
            return _migrate_once(client, directory)
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random())
    return []


def _migrate_once(client, directory: Path) -> list[int]:
    migrations = load_migrations(directory)
    for statement in migrations[0].statements:  # the bookkeeping table itself
        client.command(statement)
    applied = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    done = []
    for migration in migrations:
        if migration.version in applied:
            continue
        for statement in migration.statements:
            client.command(statement)
        client.insert("schema_migrations", [[migration.version, migration.name, datetime.now(TIMEZONE)]],
                      column_names=["version", "name", "applied_at"])
        done.append(migration.version)
    return done
