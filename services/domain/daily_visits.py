"""Fold visit events into visits per library per day, by event time.

The state is a plain key→dict mapping behind the ``State`` port: a SQLite file in
embedded mode, faust tables (with changelog topics) in distributed mode. Each call
returns the rows whose totals changed, each carrying the full current totals for its
(library, day), so writing them is an idempotent upsert: a re-delivered event writes
the same row again and nothing is counted twice.

State keys:
- ``day:<library_id>|<yyyy-mm-dd>``: the contributions of every submission chain counted
  on that library-day, by root_id. Totals are always summed from them, never stored
  apart, so each key is consistent on its own: a worker killed while its changelog was
  half-written may persist some keys and not others, and re-delivery converges.
- ``sub:<root_id>``: where a chain is counted (its day key), which versions it has had and
  when its first version was accepted, so an edit can find and retract the earlier version
  even when the day changed, and the day keeps the chain's first acceptance (timeliness).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
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
    # When the earliest of those submissions was first accepted (its chain's first version):
    # the reporting-timeliness indicator reads it; None when no submission counts on the day.
    first_reported_at: datetime | None = None


Outcome = Literal["applied", "replaced", "duplicate", "stale", "conflict", "retracted"]


@dataclass(frozen=True)
class FoldResult:
    outcome: Outcome
    rows: list[DailyVisitsRow]
    detail: str = ""


def _day_key(library_id: str, day: str) -> str:
    return f"day:{library_id}|{day}"


def _empty_day(library_id: str, day: str, areas: list[str]) -> dict[str, Any]:
    return {"library_id": library_id, "day": day, "areas": areas, "chains": {}}


def _row(day_state: dict[str, Any], version: int) -> DailyVisitsRow:
    chains = day_state["chains"].values()
    p_legacy, c_legacy, p_2025, c_2025 = day_state["areas"]
    return DailyVisitsRow(
        library_id=day_state["library_id"],
        day=date.fromisoformat(day_state["day"]),
        province_legacy=p_legacy,
        commune_legacy=c_legacy,
        province_2025=p_2025,
        commune_2025=c_2025,
        counts={name: sum(chain["counts"][name] for chain in chains) for name in COUNT_FIELDS},
        reports=len(day_state["chains"]),
        version=version,
        first_reported_at=min((datetime.fromisoformat(c["first"]) for c in chains if c.get("first")), default=None),
    )


def _earliest(*times: str | None) -> str:
    """The earliest of ISO timestamps (state written before they were kept has none)."""
    return min((t for t in times if t), key=datetime.fromisoformat)


def _remove(state: State, key: str, root_id: str) -> dict[str, Any] | None:
    """Take the chain out of a day key; return the day state if it changed."""
    day_state = state.get(key)
    if day_state is None or root_id not in day_state["chains"]:
        return None
    chains = {k: v for k, v in day_state["chains"].items() if k != root_id}
    day_state = {**day_state, "chains": chains}
    state.put(key, day_state)
    return day_state


def fold_visit_event(state: State, event: VisitLogged, position: int) -> FoldResult:
    """Apply one event at log ``position`` (offset) to ``state``; return the rows to upsert.

    Writes go target day first, then the earlier day's retraction, then the chain's index: a
    crash can persist any prefix of them, and the event's re-delivery completes the rest.
    """
    legacy, current = event.area("legacy"), event.area("2025")
    areas = [legacy.province_code, legacy.commune_code, current.province_code, current.commune_code]
    target = _day_key(event.library_id, event.occurred_on.isoformat())
    sub_key = f"sub:{event.root_id}"
    index = state.get(sub_key) or {"day_key": None, "versions": [], "retracted": False}
    accepted = event.submitted_at.isoformat()
    day_state = state.get(target) or _empty_day(event.library_id, event.occurred_on.isoformat(), areas)
    here = day_state["chains"].get(event.root_id)
    touched: dict[str, dict[str, Any]] = {}
    known = set(index["versions"]) | set(here["versions"] if here else [])

    if here is not None and here["event_id"] == event.event_id:
        if here["content_hash"] != event.content_hash:
            return FoldResult("conflict", [], f"instanceID {event.event_id} was seen with other answers")
        outcome: Outcome = "duplicate"  # re-delivery: rewrite the rows, in case a write was lost in a crash
        touched[target] = day_state
    elif event.event_id in known:
        return FoldResult("stale", [], f"{event.event_id} was already replaced or retracted")
    else:
        outcome = "replaced" if here is not None or (index["day_key"] and not index["retracted"]) else "applied"
        first = _earliest(index.get("first"), here and here.get("first"), accepted)
        chains = {**day_state["chains"], event.root_id: {
            "event_id": event.event_id, "content_hash": event.content_hash, "counts": event.payload.model_dump(),
            "versions": sorted(known | {event.event_id}), "first": first}}
        day_state = {**day_state, "areas": areas, "chains": chains}
        state.put(target, day_state)
        touched[target] = day_state

    # The chain counts on its current day only: retract it from the day of an earlier version.
    previous = index["day_key"]
    if previous and previous != target:
        changed = _remove(state, previous, event.root_id)
        if changed is not None:
            touched[previous] = changed
    first = day_state["chains"].get(event.root_id, {}).get("first") or index.get("first") or accepted
    wanted = {"day_key": target, "versions": sorted(known | {event.event_id}), "retracted": False, "first": first}
    if index != wanted:
        state.put(sub_key, wanted)
    return FoldResult(outcome, [_row(d, position) for d in touched.values()])


def retract_visit_chain(state: State, event: SubmissionRetracted, position: int) -> FoldResult:
    """Withdraw a submission chain's contribution (e.g. rejected in Central's review)."""
    sub_key = f"sub:{event.root_id}"
    index = state.get(sub_key)
    if index is None:
        return FoldResult("stale", [], f"nothing to retract for {event.root_id}")
    key = index["day_key"]
    day_state = state.get(key)
    if index["retracted"]:
        return FoldResult("duplicate", [_row(day_state, position)] if day_state else [])
    changed = _remove(state, key, event.root_id) if key else None
    state.put(sub_key, {**index, "retracted": True})
    rows = [_row(changed or day_state, position)] if (changed or day_state) else []
    return FoldResult("retracted", rows)
