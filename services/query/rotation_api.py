"""Book rotation (AGGREGATES.md "Book rotation") over HTTP, at a date D (``as_of``, default today):

- ``GET /v1/rotation/batches``: every batch dispatched by D in the area (its holder's), as it stood
  at D; filters ``status``, ``in_transit`` (dispatched, not yet received), ``overdue`` (not returned
  ``ROTATION_LOAN_DAYS`` after dispatch); paginated by ``batch_id``.
- ``GET /v1/rotation/libraries``: batches and copies on hand per holder library; paginated.
- ``GET /v1/rotation/provinces``: per province, copies in circulation, batches overdue, loss rate.
"""

# No `from __future__ import annotations` here: FastAPI must resolve the annotations of route and
# dependency closures (`Depends(read)`, a local name) when the routes are built.
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from services.domain.events import Scheme
from services.query import models
from services.query.access import Principal
from services.query.areas import AREA_CODE_COLUMNS, Places
from services.query.formats import FormatParam, PageToken, documented, paginate, plain, respond, wants_csv
from services.query.params import AreaQuery, ProvinceParam, SchemeParam, area_query, as_of_query
from services.store import rotation as rotation_store
from services.store.clickhouse import Store

BATCH_COLUMNS = ["batch_id", "status", "in_transit", "overdue", "origin", "origin_province.scheme",
                 "origin_province.code", "origin_province.name_vi", "origin_province.name_en", "origin_library_id",
                 "holder.library_id", "holder.name_vi", "holder.name_en", *AREA_CODE_COLUMNS, "dispatched_on",
                 "received_on", "returned_on", "titles", "copies", "ethnic_language_copies", "copies_lost",
                 "copies_damaged", "days_held"]
ON_HAND_COLUMNS = ["library_id", "name_vi", "name_en", *AREA_CODE_COLUMNS, "batches_on_hand", "copies_on_hand",
                   "ethnic_language_copies_on_hand", "days_held", "longest_held_days"]
PROVINCE_COLUMNS = ["scheme", "province_code", "name_vi", "name_en", "batches_dispatched", "copies_dispatched",
                    "batches_in_circulation", "copies_in_circulation", "batches_overdue", "copies_lost",
                    "copies_damaged", "loss_rate"]

PageSize = Annotated[int, Query(ge=1, le=1000, description="Rows per page (1–1000).")]


def province_rows(places: Places, store: Store, scheme: Scheme, as_of: date, loan_days: int) -> list[dict[str, Any]]:
    """``/v1/rotation/provinces``' rows for every province of ``scheme`` with batches (the caller
    keeps those the key reaches)."""
    rows = []
    for row in rotation_store.province_rotation(store, scheme, as_of, loan_days):
        unit = places.unit(scheme, row["province_code"])
        rows.append(plain({"scheme": scheme, "province_code": row["province_code"], "name_vi": unit["name_vi"],
                           "name_en": unit["name_en"], **{k: row[k] for k in PROVINCE_COLUMNS[4:]}}))
    return rows


