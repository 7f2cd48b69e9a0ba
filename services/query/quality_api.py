"""``GET /v1/data-quality``: the data-quality flags the processors keep (``services/domain/quality.py``)
for the libraries of an area whose month overlaps a period: the parameters of ``/v1/visits`` (the
same ``Series`` dependency), a rule filter, keyset pages by ``flag_id``, or every row as CSV. Each
flag names its submission chains; ``/v1/lineage/visits`` with the flag's library and month lists
them with their versions.

An officer with the approve scope of a flag's province marks it "checked, correct" (Đã kiểm tra,
đúng) or withdraws the mark: an officer action published on the bus as approvals are
(``services/domain/flag_checks.py``), so the mark survives a replay; it applies to the flag as it
stood when marked.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, Field, field_validator

from services.clock import now_local
from services.domain.errors import Reason
from services.domain.flag_checks import NOTE_MAX, FlagCheck, Mark, applying
from services.domain.quality import RULES, Rule
from services.problems import RequestRefused
from services.query import models
from services.query.access import Principal
from services.query.approvals_api import publish, refuse_scope
from services.query.areas import AreaResolver
from services.query.deps import ApprovalsDep, AreasDep, CurrentKey, Series, Services, StoreDep
from services.query.formats import PageSize, PageToken, documented
from services.query.params import MONTH, asked_period
from services.store.clickhouse import Store
from services.store.quality import FlagQuery, flag, flags

router = APIRouter(tags=["Data quality"])

COLUMNS = ["flag_id", "library_id", "month", "rule", "reports", "message_vi", "message_en", "root_ids",
           "instance_ids", "checked", "checked_by", "checked_at", "check_note"]


def _item(row: dict, areas: AreaResolver, mark: Mark | None) -> dict:
    return {**{k: row[k] for k in ("flag_id", "library_id", "month", "rule", "message_vi", "message_en", "figures",
                                   "root_ids", "instance_ids", "reports")}, "areas": areas.row_codes(row),
            "checked": mark is not None, "checked_by": mark.by if mark else None,
            "checked_at": mark.at.isoformat() if mark else None, "check_note": mark.note if mark else None}


@router.get("/data-quality", summary="Data-quality flags of an area's libraries over a period (parameters of "
            "/v1/visits), paginated", responses=documented(models.DataQuality))
def data_quality(
    q: Series,
    store: StoreDep,
    areas: AreasDep,
    reader: ApprovalsDep,
    rule: Annotated[list[Rule] | None, Query(description="Only these rules (repeat the parameter for more).")] = None,
    checked: Annotated[bool | None, Query(description="Only the flags marked \"checked, correct\" (true) or "
                                                      "those not (false).")] = None,
    page_size: PageSize = 100,
    page_token: PageToken = None,
) -> Response:
    """Each flag that holds now: a library-month far from the library's history (`outlier`), with reports
    but no visit (`zero_visits`), with reports accepted after its deadline (`late_report`), whose
    breakdowns do not add up (`breakdown_mismatch`), or reporting for a day the library was not
    operating (`closed_day`); its message (Vietnamese, English), the figures it saw, its chains, and
    whether an officer marked it "checked, correct" (who, when, note)."""
    rules = tuple(dict.fromkeys(rule)) if rule else RULES
    marks = reader.flag_marks()
    rows = [_item(row, areas, applying(marks, row["flag_id"], row["fingerprint"]))
            for row in flags(store, FlagQuery(q.filter, q.period.start, q.period.end, rules))]
    if checked is not None:
        rows = [row for row in rows if row["checked"] is checked]
    body = {"area": q.area.area, "library_type": q.area.query.library_type, "start": q.period.start.isoformat(),
            "end": q.period.end.isoformat(), "rules": list(rules)}
    return q.respond_page(body, rows, "flag_id", COLUMNS, q.filename("data-quality"), page_size, page_token)


# --- "checked, correct" -------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class CheckRequest(BaseModel):
    note: str = Field(default="", max_length=NOTE_MAX, description="Why the figures are correct (optional).")

    @field_validator("note")
    @classmethod
    def _clean(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("control characters are not allowed")
        return unicodedata.normalize("NFC", value.strip())


LibraryId = Annotated[str, Path(description="The flag's library.", max_length=64)]
Month = Annotated[str, Path(description="The flag's month, `YYYY-MM`.", pattern=MONTH)]


def _held(store: Store, principal: Principal, library_id: str, month: str, rule: Rule) -> dict[str, Any]:
    """The flag that holds (404 otherwise), if the key approves its province (403 otherwise; at once
    for a key that approves no province, whether the flag exists or not)."""
    reach = principal.approval_reach()
    if not reach.legacy:
        raise refuse_scope(principal, "đánh dấu cảnh báo — cần quyền phê duyệt tỉnh (approve:province:…)",
                           "mark flags: it needs a province's approve scope (approve:province:…)")
    found = flag(store, library_id, asked_period(month, "month").start, rule)
    if found is None:
        flag_id = f"{library_id}/{month}/{rule}"
        raise RequestRefused(404, "Unknown flag", Reason(
            "unknown_flag", f"Không có cảnh báo {flag_id} (hoặc nó không còn).",
            f"No flag {flag_id} (or it no longer holds).", "flag_id"))
    province = found["province_legacy"]
    if not reach.province("legacy", province):  # a 2025 scope covers its legacy provinces
        raise refuse_scope(principal, f"đánh dấu cảnh báo của tỉnh {province} (cũ) — cần quyền phê duyệt tỉnh đó",
                           f"mark a flag of legacy province {province}: it needs that province's approve scope")
    return found


def _taken(action: FlagCheck) -> dict[str, Any]:
    return {"action_id": action.action_id, "flag_id": action.flag_id, "action": action.action, "by": action.by,
            "at": action.at.isoformat(), "note": action.note}


def _action(principal: Principal, found: dict[str, Any], action: Literal["check", "uncheck"],
            fingerprint: str = "", note: str = "") -> FlagCheck:
    return FlagCheck(action_id=str(uuid.uuid4()), action=action, flag_id=found["flag_id"],
                     province=found["province_legacy"], fingerprint=fingerprint, note=note, by=principal.name,
                     at=now_local())


@router.post("/data-quality/{library_id}/{month}/{rule}/check", status_code=202,
             summary="Mark a flag \"checked, correct\" (Đã kiểm tra, đúng), as it stands now",
             responses=documented(models.FlagCheckTaken))
def check(library_id: LibraryId, month: Month, rule: Rule, principal: CurrentKey, services: Services,
          store: StoreDep, request: Annotated[CheckRequest | None, Body()] = None) -> dict[str, Any]:
    """Needs the approve scope of the flag's province (`approve:province:…`; a 2025 province's covers
    its legacy provinces). Marking again replaces the note. The mark applies to the flag's figures
    and report versions now: if they change, the flag is listed unchecked again."""
    found = _held(store, principal, library_id, month, rule)
    action = _action(principal, found, "check", found["fingerprint"], request.note if request else "")
    publish(services, action)
    return _taken(action)


@router.delete("/data-quality/{library_id}/{month}/{rule}/check", status_code=202,
               summary="Withdraw a flag's \"checked, correct\" mark", responses=documented(models.FlagCheckTaken))
def uncheck(library_id: LibraryId, month: Month, rule: Rule, principal: CurrentKey, services: Services,
            store: StoreDep, reader: ApprovalsDep) -> dict[str, Any]:
    found = _held(store, principal, library_id, month, rule)
    if reader.flag_marks().get(found["flag_id"]) is None:
        raise RequestRefused(409, "Not checked", Reason(
            "flag_not_checked", f"Cảnh báo {found['flag_id']} chưa được đánh dấu đã kiểm tra.",
            f"Flag {found['flag_id']} is not marked checked.", "flag_id"))
    action = _action(principal, found, "uncheck")
    publish(services, action)
    return _taken(action)
