"""The programme manager's dashboard: ``/dashboard`` (``/`` redirects there).

A plain page (``static/dashboard.html``, ``.js``, ``.css``) reading the query API (``/v1``)
with the reader's API key; charts by Chart.js, installed from the npm registry
(``package.json``) and copied by ``make static`` into ``build/static`` (nothing is fetched from
a CDN when the page runs). Without that build step the page still shows its tables.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.config import REPO_ROOT

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = REPO_ROOT / "build" / "static"  # written by `make static`

# The page is small and changes with each release: always revalidated, never stale.
_NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def dashboard_router(vendor_dir: Path = VENDOR_DIR) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def home(request: Request) -> RedirectResponse:
        query = request.url.query  # `/?key=…` keeps its key on the way
        return RedirectResponse(f"/dashboard?{query}" if query else "/dashboard", status_code=307)

    @router.get("/dashboard")
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "dashboard.html", media_type="text/html; charset=utf-8", headers=_NO_CACHE)

    router.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    # check_dir=False: the query service starts without `make static`; the page then says charts are missing.
    router.mount("/dashboard/vendor", StaticFiles(directory=vendor_dir, check_dir=False), name="dashboard-vendor")
    return router