def rotation_router(places: Places, store: Store, loan_days: int, read: Callable[..., Principal]) -> APIRouter:
    router = APIRouter(prefix="/rotation", tags=["Book rotation"])

    def names(as_of: date) -> dict[str, tuple[str, str]]:
        return {lib_id: (info.name_vi, info.name_en) for lib_id, info in places.libraries(as_of).items()}

    @router.get("/batches", summary="Rotation batches at a date (status, holder, copies), paginated",
                responses=documented(models.Batches))
    def batches(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        area: Annotated[AreaQuery, Depends(area_query)],
        as_of: Annotated[date, Depends(as_of_query)],
        status: Annotated[Literal["dispatched", "received", "returned"] | None, Query(
            description="Only batches in this state at `as_of`.")] = None,
        in_transit: Annotated[bool | None, Query(
            description="Only batches dispatched and not yet received (true), or the others (false).")] = None,
        overdue: Annotated[bool | None, Query(
            description="Only batches not returned ROTATION_LOAN_DAYS after dispatch (true), or the others.")]
        = None,
        page_size: PageSize = 100,
        page_token: PageToken = None,
        format: FormatParam = None,
    ) -> Response:
        resolved = places.resolve(principal, area)
        holders = names(as_of)
        rows = []
        for row in rotation_store.batches(store, places.typed(resolved, as_of), as_of):
            late = row["status"] != "returned" and (as_of - row["dispatched_on"]).days > loan_days
            moving = row["status"] == "dispatched"
            if (status and row["status"] != status) or (in_transit is not None and moving != in_transit) or (
                    overdue is not None and late != overdue):
                continue
            name_vi, name_en = holders.get(row["library_id"], (row["library_id"], row["library_id"]))
            rows.append(plain({
                "batch_id": row["batch_id"], "status": row["status"], "in_transit": moving, "overdue": late,
                "origin": row["origin"],
                "origin_province": {k: v for k, v in places.unit("2025", row["origin_province"]).items()
                                    if k != "level"},
                "origin_library_id": row["origin_library_id"],
                "holder": {"library_id": row["library_id"], "name_vi": name_vi, "name_en": name_en},
                "areas": places.row_codes(row),
                **{k: row[k] for k in ("dispatched_on", "received_on", "returned_on", "titles", "copies",
                                       "ethnic_language_copies", "copies_lost", "copies_damaged", "days_held")}}))
        csv = wants_csv(request, format)
        page, token, links = paginate(request, rows, "batch_id", None if csv else page_size, page_token)
        body = {"area": resolved.area, "library_type": area.library_type, "as_of": as_of.isoformat(),
                "loan_days": loan_days, "items": page, "next_page_token": token}
        return respond(request, body, page, BATCH_COLUMNS, format, "rotation-batches", headers=links)

    @router.get("/libraries", summary="Rotation books on hand per library at a date, paginated",
                responses=documented(models.OnHandList))
    def on_hand(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        area: Annotated[AreaQuery, Depends(area_query)],
        as_of: Annotated[date, Depends(as_of_query)],
        page_size: PageSize = 100,
        page_token: PageToken = None,
        format: FormatParam = None,
    ) -> Response:
        resolved = places.resolve(principal, area)
        holders = names(as_of)
        rows: list[dict[str, Any]] = []
        for row in rotation_store.on_hand_by_library(store, places.typed(resolved, as_of), as_of):
            name_vi, name_en = holders.get(row["library_id"], (row["library_id"], row["library_id"]))
            rows.append(plain({"library_id": row["library_id"], "name_vi": name_vi, "name_en": name_en,
                               "areas": places.row_codes(row),
                               **{k: row[k] for k in ("batches_on_hand", "copies_on_hand",
                                                      "ethnic_language_copies_on_hand", "days_held",
                                                      "longest_held_days")}}))
        csv = wants_csv(request, format)
        page, token, links = paginate(request, rows, "library_id", None if csv else page_size, page_token)
        body = {"area": resolved.area, "library_type": area.library_type, "as_of": as_of.isoformat(),
                "items": page, "next_page_token": token}
        return respond(request, body, page, ON_HAND_COLUMNS, format, "rotation-libraries", headers=links)

    @router.get("/provinces", summary="Rotation per province at a date: circulation, overdue batches, loss rate",
                responses=documented(models.ProvinceRotations))
    def provinces(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        as_of: Annotated[date, Depends(as_of_query)],
        scheme: SchemeParam = "legacy",
        province: ProvinceParam = None,
        format: FormatParam = None,
    ) -> Response:
        resolved = places.resolve(principal, AreaQuery(scheme, province))
        rows = [row for row in province_rows(places, store, scheme, as_of, loan_days)
                if not province or row["province_code"] == province]
        body = {"area": resolved.area, "as_of": as_of.isoformat(), "loan_days": loan_days, "items": rows}
        return respond(request, body, rows, PROVINCE_COLUMNS, format, f"rotation-provinces-{scheme}")

    return router
