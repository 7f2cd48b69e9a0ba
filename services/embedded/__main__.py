"""The one-process stack: ``python -m services.embedded [--load-samples]`` (what ``make run`` runs).

Intake (OpenRosa), processors and query API in one process on one port; the SQLite log
as bus and chDB as store, both under ``var/``. With ``--load-samples`` the sample submissions
of every form are sent through the real intake over HTTP once the server is up.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time

import httpx
import uvicorn

from services.bootstrap import embedded_stack
from services.config import Settings
from services.tools.load_samples import load

log = logging.getLogger("services.embedded")


def _load_when_ready(base_url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    started = time.perf_counter()
    statuses = load(base_url)
    log.info("sample submissions loaded in %.1fs: %s", time.perf_counter() - started, dict(statuses))
    print(f"\nReady. Try:\n  curl '{base_url}/v1/visits?scheme=legacy&province=02&granularity=month'\n"
          f"  API docs: {base_url}/docs   ODK Collect server URL: {base_url}\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--load-samples", action="store_true", help="send the sample submissions of every form once up")
    args = parser.parse_args()
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the sample loader's 1,000+ requests
    stack = embedded_stack(settings)
    base_url = f"http://{settings.host}:{settings.port}"
    if args.load_samples:
        threading.Thread(target=_load_when_ready, args=(base_url,), daemon=True).start()
    try:
        uvicorn.run(stack.app, host=settings.host, port=settings.port, log_level=settings.log_level.lower())
    finally:
        stack.close()


if __name__ == "__main__":
    main()
