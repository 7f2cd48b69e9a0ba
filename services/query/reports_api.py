"""``GET /v1/reports/province``: a province's programme report for a month or a quarter, as an XLSX
workbook (``report.py`` gathers the figures from the API's own functions, ``report_xlsx.py`` writes
them), in Vietnamese or English. Scopes as every province route: a province key gets its provinces
only, and the whole region is no province (400 with a read:all key, 403 with a province key).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from services.clock import today_local
from services.domain.errors import Reason
from services.problems import RequestRefused
from services.query.deps import AggregatesDep, AreasDep, LoanDays, Reader, Services, StoreDep
from services.query.formats import LIST_RESPONSES, NO_STORE
from services.query.params import NAMED_PERIOD, AreaQuery, asked_period, province_query
from services.query.report import build_report
from services.query.report_xlsx import XLSX_MEDIA_TYPE, filenames, write_xlsx

_CHUNK = 64 * 1024
_DESCRIPTION = """Báo cáo tỉnh: sổ XLSX theo mẫu báo cáo chương trình của một tỉnh, một tháng hoặc một quý.
A province's programme report for a month (`2026-03`) or a quarter (`2026-Q1`), as an XLSX workbook:
K1–K4 against the year's targets, visits by month beside last year's, libraries in the model by
commune, rotation, mobile sessions, reading promotion, training, donations, completeness and
timeliness, and the approval of each month. Each figure is the one the API answers for the same
area and period (indicators and stock figures as of the period's last day, or today while it runs).
Labels in Vietnamese (`lang=vi`) or English (`lang=en`)."""

router = APIRouter(prefix="/reports", tags=["Reports"])

_RESPONSES = {**{status: answer for status, answer in LIST_RESPONSES.items() if status != 304},
              200: {"description": "The workbook (XLSX).",
                    "content": {XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("/province", summary="A province's programme report for a month or a quarter (XLSX)",
            description=_DESCRIPTION, responses=_RESPONSES, response_class=StreamingResponse)
def province_report(
    services: Services,
    principal: Reader,
    area: Annotated[AreaQuery, Depends(province_query)],
    areas: AreasDep,
    aggregates: AggregatesDep,
    store: StoreDep,
    loan_days: LoanDays,
    period: Annotated[str, Query(pattern=NAMED_PERIOD, description=(
        "A month (`2026-03`) or a quarter (`2026-Q1`), begun."))],
    lang: Annotated[Literal["vi", "en"], Query(description="Labels in Vietnamese (default) or English.")] = "vi",
) -> StreamingResponse:
    resolved = areas.resolve(principal, area)  # unknown or out of reach: refused before any work
    if not area.province:
        raise RequestRefused(400, "Province required", Reason(
            "province_required", "Báo cáo tỉnh cần một tỉnh (tham số province).",
            "The provincial report is for one province (parameter province).", "province"))
    asked = asked_period(period)
    if asked.start > today_local():
        raise RequestRefused(400, "Period not begun", Reason(
            "period_not_begun", f"kỳ {period} chưa bắt đầu (hôm nay là {today_local()})",
            f"period {period} has not begun (today is {today_local()})", "period"))
    report = build_report(aggregates, services.approvals, areas, store, principal, resolved, period, asked, loan_days)
    body = write_xlsx(report, lang, services.forms_dir)
    plain_name, name = filenames(report)
    disposition = f"attachment; filename=\"{plain_name}\"; filename*=UTF-8''{quote(name, safe='')}"
    return StreamingResponse(_chunks(body), media_type=XLSX_MEDIA_TYPE, headers={
        "Content-Disposition": disposition, "Content-Length": str(len(body)), "Cache-Control": NO_STORE,
        "X-Content-Type-Options": "nosniff"})


def _chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), _CHUNK):
        yield body[start:start + _CHUNK]
