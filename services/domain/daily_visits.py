"""Fold visit events into visits per library per day, by event time.

The state is a plain key→dict mapping behind the ``State`` port: a SQLite file in
embedded mode, faust tables (with changelog topics) in distributed mode. Each call
returns the rows whose totals changed, each carrying the full current totals for its
(library, day), so writing them is an idempotent upsert: a re-delivered event writes
the same row again and nothing is counted twice.

State keys:
- ``sub:<root_id>``: the contribution of the latest version of one submission chain.
- ``day:<library_id>|<yyyy-mm-dd>``: running totals of one library-day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, Protocol

from services.domain.events import SubmissionRetracted
from services.domain.forms.visit_log import COUNT_FIELDS, VisitLogged


class State(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...
    def put(self, key: str, value: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class DailyVisitsRow:
    library_id: str
    day: date
    province_legacy: str
    commune_legacy: str
    province_2025: str
    commune_2025: str
    counts: dict[str, int]
    reports: int  # visit-log submissions contributing to this day
    version: int  # log position of the last event applied: higher wins in the store


Outcome = Literal["applied", "replaced", "duplicate", "stale", "conflict", "retracted"]


@dataclass(frozen=True)
class FoldResult:
    outcome: Outcome
    rows: list[DailyVisitsRow]
    detail: str = ""


def _day_key(library_id: str, day: str) -> str:
    return f"day:{library_id}|{day}"


def _contribution(event: VisitLogged) -> dict[str, Any]:
    legacy, current = event.area("legacy"), event.area("2025")
    return {
        "event_id": event.event_id,
        "content_hash": event.content_hash,
        "library_id": event.library_id,
        "day": event.occurred_on.isoformat(),
        "areas": [legacy.province_code, legacy.commune_code, current.province_code, current.commune_code],
        "counts": event.payload.model_dump(),
        "versions": [event.event_id],
    }


def _add(state: State, contribution: dict[str, Any], sign: int) -> str:
    key = _day_key(contribution["library_id"], contribution["day"])
    totals = state.get(key) or {
        "library_id": contribution["library_id"],
        "day": contribution["day"],
        "areas": contribution["areas"],
        "counts": dict.fromkeys(COUNT_FIELDS, 0),
        "reports": 0,
    }
    counts = totals["counts"]
    for name in COUNT_FIELDS:
        counts[name] = counts.get(name, 0) + sign * contribution["counts"][name]
    totals["reports"] += sign
    if sign > 0:
        totals["areas"] = contribution["areas"]
    state.put(key, totals)
    return key


def _row(state: State, key: str, version: int) -> DailyVisitsRow:
    totals = state.get(key)
    assert totals is not None
    p_legacy, c_legacy, p_2025, c_2025 = totals["areas"]
    return DailyVisitsRow(
        library_id=totals["library_id"],
        day=date.fromisoformat(totals["day"]),
        province_legacy=p_legacy,
        commune_legacy=c_legacy,
        province_2025=p_2025,
        commune_2025=c_2025,
        counts=dict(totals["counts"]),
        reports=totals["reports"],
        version=version,
    )


def retract_visit_chain(state: State, event: SubmissionRetracted, position: int) -> FoldResult:
    """Withdraw a submission chain's contribution (e.g. rejected in Central's review)."""
    sub_key = f"sub:{event.root_id}"
    previous = state.get(sub_key)
    if previous is None:
        return FoldResult("stale", [], f"nothing to retract for {event.root_id}")
    if previous.get("retracted"):
        return FoldResult("duplicate", [_row(state, _day_key(previous["library_id"], previous["day"]), position)])
    key = _add(state, previous, -1)
    state.put(sub_key, {**previous, "retracted": True})
    return FoldResult("retracted", [_row(state, key, position)])


def fold_visit_event(state: State, event: VisitLogged, position: int) -> FoldResult:
    """Apply one event at log ``position`` (offset) to ``state``; return the rows to upsert."""
    sub_key = f"sub:{event.root_id}"
    previous = state.get(sub_key)
    if previous is not None and previous.get("retracted") and event.event_id in previous["versions"]:
        return FoldResult("stale", [], f"{event.event_id} was retracted")
    if previous is not None:
        if event.event_id == previous["event_id"]:
            if event.content_hash != previous["content_hash"]:
                return FoldResult("conflict", [], f"instanceID {event.event_id} was seen with other answers")
            # Re-delivery: rewrite the current row so a write lost in a crash is repaired.
            return FoldResult("duplicate", [_row(state, _day_key(previous["library_id"], previous["day"]), position)])
        if event.event_id in previous["versions"]:
            return FoldResult("stale", [], f"{event.event_id} was already replaced by {previous['event_id']}")

    touched = []
    if previous is not None and not previous.get("retracted"):
        touched.append(_add(state, previous, -1))
    contribution = _contribution(event)
    if previous is not None:
        contribution["versions"] = previous["versions"] + [event.event_id]
    touched.append(_add(state, contribution, +1))
    state.put(sub_key, contribution)
    rows = [_row(state, key, position) for key in dict.fromkeys(touched)]
    return FoldResult("replaced" if previous is not None else "applied", rows)
