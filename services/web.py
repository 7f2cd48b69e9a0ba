"""What every HTTP service shares: ``/health``, ``/metrics``, problem-details errors, and how
uvicorn serves it.

Proxy headers: ``X-Forwarded-Proto`` decides whether a request came over HTTPS (Basic auth is
refused otherwise) and ``X-Forwarded-For`` which address the login throttle counts, so they
are believed only from the addresses in ``TRUSTED_PROXIES`` — by default from nobody, not
even 127.0.0.1, which uvicorn trusts unless told otherwise.
"""

from __future__ import annotations

import gc
import importlib.util
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Response

from services import metrics
from services.config import Settings
from services.problems import install_problem_handlers


def create_app(title: str, routers: list[APIRouter], on_shutdown: list[Callable[[], object]] | None = None,
               state: Mapping[str, Any] | None = None) -> FastAPI:
    """An app serving ``routers``; ``state`` goes on ``app.state``, where the routers' dependencies find
    what each app has of its own (the query API's store, keys…: ``services/query/deps.py``)."""
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What is loaded before serving (reference data, registry, forms, caches: long-lived) is kept
        # out of the cyclic collector's full passes, which walk every tracked object in the middle of
        # some request: 50–80 ms each at the ~200,000 objects of a query service (bench/lineage.py).
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()
        for close in on_shutdown or []:
            close()

    app = FastAPI(title=title, version="1", lifespan=lifespan)
    for name, value in (state or {}).items():
        setattr(app.state, name, value)
    install_problem_handlers(app)

    @app.get("/health", tags=["Operations"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["Operations"], include_in_schema=False)
    def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    for router in routers:
        app.include_router(router)
    return app


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def uvicorn_config(app: FastAPI, settings: Settings, port: int, access_log: bool = True) -> uvicorn.Config:
    """How every service is served (entry points and tests that run a real server).

    httptools and uvloop (``uvicorn[standard]``) when installed: a C HTTP parser and event loop
    cost less per request than h11 and asyncio's loop on the one thread serving every connection.
    Named, not left to uvicorn's "auto", so which ones run is read here, not guessed."""
    trusted = list(settings.trusted_proxies)
    return uvicorn.Config(
        app, host=settings.host, port=port, log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers propagate to the one handler services.logs installed
        access_log=access_log,
        http="httptools" if _installed("httptools") else "h11",
        loop="uvloop" if _installed("uvloop") else "asyncio",
        proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None)


def serve(app: FastAPI, settings: Settings, port: int, access_log: bool = True) -> None:
    uvicorn.Server(uvicorn_config(app, settings, port, access_log)).run()
