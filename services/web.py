"""What every HTTP service shares: ``/health``, ``/metrics``, problem-details errors."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI, Response

from services import metrics
from services.query.problems import install_problem_handlers


def create_app(title: str, routers: list[APIRouter],
               lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None) -> FastAPI:
    app = FastAPI(title=title, version="1", lifespan=lifespan)
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
