"""Book rotation (AGGREGATES.md "Book rotation") over HTTP, at a date D (``as_of``, default today):

- ``GET /v1/rotation/batches``: every batch dispatched by D in the area (its holder's), as it stood
  at D; filters ``status``, ``in_transit`` (dispatched, not yet received), ``overdue`` (not returned
  ``ROTATION_LOAN_DAYS`` after dispatch); paginated by ``batch_id``.
- ``GET /v1/rotation/libraries``: batches and copies on hand per holder library; paginated.
- ``GET /v1/rotation/provinces``: per province, copies in circulation, batches overdue, loss rate.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from services.domain.events import Scheme
from services.query import models
from services.query.areas import AREA_CODE_COLUMNS, AreaResolver
from services.query.deps import AreaRequest, AreasDep, LoanDays, ProvinceRequest, StoreDep
from services.query.formats import PageSize, PageToken, documented, plain
from services.query.params import AsOf
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
router = APIRouter(prefix="/rotation", tags=["Book rotation"])


def province_rows(areas: AreaResolver, store: Store, scheme: Scheme, as_of: date,
                  loan_days: int) -> list[dict[str, Any]]:
    """``/v1/rotation/provinces``' rows for every province of ``scheme`` with batches (the caller
    keeps those the key reaches)."""
    rows = []
    for row in rotation_store.province_rotation(store, scheme, as_of, loan_days):
        unit = areas.unit(scheme, row["province_code"])
        rows.append(plain({"scheme": scheme, "province_code": row["province_code"], "name_vi": unit["name_vi"],
                           "name_en": unit["name_en"], **{k: row[k] for k in PROVINCE_COLUMNS[4:]}}))
    return rows


def _holder(areas: AreaResolver, as_of: date) -> dict[str, dict[str, str]]:
    """Each library's id and names at ``as_of`` (an unknown id is its own name)."""
    return {lib_id: {"library_id": lib_id, "name_vi": info.name_vi, "name_en": info.name_en}
            for lib_id, info in areas.libraries(as_of).items()}


def _unknown(library_id: str) -> dict[str, str]:
    return {"library_id": library_id, "name_vi": library_id, "name_en": library_id}


@router.get("/batches", summary="Rotation batches at a date (status, holder, copies), paginated",
            responses=documented(models.Batches))
def batches(
    asked: AreaRequest,
    as_of: AsOf,
    store: StoreDep,
    areas: AreasDep,
    loan_days: LoanDays,
    status: Annotated[Literal["dispatched", "received", "returned"] | None, Query(
        description="Only batches in this state at `as_of`.")] = None,
    in_transit: Annotated[bool | None, Query(
        description="Only batches dispatched and not yet received (true), or the others (false).")] = None,
    overdue: Annotated[bool | None, Query(
        description="Only batches not returned ROTATION_LOAN_DAYS after dispatch (true), or the others.")] = None,
    page_size: PageSize = 100,
    page_token: PageToken = None,
) -> Response:
    holders = _holder(areas, as_of)
    rows = []
    where = areas.aggregates.of_type(asked.area.filter, asked.area.query.library_type, as_of)
    for row in rotation_store.batches(store, where, as_of):
        late = row["status"] != "returned" and (as_of - row["dispatched_on"]).days > loan_days
        moving = row["status"] == "dispatched"
        if (status and row["status"] != status) or (in_transit is not None and moving != in_transit) or (
                overdue is not None and late != overdue):
            continue
        rows.append(plain({
            "batch_id": row["batch_id"], "status": row["status"], "in_transit": moving, "overdue": late,
            "origin": row["origin"],
            "origin_province": {k: v for k, v in areas.unit("2025", row["origin_province"]).items() if k != "level"},
            "origin_library_id": row["origin_library_id"],
            "holder": holders.get(row["library_id"]) or _unknown(row["library_id"]),
            "areas": areas.row_codes(row),
            **{k: row[k] for k in ("dispatched_on", "received_on", "returned_on", "titles", "copies",
                                   "ethnic_language_copies", "copies_lost", "copies_damaged", "days_held")}}))
    body = {"area": asked.area.area, "library_type": asked.area.query.library_type, "as_of": as_of.isoformat(),
            "loan_days": loan_days}
    return asked.respond_page(body, rows, "batch_id", BATCH_COLUMNS, "rotation-batches", page_size, page_token)


@router.get("/libraries", summary="Rotation books on hand per library at a date, paginated",
            responses=documented(models.OnHandList))
def on_hand(
    asked: AreaRequest,
    as_of: AsOf,
    store: StoreDep,
    areas: AreasDep,
    page_size: PageSize = 100,
    page_token: PageToken = None,
) -> Response:
    holders = _holder(areas, as_of)
    rows: list[dict[str, Any]] = []
    where = areas.aggregates.of_type(asked.area.filter, asked.area.query.library_type, as_of)
    for row in rotation_store.on_hand_by_library(store, where, as_of):
        rows.append(plain({**(holders.get(row["library_id"]) or _unknown(row["library_id"])),
                           "areas": areas.row_codes(row),
                           **{k: row[k] for k in ("batches_on_hand", "copies_on_hand",
                                                  "ethnic_language_copies_on_hand", "days_held",
                                                  "longest_held_days")}}))
    body = {"area": asked.area.area, "library_type": asked.area.query.library_type, "as_of": as_of.isoformat()}
    return asked.respond_page(body, rows, "library_id", ON_HAND_COLUMNS, "rotation-libraries", page_size, page_token)


@router.get("/provinces", summary="Rotation per province at a date: circulation, overdue batches, loss rate",
            responses=documented(models.ProvinceRotations))
def provinces(asked: ProvinceRequest, as_of: AsOf, store: StoreDep, areas: AreasDep, loan_days: LoanDays) -> Response:
    scheme, province = asked.area.query.scheme, asked.area.query.province
    rows = [row for row in province_rows(areas, store, scheme, as_of, loan_days)
            if not province or row["province_code"] == province]
    body = {"area": asked.area.area, "as_of": as_of.isoformat(), "loan_days": loan_days, "items": rows}
    return asked.respond(body, rows, PROVINCE_COLUMNS, f"rotation-provinces-{scheme}")
