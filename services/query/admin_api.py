"""What operators look at (scope ``admin``): dead letters and the intake's recorded rejections.

- ``GET /v1/dead-letters``: what could not be applied, and why (newest first).
- ``GET /v1/dead-letters/{id}``: one, with its raw submission (for re-driving).
- ``GET /v1/rejections``: submissions the intake refused (table ``rejections``), newest first.
"""

# No `from __future__ import annotations` here: FastAPI must resolve the annotations of route and
# dependency closures (`Depends(read)`, a local name) when the routes are built.
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from services.query import models
from services.query.access import Principal
from services.query.formats import FormatParam, documented, plain, respond
from services.query.problems import Problem
from services.store.clickhouse import Store

DEAD_LETTER_COLUMNS = ["dead_letter_id", "stage", "reason_code", "reason_vi", "reason_en", "instance_id", "form_id",
                       "library_id", "submitter", "content_hash", "recorded_at", "resolved"]
REJECTION_COLUMNS = ["rejection_id", "form_id", "instance_id", "status", "reason_code", "reason_vi", "reason_en",
                     "submitter", "received_at"]
Limit = Annotated[int, Query(ge=1, le=10_000, description="At most this many, newest first.")]


def admin_router(store: Store, admin: Callable[..., Principal]) -> APIRouter:
    router = APIRouter(tags=["Operations (admin)"])

    @router.get("/dead-letters", summary="What could not be applied, and why (newest first)",
                responses=documented(list[models.DeadLetter]))
    def dead_letters(
        request: Request,
        _: Annotated[Principal, Depends(admin)],
        include_resolved: Annotated[bool, Query(description="Also those re-driven successfully since.")] = False,
        limit: Limit = 500,
        format: FormatParam = None,
    ) -> Response:
        rows = [plain({k: bool(v) if k == "resolved" else v for k, v in row.items() if k in DEAD_LETTER_COLUMNS})
                for row in store.dead_letters(not include_resolved, limit)]
        return respond(request, rows, rows, DEAD_LETTER_COLUMNS, format, "dead-letters", cache=False)

    @router.get("/dead-letters/{dead_letter_id}", summary="One dead letter with its raw submission",
                responses={404: {"description": "No such dead letter (problem details)."}})
    async def dead_letter(dead_letter_id: str, _: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
        rows = await run_in_threadpool(store.dead_letters, False, 10_000)
        found = next((row for row in rows if row["dead_letter_id"] == dead_letter_id), None)
        if found is None:
            raise Problem(404, "Unknown dead letter", f"No dead letter {dead_letter_id}", "dead_letter_id")
        return {**found, "resolved": bool(found["resolved"])}

    @router.get("/rejections", summary="Submissions the intake refused, with the reason (newest first)",
                responses=documented(list[models.Rejection]))
    def rejections(
        request: Request,
        _: Annotated[Principal, Depends(admin)],
        form_id: Annotated[str | None, Query(max_length=100, description="Only this form.")] = None,
        reason_code: Annotated[str | None, Query(max_length=100, description="Only this reason.")] = None,
        limit: Limit = 100,
        format: FormatParam = None,
    ) -> Response:
        clauses, params = [], {"limit": limit}
        if form_id:
            clauses.append("form_id = {form_id:String}")
            params["form_id"] = form_id
        if reason_code:
            clauses.append("reason_code = {reason_code:String}")
            params["reason_code"] = reason_code
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = store.select(
            f"SELECT {', '.join(REJECTION_COLUMNS)} FROM rejections FINAL {where} "
            "ORDER BY received_at DESC, rejection_id LIMIT {limit:UInt32}", params)
        rows = [plain(row) for row in rows]
        return respond(request, rows, rows, REJECTION_COLUMNS, format, "rejections", cache=False)

    return router
