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
    # No access log: every submission already has its own line ("submission accepted" / "refused",
    # with its instanceID); a second, per request, costs the busiest thread and says less.
    serve(intake_app(settings), settings, settings.port, access_log=False)


if __name__ == "__main__":
    main()
