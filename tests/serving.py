"""An ASGI app served by a real uvicorn on a free localhost port, in a thread, for tests that need
a socket: concurrent clients, chunked bodies, proxy headers, the access log, a browser.

With ``settings`` the server is configured exactly as the services' entry points configure it
(``services.web.uvicorn_config``: proxy trust, logging); without, uvicorn's defaults, quietly.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from services.config import Settings
from services.web import uvicorn_config


@contextmanager
def serving(app, settings: Settings | None = None, *, lifespan: str = "auto") -> Iterator[str]:  # noqa: ANN001
    """Yield the base URL (``http://127.0.0.1:PORT``) while ``app`` is served; stop it after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    if settings is None:
        # log_config=None: uvicorn leaves the process's logging alone (its default reconfigures it for good).
        config = uvicorn.Config(app, log_level="warning", log_config=None, lifespan=lifespan)
    else:
        config = uvicorn_config(app, settings.model_copy(update={"host": "127.0.0.1"}), sock.getsockname()[1])
        config.lifespan = lifespan
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
