"""The intake service on its own (distributed mode): ``python -m services.intake``.

Serves OpenRosa (ODK Collect) on HOST:PORT and publishes every accepted submission to Kafka
(BUS=kafka, KAFKA_BOOTSTRAP_SERVERS). Settings are environment variables (README, "Configuration");
logs go to stderr as LOG_FORMAT says.
"""

from __future__ import annotations

from services.bootstrap import intake_app
from services.entrypoint import start
from services.web import serve


def main(argv: list[str] | None = None) -> None:
    _, settings = start("python -m services.intake", __doc__, argv)
    if settings.bus != "kafka":
        raise SystemExit("The intake on its own publishes to Kafka: set BUS=kafka. "
                         "For the one-process stack run `python -m services.embedded` (make run).")
    serve(intake_app(settings), settings, settings.port)


if __name__ == "__main__":
    main()
