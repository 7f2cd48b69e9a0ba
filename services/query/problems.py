"""Errors of the query API as RFC 9457 problem details (``application/problem+json``).

Every error names what was wrong: ``invalid_params`` lists each offending parameter with the
reason (unknown value, commune not in province, start after end, unknown area, bad page token,
outside the key's scope…). Installed on every app (``services/web.py``), so 404/405 of unknown
paths are problem details too.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, parameter: str | None = None,
                 headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.parameter = status, title, detail, parameter
        self.headers = dict(headers or {})


def problem_response(request: Request, status: int, title: str, detail: str,
                     invalid_params: list[dict[str, str]] | None = None,
                     headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status, "detail": detail,
                               "instance": request.url.path}
    if invalid_params:
        body["invalid_params"] = invalid_params
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _location(loc: tuple[object, ...] | list[object]) -> str:
    """The parameter's name: ``("query", "province")`` → ``province``; a header keeps its name."""
    names = [str(part) for part in loc if part not in ("query", "path", "header", "body", "cookie")]
    return names[0] if names else str(loc[-1]) if loc else "request"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        params = [{"name": exc.parameter, "reason": exc.detail}] if exc.parameter else None
        return problem_response(request, exc.status, exc.title, exc.detail, params, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        params = [{"name": _location(err["loc"]), "reason": err["msg"]} for err in exc.errors()]
        detail = "; ".join(f"{p['name']}: {p['reason']}" for p in params)
        return problem_response(request, 400, "Invalid request parameters", detail, params)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return problem_response(request, exc.status_code, titles.get(exc.status_code, detail), detail,
                                headers=exc.headers)
