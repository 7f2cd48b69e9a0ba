"""The query service on its own (distributed mode): ``python -m services.query`` on HOST:QUERY_PORT.

Answers the aggregates API (``/v1/...``) from STORE_DSN. Settings are environment variables
(README, "Configuration"); logs go to stderr as LOG_FORMAT says.
"""

from __future__ import annotations

import argparse

from services import logs
from services.bootstrap import query_app
from services.config import load_settings
from services.web import serve


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m services.query", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    settings = load_settings()
    logs.configure(settings)
    serve(query_app(settings), settings, settings.query_port)


if __name__ == "__main__":
    main()
