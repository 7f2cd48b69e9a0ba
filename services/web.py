"""What every HTTP service shares: ``/health``, ``/metrics``, problem-details errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Response

from services import metrics
from services.query.problems import install_problem_handlers


def create_app(title: str, routers: list[APIRouter], on_shutdown: list[Callable[[], object]] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        for close in on_shutdown or []:
            close()

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
