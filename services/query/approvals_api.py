"""Approval of periods by area over HTTP (``/v1/approvals``), and the ``approved``/``provisional``
mark of the visit figures. The rules are ``services/domain/approvals.py``'s; this module checks the
key's scope, reads what the approver sees and publishes the action on the bus (primary data: it
survives a replay or a rebuilt store; ``schemas/AGGREGATES.md``, "Approval").

An action is published, then folded: the answer is 202 with the action's ids; the approvals, the
queue and the figures show it once the processors have archived it (at once in the embedded stack,
whose reads wait for what was published before them). What is refused here (409) is refused again
by the fold in log order, so two approvals racing through two replicas cannot both take effect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from services.bus.base import PublishFailed
from services.clock import now_local, today_local
from services.domain.approvals import (
    HELD_EVENT_TYPES,
    VISIT_LOGGED,
    Action,
    Approval,
    ApprovalAction,
    Approvals,
    ChainRow,
    Covered,
    held_changes,
)
from services.domain.errors import Reason
from services.domain.events import Scheme
from services.domain.flag_checks import FlagCheck
from services.domain.periods import months_between, months_of
from services.domain.reference import Reference
from services.problems import RequestRefused
from services.query import models
from services.query.access import Principal
from services.query.deps import ApprovalsDep, CurrentKey, ReferenceDep, Services
from services.query.formats import documented
from services.query.params import NAMED_PERIOD, PROVINCE_CODE, asked_period
from services.store.aggregates import ApprovedRows
from services.store.approvals import ApprovalReader
from services.store.clickhouse import AreaFilter

router = APIRouter(tags=["Approval of periods"])

ApprovalId = Annotated[str, Path(description="The approval's id (`approval_id`).", max_length=64)]


class ApprovalRequest(BaseModel):
    """A month or a quarter of a province to approve."""

    scheme: Scheme
    province: str = Field(pattern=PROVINCE_CODE, description="Province code under `scheme`.")
    period: str = Field(pattern=NAMED_PERIOD, description="`2026-03` or `2026-Q1`.")


# --- the figures: approved or provisional ------------------------------------------------------------

def _province_of(area: AreaFilter, reference: Reference) -> str | None:
    if area.province_code:
        return area.province_code
    if area.commune_code:
        commune = reference.commune(area.scheme, area.commune_code)
        return commune.province_code if commune else None
    if area.library_id and area.library_id in reference.libraries:
        return reference.libraries[area.library_id].area(area.scheme).province_code
    return None


@dataclass(frozen=True)
class FigureApprovals:
    """What the approvals make of a figure of one area, dates and form: the months approved for the
    whole area (``Covered``) and their approved rows, which the store counts in place of the live ones."""

    covered: Covered
    rows: ApprovedRows

    def status(self, start: date, end: date) -> Literal["approved", "provisional"]:
        """``approved`` when every month from ``start`` to ``end`` is approved for the whole area."""
        return self.covered.status(months_between(start, end))

    @property
    def approved(self) -> ApprovedRows | None:
        """The approved months and their rows; None when no month is approved."""
        return self.rows if self.rows.months else None

    def briefs(self) -> list[dict[str, Any]]:
        return approval_briefs(self.covered)


def figure_approvals(reader: ApprovalReader, reference: Reference, area: AreaFilter, start: date, end: date,
                     event_type: str = VISIT_LOGGED) -> FigureApprovals:
    """The approvals of a figure of the form ``event_type`` (visits by default) of ``area`` (of the library
    type asked) between ``start`` and ``end``: every figure an approval holds asks here (``/v1/visits``,
    ``/v1/growth``, K4, the activity series, lineage)."""
    approvals = reader.approvals()
    province = _province_of(area, reference)
    if not approvals.active() or (province is None and (area.library_id or area.commune_code)):
        return FigureApprovals(Covered({}), ApprovedRows((), ()))

    def found() -> FigureApprovals:
        covered = approvals.covered(area.scheme, province, start, end, event_type)
        # (a row's fields as they are: model_dump would copy each of a province-quarter's ~10,000 rows)
        rows = covered.approved_rows(lambda row: start <= row.day <= end and area.row_contains(vars(row)),
                                     event_type)
        return FigureApprovals(covered, ApprovedRows(tuple(covered.months),
                                                     tuple(sorted(rows, key=lambda row: row.root_id))))

    # once per figure while the approvals stand (~10,000 rows each)
    return reader.derived(approvals, ("figure", area, start, end, event_type), found)


def approval_briefs(covered: Covered) -> list[dict[str, Any]]:
    """The approvals that make a figure's approved months, in brief (a figure's ``approvals``)."""
    return [_brief(a) for a in covered.approvals()]


def _brief(approval: Approval) -> dict[str, Any]:
    return {"approval_id": approval.approval_id, "scheme": approval.scheme, "province": approval.province,
            "period": approval.period, "approved_by": approval.by, "approved_at": approval.at.isoformat(),
            "region_accepted_by": approval.accepted_by}


# --- who may do what ---------------------------------------------------------------------------------

def refuse_scope(principal: Principal, what_vi: str, what_en: str) -> RequestRefused:
    return RequestRefused(403, "Not allowed", Reason(
        "no_approve_scope", f"Khoá {principal.name!r} không được {what_vi}.",
        f"Key {principal.name!r} may not {what_en}.", "Authorization"))


def _check_approver(principal: Principal, scheme: Scheme, province: str) -> None:
    if not principal.approval_reach().province(scheme, province):
        raise refuse_scope(principal, f"phê duyệt tỉnh {province} ({scheme}) — cần approve:province:{scheme}:"
                                       f"{province}", f"approve province {province} ({scheme}): it needs "
                                       f"approve:province:{scheme}:{province}")


def _approval(approvals: Approvals, approval_id: str) -> Approval:
    found = approvals.by_id.get(approval_id)
    if found is None:
        raise RequestRefused(404, "Unknown approval", Reason(
            "unknown_approval", f"Không có phê duyệt {approval_id}.", f"No approval {approval_id}.", "approval_id"))
    return found


def _publish(services: Services, approvals: Approvals, action: ApprovalAction) -> dict[str, Any]:
    """Check ``action`` against the approvals as they stand (409), then publish it (503 if the bus does
    not take it)."""
    why = approvals.why_not(action)
    if why is not None:
        raise RequestRefused(409, "Conflict", why)
    publish(services, action)
    return {"action_id": action.action_id, "approval_id": action.approval_id, "action": action.action,
            "scheme": action.scheme, "province": action.province, "period": action.period, "by": action.by,
            "at": action.at.isoformat()}


def publish(services: Services, action: ApprovalAction | FlagCheck) -> None:
    """Publish an officer's action on the bus (503 if this service has none, or it does not take it)."""
    if services.publisher is None:
        raise RequestRefused(503, "Approvals unavailable", Reason(
            "no_bus", "Dịch vụ này không ghi được phê duyệt hay đánh dấu kiểm tra (không có bus).",
            "This service cannot record approvals or checks (no bus).", None))
    try:
        services.publisher.publish(action)
    except PublishFailed as exc:
        raise RequestRefused(503, "Bus unavailable", Reason(
            "bus_unavailable", "Chưa ghi được; hãy thử lại.", f"Not recorded ({exc}); try again.", None),
            retry_after=5) from exc


