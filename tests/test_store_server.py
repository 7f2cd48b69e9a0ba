"""The store behind a ClickHouse server shared by several processes (distributed mode), here chDB
behind ClickHouse's HTTP interface (``tests/clickhouse_http.py``)."""

from __future__ import annotations

import subprocess
import sys

from services.config import REPO_ROOT
from services.store.clickhouse import Store
from services.store.migrations import load_migrations

_MIGRATE = "import sys; from services.store.clickhouse import Store; s = Store(sys.argv[1]); s.migrate(); s.close()"


def test_processes_starting_together_all_migrate_one_server(clickhouse_server: str):
    """Workers, intake and query start at once in `docker compose up`: each migrates the store on
    start; one may find a migration half-run by another (visits_library_daily already a view)."""
    starters = [subprocess.Popen([sys.executable, "-c", _MIGRATE, clickhouse_server], cwd=REPO_ROOT,
                                 stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for starter in starters:
        _, err = starter.communicate(timeout=300)
        assert starter.returncode == 0, err[-2000:]
    store = Store(clickhouse_server)
    try:
        applied = {row["version"] for row in store.select("SELECT version FROM schema_migrations FINAL")}
        assert applied == {m.version for m in load_migrations()}
        engines = {row["name"]: row["engine"] for row in store.select(
            "SELECT name, engine FROM system.tables WHERE database = currentDatabase()")}
        assert engines["visits_library_daily"] == "View"
        assert engines["visit_chain_rows"] == "VersionedCollapsingMergeTree"
        assert store.select("SELECT count() AS n FROM visits_library_daily")[0]["n"] == 0
    finally:
        store.close()
