"""Approval of periods by area (issue #17): who approved which figures (visits and the activity
forms': mobile sessions, reading promotion, training, donations), and what a late report would
change in them. Plain domain code: the bus carries the actions, the store archives them, the
query API reads them (``schemas/AGGREGATES.md``, "Approval").

- An **approval** is of a month or a quarter (``2026-03``, ``2026-Q1``; a quarter covers its months)
  for one province under one scheme (a 2025 province covers every legacy province that went into it).
  It records what the approver saw: the report chains (visit logs and activity forms) counted in
  the province and months then,
  each with its version and counts (``ChainRow``), so "what the figures were" is kept, and so that
  which version is approved is decided by what the approver was shown, not by when an event was
  folded (there is no order between Kafka partitions; a snapshot carried by the approval needs none).
- While the approval stands, the **approved figure** is the sum of its approved rows; the live fold
  keeps running beside it. A chain whose live row in the province and months differs from its
  approved row (an edit, a new report, a retraction, a report moved in or out) is a **held change**
  in the approval's queue, with its delta (live − approved). **Apply** makes the live row the
  approved one (the figure moves by exactly the delta; the action carries the row applied, so the
  approved figure never depends on a later read); **decline** keeps the approved row (the change is
  not shown again until the chain changes again); **unapprove** returns the months to the live fold.
- A provincial approval may be **accepted at the region level** (scope ``approve:region``).

Every action is an ``ApprovalAction`` event, folded in log order (one partition): two approvals of
the same months and area, or a decision on an approval that is no longer active, are decided by
the log: the first wins, the other is kept in the history as ``ignored`` with why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, field_serializer, field_validator

from services.domain import periods
from services.domain.chain_rows import EVENT_TYPES, VALUES, VISIT_LOGGED, ChainRow, pack_rows, unpack_rows
from services.domain.errors import Reason
from services.domain.events import Scheme
from services.domain.forms import FORMS
from services.domain.periods import Granularity, label, named_period

Action = Literal["approve", "unapprove", "apply", "decline", "accept"]
FORM_OF = {spec.event_type: form_id for form_id, spec in FORMS.items()}  # a chain's event type → its form
# The forms an approval made now holds: every form a chain row can be of (the registry and the
# rotation are not reports of a period).
HELD_EVENT_TYPES: tuple[str, ...] = EVENT_TYPES
APPROVED, PROVISIONAL = "approved", "provisional"


def months_of(period: str) -> tuple[date, ...]:
    """The months (their first days) of ``2026-03`` or ``2026-Q1``; ValueError otherwise."""
    return tuple(periods.months_of(named_period(period)))


class ApprovalAction(BaseModel):
    """An approval, un-approval, decision or region acceptance, as published on the bus."""

    event_type: Literal["approval_action"] = "approval_action"  # first: the codec reads it there
    action_id: str
    action: Action
    approval_id: str
    scheme: Scheme
    province: str
    period: str  # the approval's period (2026-03 or 2026-Q1)
    by: str  # the API key's name
    at: datetime
    rows: list[ChainRow] = []  # approve: what the approver saw; apply: the live row applied (none: it left)
    root_id: str = ""  # apply/decline: the chain decided on
    target: str = ""  # apply/decline: the live version decided on ("" : the chain no longer counts here)
    # approve: the forms (event types) whose reports the approval holds. An approval made before the
    # activity forms were held (no such field) holds the visit logs only: its snapshot has no others.
    event_types: list[str] = [VISIT_LOGGED]

    # On the wire and in the archive the rows are packed (``chain_rows``: a province-quarter's
    # snapshot must fit a Kafka message); read back, they are rows again. The plain list is read too.
    @field_serializer("rows", when_used="json")
    def _pack(self, rows: list[ChainRow]) -> str:
        return pack_rows(rows)

    @field_validator("rows", mode="before")
    @classmethod
    def _unpack(cls, value: object) -> object:
        return unpack_rows(value) if isinstance(value, str) else value


@dataclass
class Approval:
    approval_id: str
    scheme: Scheme
    province: str
    period: str
    months: tuple[date, ...]
    by: str
    at: datetime
    figures: dict[str, dict[str, int]]  # month label → the approved sums when approved
    rows: dict[str, ChainRow]  # root_id → the approved contribution
    active: bool = True
    unapproved_by: str | None = None
    unapproved_at: datetime | None = None
    accepted_by: str | None = None  # accepted at the region level
    accepted_at: datetime | None = None
    declined: set[tuple[str, str]] = field(default_factory=set)  # (root_id, target)
    history: list[dict[str, object]] = field(default_factory=list)
    event_types: frozenset[str] = frozenset({VISIT_LOGGED})  # the forms whose reports it holds

    def covers(self, row: ChainRow) -> bool:
        """Whether a chain row lies in the approval's province, months and forms."""
        return (row.province(self.scheme) == self.province and row.month in self.months
                and row.event_type in self.event_types)

    def summary(self) -> dict[str, object]:
        return {"approval_id": self.approval_id, "scheme": self.scheme, "province": self.province,
                "period": self.period, "months": [label(m, "month") for m in self.months],
                "forms": [FORM_OF[e] for e in HELD_EVENT_TYPES if e in self.event_types],
                "status": "active" if self.active else "unapproved", "approved_by": self.by,
                "approved_at": self.at.isoformat(), "figures": self.figures,
                "unapproved_by": self.unapproved_by,
                "unapproved_at": self.unapproved_at.isoformat() if self.unapproved_at else None,
                "region_accepted_by": self.accepted_by,
                "region_accepted_at": self.accepted_at.isoformat() if self.accepted_at else None,
                "history": self.history}


