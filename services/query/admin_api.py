"""What operators look at (scope ``admin``): dead letters and the intake's recorded rejections.

- ``GET /v1/dead-letters``: what could not be applied, and why (newest first).
- ``GET /v1/dead-letters/{id}``: one, with its raw submission (for re-driving).
- ``GET /v1/rejections``: submissions the intake refused (table ``rejections``), newest first.
- ``GET /v1/central-pull``: the ODK Central pull's state, per form (``services/intake/central_state.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from services.domain.errors import Reason
from services.intake.central_state import read_states
from services.problems import RequestRefused
from services.query import models
from services.query.deps import Admin, Services, StoreDep
from services.query.formats import FormatParam, documented, plain, respond
from services.store.clickhouse import REJECTION_COLUMNS

DEAD_LETTER_COLUMNS = ["dead_letter_id", "stage", "reason_code", "reason_vi", "reason_en", "instance_id", "form_id",
                       "library_id", "submitter", "content_hash", "recorded_at", "resolved"]
Limit = Annotated[int, Query(ge=1, le=10_000, description="At most this many, newest first.")]

router = APIRouter(tags=["Operations (admin)"])


@router.get("/dead-letters", summary="What could not be applied, and why (newest first)",
            responses=documented(list[models.DeadLetter]))
def dead_letters(
    request: Request,
    _: Admin,
    store: StoreDep,
    include_resolved: Annotated[bool, Query(description="Also those re-driven successfully since.")] = False,
    limit: Limit = 500,
    format: FormatParam = None,
) -> Response:
    rows = [plain({k: bool(v) if k == "resolved" else v for k, v in row.items() if k in DEAD_LETTER_COLUMNS})
            for row in store.dead_letters(not include_resolved, limit)]
    return respond(request, rows, rows, DEAD_LETTER_COLUMNS, format, "dead-letters", cache=False)


@router.get("/dead-letters/{dead_letter_id}", summary="One dead letter with its raw submission",
            responses={404: {"description": "No such dead letter (problem details)."}})
async def dead_letter(dead_letter_id: str, _: Admin, store: StoreDep) -> dict[str, Any]:
    rows = await run_in_threadpool(store.dead_letters, False, 10_000)
    found = next((row for row in rows if row["dead_letter_id"] == dead_letter_id), None)
    if found is None:
        raise RequestRefused(404, "Unknown dead letter", Reason(
            "unknown_dead_letter", f"Không có thư chết {dead_letter_id}", f"No dead letter {dead_letter_id}",
            "dead_letter_id"))
    return {**found, "resolved": bool(found["resolved"])}


@router.get("/rejections", summary="Submissions the intake refused, with the reason (newest first)",
            responses=documented(list[models.Rejection]))
def rejections(
    request: Request,
    _: Admin,
    store: StoreDep,
    form_id: Annotated[str | None, Query(max_length=100, description="Only this form.")] = None,
    reason_code: Annotated[str | None, Query(max_length=100, description="Only this reason.")] = None,
    limit: Limit = 100,
    format: FormatParam = None,
) -> Response:
    rows = [plain(row) for row in store.rejections(form_id, reason_code, limit)]
    return respond(request, rows, rows, REJECTION_COLUMNS, format, "rejections", cache=False)


@router.get("/central-pull", summary="The ODK Central pull: per form, cursors, last poll, rows, last error, lag",
            response_model=models.CentralPull)
def central_pull(_: Admin, services: Services) -> dict[str, Any]:
    """Read from the state files the pull writes beside its cursors (embedded: this process's pull;
    distributed: ``central-pull``'s, on a volume this service mounts). No form: no pull has run here."""
    states = read_states(services.central_dir) if services.central_dir else []
    return {"poll_interval_s": services.central_interval_s,
            "forms": [state.as_json(services.central_interval_s) for state in states]}
