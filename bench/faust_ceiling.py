"""``python -m bench.faust_ceiling``: faust's own ceiling on this machine, the bound beside the worker.

One faust app, one agent on ``BENCH_TOPIC`` that only takes ``take_events`` batches of the same
size as the worker's (``PROCESSOR_BATCH_ROWS`` / ``PROCESSOR_BATCH_MS``) and lets faust ack them:
no decode, no fold, no store. When ``BENCH_EVENTS`` events have gone through, it writes
``{"events", "seconds"}`` (first batch → last) to ``BENCH_OUT`` and the parent stops it.
"""

from __future__ import annotations

import json
import os
import sys
import time

import faust

from services.config import Settings


def main() -> None:
    settings = Settings.from_env(bus="kafka")
    topic, wanted, out = os.environ["BENCH_TOPIC"], int(os.environ["BENCH_EVENTS"]), os.environ["BENCH_OUT"]
    app = faust.App(f"bench-ceiling-{os.getpid()}", broker=f"kafka://{settings.kafka_bootstrap_servers}",
                    store="memory://", web_port=settings.faust_web_port, consumer_auto_offset_reset="earliest",
                    processing_guarantee="at_least_once", datadir=str(settings.faust_data_dir))
    seen = {"n": 0, "first": 0.0}

    @app.agent(app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"))
    async def take(stream: faust.Stream) -> None:
        within = settings.processor_batch_ms / 1000
        async for events in stream.take_events(settings.processor_batch_rows, within=within):
            if not seen["n"]:
                seen["first"] = time.perf_counter()
            seen["n"] += len(events)
            if seen["n"] >= wanted:
                with open(out, "w") as fh:
                    json.dump({"events": seen["n"], "seconds": time.perf_counter() - seen["first"]}, fh)

    sys.argv = [sys.argv[0], "--quiet", "worker", "--loglevel", "warn", "--web-port", str(settings.faust_web_port)]
    app.main()


if __name__ == "__main__":
    main()
