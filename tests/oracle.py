"""The oracle: every aggregate and indicator of ``schemas/AGGREGATES.md``, computed again in plain Python.

Slow and obvious on purpose: loops over the published events, no SQL, and nothing from
``services/processors`` or ``services/store``. It reads only the events (with their log
positions), the reference data and ``services/reference/targets.csv``. The end-to-end tests run
it on exactly what the intake published (``tests/published.py``) and compare its answers with
the store's using ``==``: results are plain dicts and lists, floats rounded to 6 decimals.

Choices the spec leaves open are marked "Choice:" below; the report that came with this file
lists them for the lead.
"""

from __future__ import annotations

import calendar
import csv
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from services.domain.events import AdminArea, Envelope, Scheme
from services.domain.forms.library_registry import new_library_id
from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.reference import REFERENCE_DIR, Reference

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
RETRACTED = "submission_retracted"
GRANULARITIES = ("day", "month", "quarter", "year")
INDICATORS = ("K1", "K2", "K3", "K4", "completeness", "timeliness")
DIGITS = 6


# --- areas and periods -------------------------------------------------------------------------

@dataclass(frozen=True)
class Area:
    """Same attributes as ``services.store.clickhouse.AreaFilter`` (plus ``library_id``): either works."""

    scheme: Scheme
    province_code: str | None = None
    commune_code: str | None = None
    library_id: str | None = None


def _filter(area: Any) -> tuple[Scheme, str | None, str | None, str | None]:
    return (area.scheme, getattr(area, "province_code", None), getattr(area, "commune_code", None),
            getattr(area, "library_id", None))


def _matches(area: Any, library_id: str, areas: Iterable[AdminArea]) -> bool:
    """Whether a library (its id and its two areas) lies in ``area``."""
    scheme, province, commune, library = _filter(area)
    if library is not None and library_id != library:
        return False
    here = next(a for a in areas if a.scheme == scheme)
    return (province is None or here.province_code == province) and (commune is None or here.commune_code == commune)


def period_label(day: date, granularity: str) -> str:
    if granularity == "day":
        return day.isoformat()
    if granularity == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if granularity == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    if granularity == "year":
        return f"{day.year:04d}"
    raise ValueError(f"granularity must be one of {GRANULARITIES}, not {granularity!r}")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, DIGITS)


