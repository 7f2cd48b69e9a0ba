"""The intake service on its own (distributed mode): ``python -m services.intake``.

Serves OpenRosa (ODK Collect) on HOST:PORT and publishes every accepted submission to Kafka
(BUS=kafka, KAFKA_BOOTSTRAP_SERVERS). Settings are environment variables (README, "Configuration");
logs go to stderr as LOG_FORMAT says.
"""

from __future__ import annotations

import argparse

from services import logs
from services.bootstrap import intake_app
from services.config import load_settings
from services.web import serve


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m services.intake", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    settings = load_settings()
    if settings.bus != "kafka":
        raise SystemExit("The intake on its own publishes to Kafka: set BUS=kafka. "
                         "For the one-process stack run `python -m services.embedded` (make run).")
    logs.configure(settings)
    serve(intake_app(settings), settings, settings.port)


if __name__ == "__main__":
    main()
