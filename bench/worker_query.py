"""``python -m bench.worker_query``: the faust worker and the query API in one process, for the
distributed freshness benchmark only.

chDB is one process per data directory, so with a chDB store (no ClickHouse server here) the
query API cannot open the store the worker is writing. This process serves ``query_app`` (uvicorn,
QUERY_PORT, API_KEYS_FILE) from a thread over the same store directory, then runs the worker as
``python -m services.processors.worker`` does. With ``STORE_DSN=http://…`` (production) the two
are separate processes and nothing here is needed.
"""

from __future__ import annotations

import threading

import uvicorn

from services.bootstrap import query_app
from services.config import Settings


def main() -> None:
    settings = Settings.from_env(bus="kafka")
    server = uvicorn.Server(uvicorn.Config(query_app(settings), host=settings.host, port=settings.query_port,
                                           log_level="warning", log_config=None))
    threading.Thread(target=server.run, daemon=True, name="query-api").start()
    from services.processors import worker

    worker.main([])


if __name__ == "__main__":
    main()
