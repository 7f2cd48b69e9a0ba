"""The query service on its own (distributed mode): ``python -m services.query`` on HOST:QUERY_PORT.

Answers the aggregates API (``/v1/...``) from STORE_DSN. Settings are environment variables
(README, "Configuration"); logs go to stderr as LOG_FORMAT says.
"""

from __future__ import annotations

from services.bootstrap import query_app
from services.entrypoint import start
from services.web import serve


def main(argv: list[str] | None = None) -> None:
    _, settings = start("python -m services.query", __doc__, argv)
    serve(query_app(settings), settings, settings.query_port)


if __name__ == "__main__":
    main()