def _action(principal: Principal, approval: Approval, action: Action, **fields: Any) -> ApprovalAction:
    return ApprovalAction(action_id=str(uuid.uuid4()), action=action, approval_id=approval.approval_id,
                          scheme=approval.scheme, province=approval.province, period=approval.period,
                          by=principal.name, at=now_local(), **fields)


# --- the routes ----------------------------------------------------------------------------------------

@router.post("/approvals", status_code=202,
             summary="Approve a month or a quarter of a province's reports (visit logs and activity forms)",
             responses=documented(models.ApprovalActionTaken))
def approve(request: Annotated[ApprovalRequest, Body()], principal: CurrentKey, services: Services,
            reference: ReferenceDep, reader: ApprovalsDep) -> dict[str, Any]:
    if reference.province(request.scheme, request.province) is None:
        raise RequestRefused(404, "Unknown province", Reason(
            "unknown_province", f"Không có tỉnh {request.province} ({request.scheme}).",
            f"No province {request.province} under scheme {request.scheme}.", "province"))
    _check_approver(principal, request.scheme, request.province)
    months = tuple(months_of(asked_period(request.period)))
    if months[0] > today_local():
        raise RequestRefused(400, "Period not begun", Reason(
            "period_not_begun", f"Kỳ {request.period} chưa bắt đầu.", f"{request.period} has not begun.", "period"))
    rows = reader.province_rows(request.scheme, request.province, months)
    action = ApprovalAction(action_id=str(uuid.uuid4()), action="approve", approval_id=str(uuid.uuid4()),
                            scheme=request.scheme, province=request.province, period=request.period,
                            by=principal.name, at=now_local(), rows=rows, event_types=list(HELD_EVENT_TYPES))
    return _publish(services, reader.approvals(), action)


@router.get("/approvals", summary="Approvals (active and past) with their history: who, when, what the figures were",
            responses=documented(models.ApprovalList))