def _conflict(vi: str, en: str) -> Reason:
    return Reason("approval_conflict", f"{vi[0].upper()}{vi[1:]}.", f"{en[0].upper()}{en[1:]}.", "approval_id")


def legacy_set(scheme: Scheme, province: str | None, mapping: Mapping[str, str]) -> frozenset[str]:
    """The legacy provinces an area is made of (``mapping``: legacy → 2025); the region: all of them."""
    if province is None:
        return frozenset(mapping)
    if scheme == "legacy":
        return frozenset({province})
    return frozenset(old for old, new in mapping.items() if new == province)


def sums(rows: Iterable[ChainRow]) -> dict[str, dict[str, int]]:
    """Month label → the summed counts of the visit logs among ``rows``."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        if not row.is_visit_log:
            continue
        into = out.setdefault(label(row.month, "month"), dict.fromkeys(VALUES, 0))
        for name in VALUES:
            into[name] += row.counts.get(name, 0)
    return out


class Approvals:
    """Every approval, folded from its actions in log order."""

    def __init__(self, mapping: Mapping[str, str]):
        self.mapping = mapping
        self.by_id: dict[str, Approval] = {}
        self.ignored: list[dict[str, object]] = []

    @classmethod
    def fold(cls, actions: Iterable[ApprovalAction], mapping: Mapping[str, str]) -> Approvals:
        approvals = cls(mapping)
        for action in actions:
            approvals.take(action)
        return approvals

    def active(self) -> list[Approval]:
        return [a for a in self.by_id.values() if a.active]

    def why_not(self, action: ApprovalAction) -> Reason | None:
        """Why ``action`` cannot be taken now (None: it can), in Vietnamese and English. The API asks
        before publishing; the fold asks again in log order, which decides between two that raced."""
        if action.action == "approve":
            if action.approval_id in self.by_id:
                return _conflict(f"phê duyệt {action.approval_id} đã có",
                                 f"approval {action.approval_id} exists already")
            area = legacy_set(action.scheme, action.province, self.mapping)
            months = set(months_of(action.period))
            for other in self.active():
                if months & set(other.months) and area & legacy_set(other.scheme, other.province, self.mapping):
                    return _conflict(
                        f"kỳ {other.period} của tỉnh {other.province} ({other.scheme}) đã được phê duyệt "
                        f"({other.approval_id}): hãy bỏ phê duyệt kỳ đó trước",
                        f"{other.period} of {other.scheme} province {other.province} is approved already "
                        f"({other.approval_id}): un-approve it first")
            return None
        approval = self.by_id.get(action.approval_id)
        if approval is None:
            return _conflict(f"không có phê duyệt {action.approval_id}", f"no approval {action.approval_id}")
        if not approval.active:
            return _conflict(f"phê duyệt {action.approval_id} đã bị bỏ",
                             f"approval {action.approval_id} was un-approved")
        if action.action == "accept" and approval.accepted_by is not None:
            return _conflict(f"phê duyệt {action.approval_id} đã được cấp vùng chấp nhận",
                             f"approval {action.approval_id} was accepted at the region level already")
        return None

    def take(self, action: ApprovalAction) -> bool:
        """Fold one action; False (and kept as ignored, with why) when it cannot be taken."""
        why = self.why_not(action)
        entry: dict[str, object] = {"action_id": action.action_id, "action": action.action, "by": action.by,
                                    "at": action.at.isoformat(), "root_id": action.root_id or None,
                                    "target": action.target or None}
        if why is not None:
            self.ignored.append({**entry, "approval_id": action.approval_id, "ignored": why.message_en})
            if action.approval_id in self.by_id:
                self.by_id[action.approval_id].history.append({**entry, "ignored": why.message_en})
            return False
        if action.action == "approve":
            rows = {row.root_id: row for row in action.rows}
            approval = Approval(action.approval_id, action.scheme, action.province, action.period,
                                months_of(action.period), action.by, action.at, sums(rows.values()), rows,
                                event_types=frozenset(action.event_types))
            self.by_id[approval.approval_id] = approval
            approval.history.append({**entry, "figures": approval.figures})
            return True
        approval = self.by_id[action.approval_id]
        if action.action == "unapprove":
            approval.active, approval.unapproved_by, approval.unapproved_at = False, action.by, action.at
            entry["figures"] = sums(approval.rows.values())
        elif action.action == "accept":
            approval.accepted_by, approval.accepted_at = action.by, action.at
        elif action.action == "apply":
            before = approval.rows.pop(action.root_id, None)
            after = next((row for row in action.rows if approval.covers(row)), None)
            if after is not None:
                approval.rows[action.root_id] = after
            entry["delta"] = delta(before, after)
        else:  # decline
            approval.declined.add((action.root_id, action.target))
        approval.history.append(entry)
        return True

    def covering(self, scheme: Scheme, province: str | None, month: date, event_type: str = VISIT_LOGGED
                 ) -> list[Approval] | None:
        """The active approvals holding the form ``event_type`` that together cover the area (its
        legacy provinces) in ``month``; None if they do not cover all of it."""
        wanted = legacy_set(scheme, province, self.mapping)
        found = [a for a in self.active() if month in a.months and event_type in a.event_types
                 and legacy_set(a.scheme, a.province, self.mapping) & wanted]
        covered = frozenset().union(*(legacy_set(a.scheme, a.province, self.mapping) for a in found))
        return found if wanted and wanted <= covered else None

    def covered(self, scheme: Scheme, province: str | None, start: date, end: date,
                event_type: str = VISIT_LOGGED) -> Covered:
        """The months between ``start`` and ``end`` whose reports of the form ``event_type`` are approved
        for the whole area (``covering``)."""
        candidates = sorted({m for a in self.active() for m in a.months if start.replace(day=1) <= m <= end})
        return Covered({m: tuple(found) for m in candidates
                        if (found := self.covering(scheme, province, m, event_type)) is not None})


def delta(before: ChainRow | None, after: ChainRow | None) -> dict[str, int | float]:
    """What replacing ``before`` by ``after`` changes in its form's figures (every count of the form)."""
    either = after or before
    names = either.values if either else VALUES
    return {name: (after.counts.get(name, 0) if after else 0) - (before.counts.get(name, 0) if before else 0)
            for name in names}


