"""The programme manager's dashboard: ``/dashboard`` (``/`` redirects there).

The page takes its API key from the URL's fragment, ``/dashboard#key=…``, which the browser
never sends: no request line, hence no access log, ever carries it. A link written the old way
(``?key=…``) is redirected to the fragment form (the log line of that one request has the value
redacted, ``services/logs.py``).

A plain page (``static/dashboard.html``, ``.js``, ``.css``) reading the query API (``/v1``)
with the reader's API key; charts by Chart.js, installed from the npm registry
(``package.json``) and copied by ``make static`` into ``build/static`` (nothing is fetched from
a CDN when the page runs). Without that build step the page still shows its tables.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.config import REPO_ROOT

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = REPO_ROOT / "build" / "static"  # written by `make static`

# The page is small and changes with each release: always revalidated, never stale.
_NO_REFERRER = {"Referrer-Policy": "no-referrer"}
_NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", **_NO_REFERRER}


def dashboard_router(vendor_dir: Path = VENDOR_DIR) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def key_to_fragment(request: Request) -> RedirectResponse | None:
        """``?key=…`` moved into the fragment, the other parameters kept."""
        key = request.query_params.get("key")
        if key is None:
            return None
        rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "key"])
        return RedirectResponse(f"/dashboard{'?' + rest if rest else ''}#{urlencode({'key': key})}",
                                status_code=303, headers={"Cache-Control": "no-store", **_NO_REFERRER})

    @router.get("/")
    def home(request: Request) -> RedirectResponse:
        query = request.url.query
        return key_to_fragment(request) or RedirectResponse(f"/dashboard?{query}" if query else "/dashboard",
                                                            status_code=307)

    @router.get("/dashboard")
    def dashboard(request: Request) -> Response:
        return key_to_fragment(request) or FileResponse(
            STATIC_DIR / "dashboard.html", media_type="text/html; charset=utf-8", headers=_NO_CACHE)

    router.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    # check_dir=False: the query service starts without `make static`; the page then says charts are missing.
    router.mount("/dashboard/vendor", StaticFiles(directory=vendor_dir, check_dir=False), name="dashboard-vendor")
    return router
