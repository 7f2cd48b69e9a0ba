"""The intake service on its own (distributed mode): ``python -m services.intake``."""

from __future__ import annotations

import logging

import uvicorn

from services.bootstrap import intake_app
from services.config import Settings


def main() -> None:
    settings = Settings.from_env()
    if settings.bus != "kafka":
        raise SystemExit("The intake on its own publishes to Kafka: set BUS=kafka. "
                         "For the one-process stack run `python -m services.embedded` (make run).")
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(intake_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