def item_id(root_id: str, target: str) -> str:
    """A held change's id: its chain and the live version it would bring (path-safe)."""
    return hashlib.sha256(f"{root_id}\n{target}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class HeldChange:
    """A live change of a chain inside an approved province and months, not applied."""

    approval_id: str
    root_id: str
    before: ChainRow | None  # the approved contribution
    after: ChainRow | None  # the live one (None: the chain no longer counts here)

    @property
    def target(self) -> str:
        return self.after.event_id if self.after else ""

    @property
    def item_id(self) -> str:
        return item_id(self.root_id, self.target)

    def as_dict(self) -> dict[str, object]:
        kind = "new" if self.before is None else "withdrawn" if self.after is None else "edited"
        either = self.after or self.before
        return {"item_id": self.item_id, "approval_id": self.approval_id, "root_id": self.root_id, "change": kind,
                "form": FORM_OF[either.event_type if either else VISIT_LOGGED],
                "before": _row(self.before), "after": _row(self.after), "delta": delta(self.before, self.after)}


def _row(row: ChainRow | None) -> dict[str, object] | None:
    if row is None:
        return None
    return {"instance_id": row.event_id, "library_id": row.library_id, "occurred_on": row.day.isoformat(),
            "period": label(row.month, "month"), **row.labels, **row.counts}


def held_changes(approval: Approval, live: Iterable[ChainRow]) -> list[HeldChange]:
    """The queue of ``approval``: each chain whose live row (``live``: the chain rows now counted in its
    province and months) differs from its approved row, unless that change was declined."""
    now = {row.root_id: row for row in live if approval.covers(row)}
    if not approval.active:
        return []
    changes = []
    for root_id in sorted(set(now) | set(approval.rows)):
        before, after = approval.rows.get(root_id), now.get(root_id)
        if before == after:
            continue
        change = HeldChange(approval.approval_id, root_id, before, after)
        if (root_id, change.target) not in approval.declined:
            changes.append(change)
    return changes


@dataclass(frozen=True)
class Covered:
    """The months of a figure's dates that are approved for its whole area, each with the approvals that
    together cover the area then (``Approvals.covered``). A figure is served from these approvals in
    those months, whatever else it draws on: the live rows of a covered month are left out of what the
    store sums, and its approved rows (``approved_rows``) are counted instead."""

    months: Mapping[date, tuple[Approval, ...]]

    def approved_rows(self, contains: Callable[[ChainRow], bool], event_type: str = VISIT_LOGGED) -> list[ChainRow]:
        """The approved rows of the form ``event_type`` in the covered months that lie in the area asked
        (``contains``)."""
        return [row for month, found in self.months.items() for approval in found
                for row in approval.rows.values()
                if row.month == month and row.event_type == event_type and contains(row)]

    def status(self, months: Iterable[date]) -> Literal["approved", "provisional"]:
        """``approved`` when every one of ``months`` is covered (and there is at least one)."""
        months = list(months)
        return APPROVED if months and all(m in self.months for m in months) else PROVISIONAL

    def point_status(self, period: str, granularity: Granularity, start: date, end: date
                     ) -> Literal["approved", "provisional"]:
        """A series point's mark: ``approved`` when every month of it (within start–end) is covered."""
        return self.status(m for m in periods.months_between(start, end) if label(m, granularity) == period
                           or (granularity == "day" and m == date.fromisoformat(period).replace(day=1)))

    def approvals(self) -> list[Approval]:
        return list({a.approval_id: a for found in self.months.values() for a in found}.values())


def visit_sums(rows: Iterable[ChainRow], granularity: Granularity) -> dict[str, list[int]]:
    """The visit-log ``rows`` summed by the period label of their days: every count of ``VALUES``, in its order."""
    sums: dict[str, list[int]] = {}
    for row in rows:
        period = label(row.day, granularity)
        into = sums.get(period)
        if into is None:
            into = sums[period] = [0] * len(VALUES)
        counts = row.counts
        for i, name in enumerate(VALUES):
            value = counts.get(name)
            if value:
                into[i] += int(value)
    return sums


def add_visit_sums(series: list[dict[str, object]], sums: Mapping[str, Sequence[int]]) -> list[dict[str, object]]:
    """A visits series (by period label, every count of ``VALUES``) with ``sums`` (``visit_sums``) added to
    its points (new points where there were none), in period order."""
    points = {str(row["period"]): dict(row) for row in series}
    for period, added in sums.items():
        point = points.setdefault(period, {"period": period, **dict.fromkeys(VALUES, 0)})
        for name, value in zip(VALUES, added, strict=True):
            point[name] = int(point[name]) + value  # type: ignore[call-overload]
    return [points[period] for period in sorted(points)]


def mark_series(series: list[dict[str, object]], granularity: Granularity, start: date, end: date,
                covered: Covered) -> list[dict[str, object]]:
    """A series (served: approved months already from their approvals) with each point marked
    ``approved`` (every month of it, within start–end, approved for the whole area) or ``provisional``."""
    return [{**point, "status": covered.point_status(str(point["period"]), granularity, start, end)}
            for point in series]
