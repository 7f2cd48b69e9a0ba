"""Refusals over HTTP as RFC 9457 problem details (``application/problem+json``), for every app
(``services/web.py``): 404/405 of unknown paths and invalid parameters are problem details too.

A refusal is the domain's ``Refused`` (``services/domain/errors.py``); one handler here maps it:
``title``, ``status``, ``detail`` (English, what dashboards and tools read), ``detail_vi`` (the same
in Vietnamese, an extension member), ``instance``, and ``invalid_params`` naming each offending
parameter (each reason's ``field``) with the reason. The intake answers ODK Collect in OpenRosa's
terms instead (``services/intake/openrosa.py``); a ``Refused`` it lets through lands here.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.domain.errors import Reason, Refused

PROBLEM_JSON = "application/problem+json"

# The body's shape, for OpenAPI documents (``services/query/formats.py``).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}, "detail_vi": {"type": "string"}, "instance": {"type": "string"},
                   "invalid_params": {"type": "array", "items": {
                       "type": "object", "properties": {"name": {"type": "string"}, "reason": {"type": "string"}}}}},
}


class RequestRefused(Refused):
    """A request turned away, with the ``title`` problem details give its kind of problem (``Unknown
    province``), and the headers the answer needs (a 401's challenge)."""

    def __init__(self, status: int, title: str, reason: Reason, *, retry_after: int | None = None,
                 headers: Mapping[str, str] | None = None):
        super().__init__(status, [reason], retry_after, reason.message_en)
        self.title, self.headers = title, dict(headers or {})


def problem_response(request: Request, status: int, title: str, detail: str, detail_vi: str,
                     invalid_params: list[dict[str, str]] | None = None,
                     headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status, "detail": detail,
                               "detail_vi": detail_vi, "instance": request.url.path}
    if invalid_params:
        body["invalid_params"] = invalid_params
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def refused_response(request: Request, refused: Refused) -> JSONResponse:
    """The one mapping of a ``Refused`` to problem details."""
    title = refused.title if isinstance(refused, RequestRefused) else HTTPStatus(refused.status).phrase
    headers = dict(getattr(refused, "headers", {}))
    if refused.retry_after is not None:
        headers["Retry-After"] = str(refused.retry_after)
    params = [{"name": r.field, "reason": r.message_en} for r in refused.reasons if r.field]
    return problem_response(request, refused.status, title, "; ".join(r.message_en for r in refused.reasons),
                            "; ".join(r.message_vi for r in refused.reasons), params, headers)


def _location(loc: tuple[object, ...] | list[object]) -> str:
    """The parameter's name: ``("query", "province")`` → ``province``; a header keeps its name."""
    names = [str(part) for part in loc if part not in ("query", "path", "header", "body", "cookie")]
    return names[0] if names else str(loc[-1]) if loc else "request"


_HTTP_TITLES = {404: ("Not found", "Không tìm thấy"), 405: ("Method not allowed", "Phương thức không được phép")}


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        return refused_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        params = [{"name": _location(err["loc"]), "reason": err["msg"]} for err in exc.errors()]
        detail = "; ".join(f"{p['name']}: {p['reason']}" for p in params)
        detail_vi = "Tham số không hợp lệ: " + ", ".join(dict.fromkeys(p["name"] for p in params))
        return problem_response(request, 400, "Invalid request parameters", detail, detail_vi, params)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        title, title_vi = _HTTP_TITLES.get(exc.status_code, (detail, detail))
        return problem_response(request, exc.status_code, title, detail, title_vi, headers=exc.headers)