def _fraction(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else _round(numerator / denominator)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _months_back(day: date, months: int) -> date:
    """The same day ``months`` months earlier (the month's last day when it has fewer days)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


# --- which submissions count -------------------------------------------------------------------

def _pairs(events: Iterable[Any]) -> list[tuple[Any, Envelope]]:
    """``(position, event)`` pairs; bare events get their index as position. Dead letters are dropped."""
    out = []
    for index, item in enumerate(events):
        position, event = item if isinstance(item, tuple) else (index, item)
        if isinstance(event, Envelope):
            out.append((position, event))
    return out


def _order(pair: tuple[Any, Envelope]) -> tuple[Any, ...]:
    position, event = pair
    return (event.submitted_at, position)


def chains(events: Iterable[Any]) -> dict[str, list[tuple[Any, Envelope]]]:
    """Every chain (by ``root_id``): its events, retractions included, in the order they were accepted."""
    by_root: dict[str, list[tuple[Any, Envelope]]] = defaultdict(list)
    for pair in _pairs(events):
        by_root[pair[1].root_id].append(pair)
    return {root: sorted(versions, key=_order) for root, versions in by_root.items()}


def current_chains(events: Iterable[Any]) -> dict[str, Envelope]:
    """root_id → the chain's current version: accepted last (``submitted_at``, then log position).

    Takes ``(position, event)`` pairs (bare events are numbered in the order given). A chain whose
    last event is a ``submission_retracted`` counts for nothing and is left out.
    """
    out = {}
    for root, versions in chains(events).items():
        last = versions[-1][1]
        if last.event_type != RETRACTED:
            out[root] = last
    return out


def _payload(event: Envelope) -> dict[str, Any]:
    payload = event.payload
    return payload.model_dump() if isinstance(payload, BaseModel) else dict(payload)


# --- the library registry ----------------------------------------------------------------------

@dataclass
class RegistryEntry:
    library_id: str
    library_type: str
    areas: tuple[AdminArea, ...]
    opened_on: date | None
    status: str
    model_joined_on: date | None

    def operating(self, day: date) -> bool:
        # Choice: a library with no opening date has always been open.
        return (self.opened_on is None or self.opened_on <= day) and self.status == "operating"

    def area(self, scheme: Scheme) -> AdminArea:
        return next(a for a in self.areas if a.scheme == scheme)


def registered_library_id(event: Envelope) -> str:
    """The id a ``register`` chain gives its library: from the chain's root (library_registry.py's caveat)."""
    return new_library_id(event.root_id) or event.library_id


def reference_statuses(path: Path = REFERENCE_DIR / "libraries.csv") -> dict[str, str]:
    """``status`` of libraries.csv (the ``Library`` dataclass does not carry it)."""
    with path.open(encoding="utf-8", newline="") as fh:
        return {row["library_id"]: row.get("status") or "operating" for row in csv.DictReader(fh)}


def read_targets(path: Path = REFERENCE_DIR / "targets.csv") -> dict[str, dict[int, float]]:
    milestones: dict[str, dict[int, float]] = defaultdict(dict)
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            milestones[row["indicator"]][int(row["year"])] = float(row["target"])
    return dict(milestones)


def interpolated_target(milestones: Mapping[int, float], year: int) -> float | None:
    """Linear from the previous milestone to the next; the first milestone before it, the last after it."""
    if not milestones:
        return None
    years = sorted(milestones)
    if year <= years[0]:
        return _round(milestones[years[0]])
    if year >= years[-1]:
        return _round(milestones[years[-1]])
    before = max(y for y in years if y <= year)
    after = min(y for y in years if y > year)
    share = (year - before) / (after - before)
    return _round(milestones[before] + (milestones[after] - milestones[before]) * share)


# --- the oracle --------------------------------------------------------------------------------

@dataclass
class Oracle:
    events: Iterable[Any]
    reference: Reference
    statuses: Mapping[str, str] | None = None  # default: libraries.csv's status column
    targets: Mapping[str, Mapping[int, float]] | None = None  # default: targets.csv
    _chains: dict[str, list[tuple[Any, Envelope]]] = field(init=False, repr=False)
    _current: dict[str, Envelope] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._chains = chains(self.events)
        self._current = current_chains(pair for versions in self._chains.values() for pair in versions)
        if self.statuses is None:
            self.statuses = reference_statuses()
        if self.targets is None:
            self.targets = read_targets()

    # current versions of one kind, with their root ids
    def _of(self, event_type: str) -> list[Envelope]:
        return sorted((e for e in self._current.values() if e.event_type == event_type),
                      key=lambda e: (e.occurred_on, e.root_id))

    def _first_accepted(self, root_id: str):
        """When the chain was first accepted: its earliest version's ``submitted_at``."""
        return min(e.submitted_at for _, e in self._chains[root_id] if e.event_type != RETRACTED)

    def _position(self, event: Envelope) -> Any:
        return next(p for p, e in self._chains[event.root_id] if e is event)

    # -- registry

    def registry(self, day: date | None = None) -> dict[str, RegistryEntry]:
        """The registry at ``day``: libraries.csv updated by current registry chains with occurred_on ≤ day.

        ``day=None``: every current registry chain (the registry as it stands now).
        """
        assert self.statuses is not None
        libraries = {
            lib.library_id: RegistryEntry(lib.library_id, lib.library_type, tuple(lib.areas), lib.opened_on,
                                          self.statuses.get(lib.library_id, "operating"), lib.model_joined_on)
            for lib in self.reference.libraries.values()}
        # Choice: registry events apply in occurred_on order (ties: acceptance order).
        changes = sorted((e for e in self._of("library_registered") if day is None or e.occurred_on <= day),
                         key=lambda e: (e.occurred_on, e.submitted_at, self._position(e)))
        for event in changes:
            p = _payload(event)
            action = p["action"]
            if action == "register":
                library_id = registered_library_id(event)
                libraries[library_id] = RegistryEntry(library_id, p.get("library_type") or "other",
                                                      tuple(event.areas), p.get("opened_on"), "operating", None)
                continue
            entry = libraries.get(event.library_id)
            if entry is None:  # Choice: a change to a library not (yet) registered is ignored.
                continue
            if action == "update":
                if p.get("status"):
                    entry.status = p["status"]
                if p.get("library_type"):
                    entry.library_type = p["library_type"]
            elif action == "model_joined":
                entry.model_joined_on = event.occurred_on
        return libraries

    def _registry_in(self, area: Any, day: date) -> list[RegistryEntry]:
        return [lib for lib in self.registry(day).values() if _matches(area, lib.library_id, lib.areas)]

    # -- aggregates

    def _selected(self, event_type: str, area: Any, start: date | None, end: date | None) -> list[Envelope]:
        return [e for e in self._of(event_type)
                if (start is None or e.occurred_on >= start) and (end is None or e.occurred_on <= end)
                and _matches(area, e.library_id, e.areas)]

    def visits(self, area: Any, start: date | None, end: date | None, granularity: str,
               library_type: str | None = None) -> list[dict[str, Any]]:
        events = self._selected("visit_logged", area, start, end)
        if library_type is not None:
            # Choice: the library's type in the registry as it stands now (every registry chain).
            now = self.registry(None)
            events = [e for e in events if e.library_id in now and now[e.library_id].library_type == library_type]
        rows: dict[str, dict[str, Any]] = {}
        for e in events:
            label = period_label(e.occurred_on, granularity)
            row = rows.setdefault(label, {"period": label, **{name: 0 for name in COUNT_FIELDS}, "reports": 0})
            p = _payload(e)
            for name in COUNT_FIELDS:
                row[name] += int(p.get(name) or 0)
            row["reports"] += 1
        return [rows[k] for k in sorted(rows)]

    def mobile_sessions(self, area: Any, start: date | None, end: date | None,
                        granularity: str) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for e in self._selected("mobile_session_held", area, start, end):
            label = period_label(e.occurred_on, granularity)
            row = rows.setdefault(label, {"period": label, "sessions": 0, "visits_total": 0, "visits_children": 0,
                                          "visits_adults": 0, "loans": 0})
            p = _payload(e)
            row["sessions"] += 1
            for name in ("visits_total", "visits_children", "visits_adults", "loans"):
                row[name] += int(p[name])
        return [rows[k] for k in sorted(rows)]

    def reading_promotion(self, area: Any, start: date | None, end: date | None,
                          granularity: str) -> list[dict[str, Any]]:
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for e in self._selected("reading_promotion_held", area, start, end):
            p = _payload(e)
            key = (period_label(e.occurred_on, granularity), p["occasion"])
            row = rows.setdefault(key, {"period": key[0], "occasion": key[1], "events": 0, "participants_total": 0,
                                        "participants_children": 0, "participants_adults": 0, "co_organised": 0})
            row["events"] += 1
            for name in ("participants_total", "participants_children", "participants_adults"):
                row[name] += int(p[name])
            row["co_organised"] += 1 if p["co_organised_with_provincial_library"] else 0
        return [rows[k] for k in sorted(rows)]

    def training(self, area: Any, start: date | None, end: date | None, granularity: str) -> list[dict[str, Any]]:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in self._selected("staff_trained", area, start, end):
            groups[period_label(e.occurred_on, granularity)].append(_payload(e))
        return [{"period": label, "records": len(records),
                 "hours": _round(sum(float(r["hours"]) for r in records)),
                 "workers": len({r["worker_id"] for r in records}),
                 "workers_passed": len({r["worker_id"] for r in records if r["result"] == "passed"})}
                for label, records in sorted(groups.items())]

    def donations(self, area: Any, start: date | None, end: date | None, granularity: str) -> list[dict[str, Any]]:
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for e in self._selected("donation_received", area, start, end):
            p = _payload(e)
            key = (period_label(e.occurred_on, granularity), p["donor_kind"], p["donor_origin"])
            row = rows.setdefault(key, {"period": key[0], "donor_kind": key[1], "donor_origin": key[2],
                                        "donations": 0, "books": 0, "money_vnd": 0})
            row["donations"] += 1
            row["books"] += int(p["books"])
            row["money_vnd"] += int(p["money_vnd"])
        return [rows[k] for k in sorted(rows)]

    # -- growth

    def _visits_by_library_year(self, area: Any) -> dict[tuple[str, int], int]:
        """(library, year) → visits_total, for every pair with at least one counted visit log."""
        totals: dict[tuple[str, int], int] = defaultdict(int)
        for e in self._selected("visit_logged", area, None, None):
            totals[(e.library_id, e.occurred_on.year)] += int(_payload(e)["visits_total"])
        return dict(totals)

    def growth(self, area: Any, year: int, baseline_year: int | None = None) -> dict[str, Any]:
        v = self._visits_by_library_year(area)

        def total(y: int, libraries: set[str] | None = None) -> int:
            return sum(n for (lib, yy), n in v.items() if yy == y and (libraries is None or lib in libraries))

        def yoy(now: int, before: int) -> float | None:
            return None if before == 0 else _round(now / before - 1)

        visits, previous = total(year), total(year - 1)
        both = {lib for (lib, y) in v if y == year} & {lib for (lib, y) in v if y == year - 1}
        lfl_visits, lfl_previous = total(year, both), total(year - 1, both)
        if baseline_year is None:
            # Choice: "the first year with visits" is the first year whose visits_total is above 0.
            with_visits = sorted(y for y in {y for (_, y) in v} if total(y) > 0)
            baseline_year = with_visits[0] if with_visits else None
        cagr = None
        if baseline_year is not None and baseline_year < year and total(baseline_year) > 0:
            cagr = _round((visits / total(baseline_year)) ** (1 / (year - baseline_year)) - 1)
        return {
            "year": year,
            "all": {"visits": visits, "previous": previous, "yoy": yoy(visits, previous)},
            "like_for_like": {"visits": lfl_visits, "previous": lfl_previous, "yoy": yoy(lfl_visits, lfl_previous),
                              "libraries": len(both)},
            "cagr": {"baseline_year": baseline_year, "value": cagr},
        }

    # -- indicators

    def _indicator(self, name: str, year: int, value: float | None, numerator: int,
                   denominator: int) -> dict[str, Any]:
        assert self.targets is not None
        target = interpolated_target(self.targets.get(name, {}), year)
        on_track = None if value is None or target is None else value >= target
        return {"value": value, "numerator": numerator, "denominator": denominator, "target": target,
                "on_track": on_track}

    def _communes_of(self, area: Any) -> list[str]:
        scheme, province, commune, library = _filter(area)
        codes = [c.code for c in self.reference.communes_in(scheme, province)
                 if scheme == "legacy" or self.reference.in_programme(c.code)]
        if commune is not None:
            codes = [c for c in codes if c == commune]
        if library is not None:
            # Choice: at library level, the communes of A are the library's commune (registry now).
            entry = self.registry(None).get(library)
            codes = [c for c in codes if entry is not None and entry.area(scheme).commune_code == c]
        return codes

    def k1(self, area: Any, day: date) -> tuple[int, int]:
        scheme = area.scheme
        communes = set(self._communes_of(area))
        covered = {lib.area(scheme).commune_code for lib in self._registry_in(area, day)
                   if lib.operating(day) and lib.model_joined_on is not None and lib.model_joined_on <= day}
        return len(covered & communes), len(communes)

    def _coordination(self, first: date, last: date) -> set[str]:
        """Libraries with a coordination activity with occurred_on in [first, last]."""
        out = set()
        for e in self._current.values():
            if not first <= e.occurred_on <= last:
                continue
            p = _payload(e)
            # Choice: every current `received` movement counts, valid in the batch's state machine or not.
            if ((e.event_type == "rotation_moved" and p["movement"] == "received")
                    or e.event_type == "mobile_session_held"
                    or (e.event_type == "reading_promotion_held" and p["co_organised_with_provincial_library"])
                    or (e.event_type == "library_registered" and p["action"] == "coordination_agreed")):
                out.add(e.library_id)
        return out

    def k2(self, area: Any, day: date) -> tuple[int, int]:
        operating = {lib.library_id for lib in self._registry_in(area, day) if lib.operating(day)}
        active = self._coordination(day - timedelta(days=364), day)  # (D − 365 days, D]
        return len(operating & active), len(operating)

    def k3(self, area: Any, day: date) -> tuple[int, int]:
        window_after = _months_back(day, 24)  # (D − 24 months, D]
        records = sorted((e for e in self._of("staff_trained") if e.occurred_on <= day),
                         key=lambda e: (e.occurred_on, e.submitted_at, self._position(e)))
        latest: dict[str, Envelope] = {}
        passed: set[str] = set()
        for e in records:
            worker = _payload(e)["worker_id"]
            latest[worker] = e  # sorted: the last one is the latest record
            if _payload(e)["result"] == "passed":
                passed.add(worker)
        # A worker's library is the one of their latest record (≤ D); that record is in the window
        # exactly when the worker has any record in it.
        active = {w for w, e in latest.items()
                  if e.occurred_on > window_after and _matches(area, e.library_id, e.areas)}
        return len(active & passed), len(active)

    def _reporting(self, area: Any, year: int, day: date) -> tuple[int, int, int]:
        """(pairs with a counted visit log, pairs on time, expected pairs) for the months of Y up to D's month."""
        logs: dict[tuple[str, int], list[Envelope]] = defaultdict(list)
        for e in self._of("visit_logged"):
            if e.occurred_on.year == year:
                logs[(e.library_id, e.occurred_on.month)].append(e)
        received = on_time = expected = 0
        last_month = 0 if day.year < year else (12 if day.year > year else day.month)
        for month in range(1, last_month + 1):
            month_end = _month_end(year, month)
            deadline = date(year + month // 12, month % 12 + 1, 10)  # the 10th of the next month
            for lib in self._registry_in(area, month_end):
                if not lib.operating(month_end):
                    continue
                expected += 1
                reports = logs.get((lib.library_id, month), [])
                if not reports:
                    continue
                received += 1
                # Choice: a chain is accepted when its first version was (an edit does not make it late).
                first = min(self._first_accepted(e.root_id) for e in reports)
                if first.astimezone(TIMEZONE).date() <= deadline:
                    on_time += 1
        return received, on_time, expected

    def indicators(self, area: Any, year: int, as_of: date) -> dict[str, dict[str, Any]]:
        day = min(as_of, date(year, 12, 31))  # D = 31 Dec Y, or today for the current year
        k1_num, k1_den = self.k1(area, day)
        k2_num, k2_den = self.k2(area, day)
        k3_num, k3_den = self.k3(area, day)
        g = self.growth(area, year)["like_for_like"]
        received, on_time, expected = self._reporting(area, year, day)
        return {
            "K1": self._indicator("K1", year, _fraction(k1_num, k1_den), k1_num, k1_den),
            "K2": self._indicator("K2", year, _fraction(k2_num, k2_den), k2_num, k2_den),
            "K3": self._indicator("K3", year, _fraction(k3_num, k3_den), k3_num, k3_den),
            "K4": self._indicator("K4", year, g["yoy"], g["visits"], g["previous"]),
            "completeness": self._indicator("completeness", year, _fraction(received, expected), received, expected),
            "timeliness": self._indicator("timeliness", year, _fraction(on_time, expected), on_time, expected),
        }

    # -- book rotation (AGGREGATES.md, "Book rotation")

    def rotation_batches(self) -> dict[str, dict[str, Any]]:
        """batch_id → the batch as its current movements make it: each movement walked in order of
        (date, dispatched < received < returned, acceptance, instanceID) moves the batch if it may."""
        rank = {"dispatched": 0, "received": 1, "returned": 2}
        by_batch: dict[str, list[Envelope]] = defaultdict(list)
        for event in self._of("rotation_moved"):
            by_batch[_payload(event)["batch_id"]].append(event)
        out = {}
        for batch_id, movements in by_batch.items():
            status, done, valid = "none", {}, []
            for e in sorted(movements, key=lambda e: (e.occurred_on, rank[_payload(e)["movement"]], e.submitted_at,
                                                      e.event_id)):
                p, dispatch = _payload(e), done.get("dispatched")
                same_origin = dispatch is not None and all(
                    p[k] == _payload(dispatch)[k] for k in ("origin", "origin_province", "origin_library_id"))
                ok = {"dispatched": dispatch is None,
                      "received": status == "dispatched" and same_origin and e.library_id == dispatch.library_id,
                      "returned": status == "received" and same_origin and e.library_id == dispatch.library_id,
                      }[p["movement"]]
                if ok:
                    status, done[p["movement"]] = p["movement"], e
                    valid.append(e)
            out[batch_id] = {
                "status": status, "library_id": done["dispatched"].library_id if "dispatched" in done else "",
                **{f"{step}_on": done[step].occurred_on if step in done else None
                   for step in ("dispatched", "received", "returned")},
                "copies_lost": sum(_payload(e).get("copies_lost") or 0 for e in valid),
                "copies_damaged": sum(_payload(e).get("copies_damaged") or 0 for e in valid),
                "valid_movements": len(valid), "invalid_movements": len(movements) - len(valid)}
        return out
