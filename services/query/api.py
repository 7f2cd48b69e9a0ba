"""The query API (``/v1``): aggregates read from the store, for dashboards and tools."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from services.clock import today_local
from services.domain.events import Scheme
from services.domain.reference import Reference
from services.query.problems import Problem
from services.store.aggregates import Aggregates
from services.store.clickhouse import AreaFilter, Store


def query_router(store: Store, reference: Reference) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["Aggregates"])
    aggregates = Aggregates(store, reference)

    def _area(scheme: Scheme, province: str | None, commune: str | None) -> dict[str, Any]:
        if commune:
            unit = reference.commune(scheme, commune)
            if unit is None:
                raise Problem(404, "Unknown commune", f"No commune {commune} under scheme {scheme}", "commune")
            if province and unit.province_code != province:
                raise Problem(400, "Commune not in province",
                              f"Commune {commune} ({scheme}) lies in province {unit.province_code}, not {province}",
                              "commune")
            return {"scheme": scheme, "level": "commune", "code": commune, "province_code": unit.province_code,
                    "name_vi": unit.name_vi, "name_en": unit.name_en}
        if province:
            prov = reference.province(scheme, province)
            if prov is None:
                raise Problem(404, "Unknown province", f"No province {province} under scheme {scheme}", "province")
            return {"scheme": scheme, "level": "province", "code": province,
                    "name_vi": prov.name_vi, "name_en": prov.name_en}
        label = ("14 tỉnh của chương trình", "the 14 programme provinces") if scheme == "legacy" else (
            "10 tỉnh hiện nay", "the 10 current provinces")
        return {"scheme": scheme, "level": "region", "code": None, "name_vi": label[0], "name_en": label[1]}

    @router.get("/visits", summary="Visits, loans and registrations over time for an area")
    async def visits(
        scheme: Annotated[Literal["legacy", "2025"], Query(
            description="Admin scheme of the codes: `legacy` (before 2025-07-01) or `2025`.")] = "legacy",
        province: Annotated[str | None, Query(pattern=r"^\d{2}$", description="Province code.")] = None,
        commune: Annotated[str | None, Query(pattern=r"^\d{5}$", description="Commune code.")] = None,
        start: Annotated[date | None, Query(description="First day (default: 1 January last year).")] = None,
        end: Annotated[date | None, Query(description="Last day (default: today, Asia/Ho_Chi_Minh).")] = None,
        granularity: Annotated[Literal["day", "month", "quarter", "year"], Query()] = "month",
    ) -> dict[str, Any]:
        end = end or today_local()
        start = start or date(end.year - 1, 1, 1)
        if start > end:
            raise Problem(400, "Empty period", f"start {start} is after end {end}", "start")
        area = _area(scheme, province, commune)
        series = await run_in_threadpool(
            aggregates.visits, AreaFilter(scheme, province, commune), start, end, granularity)
        return {"area": area, "granularity": granularity, "start": start.isoformat(), "end": end.isoformat(),
                "series": series}

    @router.get("/dead-letters", summary="What could not be applied, and why (newest first)")
    async def dead_letters(
        include_resolved: Annotated[bool, Query(description="Also those re-driven successfully since.")] = False,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    ) -> list[dict[str, Any]]:
        rows = await run_in_threadpool(store.dead_letters, not include_resolved, limit)
        return [{k: v for k, v in row.items() if k not in ("raw_xml", "event_json")} for row in rows]

    @router.get("/dead-letters/{dead_letter_id}", summary="One dead letter with its raw submission")
    async def dead_letter(dead_letter_id: str) -> dict[str, Any]:
        rows = await run_in_threadpool(store.dead_letters, False, 10_000)
        found = next((row for row in rows if row["dead_letter_id"] == dead_letter_id), None)
        if found is None:
            raise Problem(404, "Unknown dead letter", f"No dead letter {dead_letter_id}", "dead_letter_id")
        return found

    return router
