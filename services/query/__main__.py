"""The query service on its own (distributed mode): ``python -m services.query`` on QUERY_PORT."""

from __future__ import annotations

import logging

import uvicorn

from services.bootstrap import query_app
from services.config import Settings


def main() -> None:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(query_app(settings), host=settings.host, port=settings.query_port,
                log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
