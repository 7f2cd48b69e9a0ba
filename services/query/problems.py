"""Errors of the query API as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, parameter: str | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.parameter = status, title, detail, parameter


def problem_response(request: Request, status: int, title: str, detail: str,
                     invalid_params: list[dict[str, str]] | None = None) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status, "detail": detail,
                               "instance": request.url.path}
    if invalid_params:
        body["invalid_params"] = invalid_params
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        params = [{"name": exc.parameter, "reason": exc.detail}] if exc.parameter else None
        return problem_response(request, exc.status, exc.title, exc.detail, params)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        params = [{"name": str(err["loc"][-1]), "reason": err["msg"]} for err in exc.errors()]
        detail = "; ".join(f"{p['name']}: {p['reason']}" for p in params)
        return problem_response(request, 400, "Invalid request parameters", detail, params)