def list_approvals(
    principal: CurrentKey, reader: ApprovalsDep,
    scheme: Annotated[Scheme | None, Query(description="Only approvals under this scheme.")] = None,
    province: Annotated[str | None, Query(pattern=PROVINCE_CODE, description="Only this province.")] = None,
    status: Annotated[Literal["active", "unapproved"] | None, Query(description="Only these.")] = None,
) -> dict[str, Any]:
    read, approve = principal.reach(), principal.approval_reach()
    items = []
    for approval in reader.approvals().by_id.values():
        if not (principal.approves_region or read.province(approval.scheme, approval.province)
                or approve.province(approval.scheme, approval.province)):
            continue  # a key sees the approvals of the provinces it reads or approves
        summary = approval.summary()
        if (scheme and approval.scheme != scheme) or (province and approval.province != province) or (
                status and summary["status"] != status):
            continue
        items.append(summary)
    return {"approvals": items}


@router.delete("/approvals/{approval_id}", status_code=202, summary="Un-approve: the months return to live figures",
               responses=documented(models.ApprovalActionTaken))
def unapprove(approval_id: ApprovalId, principal: CurrentKey, services: Services,
              reader: ApprovalsDep) -> dict[str, Any]:
    approvals = reader.approvals()
    approval = _approval(approvals, approval_id)
    _check_approver(principal, approval.scheme, approval.province)
    return _publish(services, approvals, _action(principal, approval, "unapprove"))


@router.post("/approvals/{approval_id}/region-acceptance", status_code=202,
             summary="Accept a provincial approval at the region level (scope approve:region)",
             responses=documented(models.ApprovalActionTaken))
def accept(approval_id: ApprovalId, principal: CurrentKey, services: Services, reader: ApprovalsDep) -> dict[str, Any]:
    approvals = reader.approvals()
    approval = _approval(approvals, approval_id)
    if not principal.approves_region:
        raise refuse_scope(principal, "chấp nhận ở cấp vùng — cần approve:region",
                            "accept at the region level: it needs approve:region")
    return _publish(services, approvals, _action(principal, approval, "accept"))


def _queue(reader: ApprovalReader, approval: Approval) -> list[Any]:
    return held_changes(approval, reader.province_rows(approval.scheme, approval.province, approval.months))


@router.get("/approvals/{approval_id}/queue", summary="Changes held by an approval, each with what it would change",
            responses=documented(models.HeldChanges))
def queue(approval_id: ApprovalId, principal: CurrentKey, reader: ApprovalsDep) -> dict[str, Any]:
    approval = _approval(reader.approvals(), approval_id)
    if not principal.approves_region:
        _check_approver(principal, approval.scheme, approval.province)
    return {"approval": _brief(approval), "items": [c.as_dict() for c in _queue(reader, approval)]}


def _decide(decision: Action, approval_id: str, item_id: str, principal: Principal, services: Services,
            reader: ApprovalReader) -> dict[str, Any]:
    approvals = reader.approvals()
    approval = _approval(approvals, approval_id)
    _check_approver(principal, approval.scheme, approval.province)
    change = next((c for c in _queue(reader, approval) if c.item_id == item_id), None)
    if change is None:
        raise RequestRefused(404, "Unknown held change", Reason(
            "unknown_held_change", f"Không có thay đổi {item_id} đang chờ (đã quyết định, hoặc báo cáo đã đổi lại).",
            f"No held change {item_id} (decided already, or the report changed again).", "item_id"))
    rows: list[ChainRow] = [change.after] if decision == "apply" and change.after is not None else []
    return _publish(services, approvals, _action(principal, approval, decision, rows=rows, root_id=change.root_id,
                                                 target=change.target))


ItemId = Annotated[str, Path(description="The held change's `item_id`.", max_length=64)]


@router.post("/approvals/{approval_id}/queue/{item_id}/apply", status_code=202,
             summary="Apply a held change: the approved figure moves by its delta",
             responses=documented(models.ApprovalActionTaken))
def apply(approval_id: ApprovalId, item_id: ItemId, principal: CurrentKey, services: Services,
          reader: ApprovalsDep) -> dict[str, Any]:
    return _decide("apply", approval_id, item_id, principal, services, reader)


@router.post("/approvals/{approval_id}/queue/{item_id}/decline", status_code=202,
             summary="Decline a held change: the approved figure stays",
             responses=documented(models.ApprovalActionTaken))
def decline(approval_id: ApprovalId, item_id: ItemId, principal: CurrentKey, services: Services,
            reader: ApprovalsDep) -> dict[str, Any]:
    return _decide("decline", approval_id, item_id, principal, services, reader)
