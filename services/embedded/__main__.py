"""The one-process stack: ``python -m services.embedded [--load-samples]`` (what ``make run`` runs).

Intake (OpenRosa), processors and query API in one process on one port; the SQLite log
as bus and chDB as store, both under ``var/``. With ``--load-samples`` the sample submissions
of every form are given to the intake of this process once the server is up, each accepted at
the time its sample says it was sent (``services/tools/load_samples.py`` says why; its ``load``
sends them over HTTP instead, to try the OpenRosa intake).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time

import httpx

from services.bootstrap import embedded_stack
from services.config import Settings
from services.entrypoint import start
from services.intake.service import IntakeService
from services.tools.load_samples import load_in_process
from services.web import serve

log = logging.getLogger("services.embedded")


def _ready_message(base_url: str, api_key: str | None, central: str | None = None) -> str:
    """What to try once up: with the demo API key when API_KEYS_FILE is unset (valid until this process stops);
    and, when CENTRAL_CONFIG is set, where the stack pulls from and how often."""
    if api_key:
        auth = f"-H 'Authorization: Bearer {api_key}' "
        key = (f"  API key (demo: read:all + admin + approve every province; made at start-up, kept only in "
               f"memory, gone when this process stops):\n    {api_key}\n"
               f"  Dashboard: {base_url}/dashboard#key={api_key}\n")
    else:
        auth, key = "-H 'Authorization: Bearer <a key from API_KEYS_FILE>' ", ""
    pull = f"  {central} (state: {base_url}/v1/central-pull)\n" if central else ""
    return (f"\nReady. Try:\n  curl {auth}'{base_url}/v1/visits?scheme=legacy&province=02&granularity=month'\n"
            f"{key}  API docs: {base_url}/docs   ODK Collect server URL: {base_url}\n{pull}")


def _when_ready(base_url: str, api_key: str | None, samples: tuple[IntakeService, Settings] | None,
                central: str | None) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    if samples is not None:
        service, settings = samples
        started = time.perf_counter()
        outcomes = load_in_process(service, settings.forms_dir)
        log.info("sample submissions loaded in %.1fs: %s", time.perf_counter() - started, dict(outcomes))
    print(_ready_message(base_url, api_key, central), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.embedded", description=__doc__)
    parser.add_argument("--load-samples", action="store_true",
                        help="load the sample submissions of every form once up, at their sending times")
    args, settings = start(parser.prog, __doc__, parser=parser)
    stack = embedded_stack(settings)
    base_url = f"http://{settings.host}:{settings.port}"
    central = stack.central.describe() if stack.central else None
    samples = (stack.service, settings) if args.load_samples else None
    threading.Thread(target=_when_ready, args=(base_url, stack.demo_api_key, samples, central),
                     daemon=True).start()
    try:
        serve(stack.app, settings, settings.port)
    finally:
        stack.close()


if __name__ == "__main__":
    main()
