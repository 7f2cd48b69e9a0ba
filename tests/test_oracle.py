"""The oracle itself, on tiny hand-made event lists whose answers are worked out by hand here.

The reference is hand-made too: two legacy provinces (02 with communes 00001–00003, 04 with
00010), now 2025 provinces 08 (00100 ← 00001+00002, 00200 ← 00003, 00300 outside the
programme) and 04 (00400 ← 00010); four libraries, two of them (L1, L2) in the same commune.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.bus.codec import encode
from services.domain.dead_letters import DeadLetter
from services.domain.errors import Reason
from services.domain.events import AdminArea, Envelope, Retraction, SubmissionRetracted
from services.domain.forms import EVENT_MODELS
from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.reference import Commune, Library, Province, Reference
from tests.oracle import Area, Oracle, current_chains, interpolated_target, period_label, read_targets
from tests.published import from_embedded_log

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def _areas(legacy_province: str, legacy: str, province: str, commune: str) -> tuple[AdminArea, AdminArea]:
    return (AdminArea(scheme="legacy", province_code=legacy_province, commune_code=legacy),
            AdminArea(scheme="2025", province_code=province, commune_code=commune))


def _library(library_id: str, kind: str, areas, opened: date, joined: date | None) -> Library:
    return Library(library_id, library_id, library_id, kind, areas, opened_on=opened, model_joined_on=joined)


L1 = _library("L1", "commune_public_library", _areas("02", "00001", "08", "00100"), date(2020, 1, 1),
              date(2024, 6, 1))
L2 = _library("L2", "community_learning_centre", _areas("02", "00001", "08", "00100"), date(2021, 1, 1),
              date(2025, 3, 1))
L3 = _library("L3", "culture_centre", _areas("02", "00003", "08", "00200"), date(2019, 1, 1), None)
L4 = _library("L4", "law_bookcase", _areas("04", "00010", "04", "00400"), date(2025, 2, 1), None)


def _reference() -> Reference:
    provinces = {(s, c): Province(s, c, c, c) for s, c in (("legacy", "02"), ("legacy", "04"), ("2025", "08"),
                                                           ("2025", "04"))}
    communes = {(s, c): Commune(s, c, c, c, p) for s, c, p in (
        ("legacy", "00001", "02"), ("legacy", "00002", "02"), ("legacy", "00003", "02"), ("legacy", "00010", "04"),
        ("2025", "00100", "08"), ("2025", "00200", "08"), ("2025", "00300", "08"), ("2025", "00400", "04"))}
    mapping = {"00001": ("00100",), "00002": ("00100",), "00003": ("00200",), "00010": ("00400",)}
    return Reference(provinces, communes, {lib.library_id: lib for lib in (L1, L2, L3, L4)}, mapping)


REFERENCE = _reference()
STATUSES = {"L1": "operating", "L2": "operating", "L3": "operating", "L4": "operating"}


def at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=TZ)


def event(kind: str, event_id: str, library: Library, occurred: str, payload: dict[str, Any], submitted: datetime,
          root: str | None = None, deprecated: str | None = None) -> Envelope:
    return EVENT_MODELS[kind](
        event_id=event_id, root_id=root or event_id, deprecated_id=deprecated, form_id=kind, form_version="1",
        submitted_at=submitted, occurred_on=date.fromisoformat(occurred), library_id=library.library_id,
        areas=list(library.areas), submitter="team", source="openrosa",
        content_hash=hashlib.sha256(event_id.encode()).hexdigest(), payload=payload)


def retraction(of: Envelope, submitted: datetime) -> SubmissionRetracted:
    return SubmissionRetracted(
        event_id=f"{of.event_id}#retracted", root_id=of.root_id, form_id=of.form_id, form_version="1",
        submitted_at=submitted, occurred_on=of.occurred_on, library_id=of.library_id, areas=of.areas,
        submitter="reviewer", source="central", content_hash=hashlib.sha256(of.event_id.encode()).hexdigest(),
        payload=Retraction(retracts_event_type=of.event_type, reason_code="central_rejected", reason="rejected"))


def counts(total: int, loans: int = 0) -> dict[str, int]:
    """Visit counts whose breakdowns add up: children = total // 2, everything else by hand below."""
    values = dict.fromkeys(COUNT_FIELDS, 0)
    values |= {"visits_total": total, "visits_children": total // 2, "visits_adults": total - total // 2,
               "visits_female": total, "visits_reading": total, "loans": loans}
    return values


def visit(event_id: str, library: Library, occurred: str, total: int, submitted: datetime | None = None,
          **kwargs: Any) -> Envelope:
    submitted = submitted or at(occurred) + timedelta(days=1)
    return event("visit_logged", event_id, library, occurred, counts(total, **kwargs), submitted)


def positioned(*events: Envelope) -> list[tuple[int, Envelope]]:
    return list(enumerate(events, start=1))


def oracle(*events: Envelope) -> Oracle:
    return Oracle(positioned(*events), REFERENCE, statuses=STATUSES)


REGION_LEGACY = Area("legacy")


# --- which submissions count -------------------------------------------------------------------

def test_current_version_is_the_last_accepted_and_a_retraction_drops_the_chain():
    a1 = visit("a1", L1, "2025-01-31", 10, submitted=at("2025-02-01"))
    a2 = event("visit_logged", "a2", L1, "2025-01-31", counts(12), at("2025-02-03"), root="a1", deprecated="a1")
    b1 = visit("b1", L2, "2025-01-31", 7)
    c1 = visit("c1", L3, "2025-01-31", 5, submitted=at("2025-02-05"))
    c2 = event("visit_logged", "c2", L3, "2025-01-31", counts(6), at("2025-02-05"), root="c1", deprecated="c1")
    d1 = visit("d1", L4, "2025-03-31", 3)
    d2 = event("visit_logged", "d2", L4, "2025-03-31", counts(4), at("2025-05-01"), root="d1", deprecated="d1")

    current = current_chains([
        (1, a2), (2, a1),  # listed out of order: submitted_at decides
        (3, b1), (4, retraction(b1, at("2025-02-10"))),
        (6, c2), (5, c1),  # accepted in the same instant: the log position decides
        (7, d1), (8, retraction(d1, at("2025-04-10"))), (9, d2),  # an edit after the retraction revives it
    ])

    assert {root: e.event_id for root, e in current.items()} == {"a1": "a2", "c1": "c2", "d1": "d2"}
    # Bare events are numbered in the order given.
    assert current_chains([c1, c2])["c1"].event_id == "c2"


def test_visits_count_current_versions_in_the_period_the_event_happened():
    jan = visit("jan", L1, "2025-01-31", 100, submitted=at("2025-02-01"), loans=40)
    jan_edit = event("visit_logged", "jan-v2", L1, "2025-01-31", counts(120, loans=50), at("2025-02-03"),
                     root="jan", deprecated="jan")
    feb_late = visit("feb", L1, "2025-02-28", 50, submitted=at("2025-06-20"))  # months late: still February
    withdrawn = visit("l2-feb", L2, "2025-02-28", 30)
    mar = visit("mar", L3, "2025-03-31", 20)
    elsewhere = visit("l4-mar", L4, "2025-03-31", 7)
    o = oracle(jan, jan_edit, feb_late, withdrawn, mar, elsewhere, retraction(withdrawn, at("2025-03-05")))

    months = o.visits(Area("legacy", "02"), date(2025, 1, 1), date(2025, 12, 31), "month")

    assert [(m["period"], m["visits_total"], m["reports"]) for m in months] == [
        ("2025-01", 120, 1), ("2025-02", 50, 1), ("2025-03", 20, 1)]
    assert months[0] == {"period": "2025-01", **counts(120, loans=50), "reports": 1}
    assert o.visits(Area("2025", "08"), date(2025, 1, 1), date(2025, 12, 31), "month") == months
    assert o.visits(Area("legacy", "02"), date(2025, 1, 1), date(2025, 3, 31), "quarter") == [
        {"period": "2025-Q1", **{k: a + b + c for k, a, b, c in zip(COUNT_FIELDS, counts(120, 50).values(),
                                                                    counts(50).values(), counts(20).values(),
                                                                    strict=True)}, "reports": 3}]
    assert [(y["period"], y["visits_total"], y["reports"]) for y in o.visits(
        REGION_LEGACY, date(2025, 1, 1), date(2025, 12, 31), "year")] == [("2025", 197, 4)]
    # start and end are inclusive days; only periods with a report appear
    assert [(d["period"], d["visits_total"]) for d in o.visits(
        REGION_LEGACY, date(2025, 2, 1), date(2025, 3, 31), "day")] == [("2025-02-28", 50), ("2025-03-31", 27)]
    assert [(m["period"], m["visits_total"]) for m in o.visits(
        REGION_LEGACY, date(2025, 1, 1), date(2025, 12, 31), "month", library_type="culture_centre")] == [
        ("2025-03", 20)]
    assert o.visits(Area("legacy", commune_code="00003"), date(2025, 1, 1), date(2025, 12, 31), "year")[0][
        "visits_total"] == 20
    assert o.visits(Area("legacy", library_id="L4"), date(2025, 1, 1), date(2025, 12, 31), "year")[0][
        "visits_total"] == 7
    # Any object with scheme / province_code / commune_code will do (library_id is optional).
    assert o.visits(SimpleNamespace(scheme="legacy", province_code="04", commune_code=None), date(2025, 1, 1),
                    date(2025, 12, 31), "year")[0]["visits_total"] == 7


def test_period_labels():
    day = date(2025, 11, 3)
    assert [period_label(day, g) for g in ("day", "month", "quarter", "year")] == [
        "2025-11-03", "2025-11", "2025-Q4", "2025"]
    with pytest.raises(ValueError):
        period_label(day, "week")


# --- growth --------------------------------------------------------------------------------------

def _growth_events() -> list[Envelope]:
    return [
        visit("l1-2024-01", L1, "2024-01-31", 100), visit("l1-2024-06", L1, "2024-06-30", 100),
        visit("l1-2025", L1, "2025-05-31", 260), visit("l1-2026", L1, "2026-01-31", 300),
        visit("l2-2024", L2, "2024-03-31", 100), visit("l2-2025", L2, "2025-03-31", 90),
        visit("l4-2025", L4, "2025-03-31", 150),  # L4 opened in 2025: new, not growth
    ]


def test_like_for_like_growth_leaves_out_a_new_library():
    o = oracle(*_growth_events())

    assert o.growth(REGION_LEGACY, 2025) == {
        "year": 2025,
        "all": {"visits": 500, "previous": 300, "yoy": 0.666667},  # 500 / 300 − 1
        "like_for_like": {"visits": 350, "previous": 300, "yoy": 0.166667, "libraries": 2},  # L1 + L2 only
        "cagr": {"baseline_year": 2024, "value": 0.666667},
    }
    assert o.growth(REGION_LEGACY, 2026) == {
        "year": 2026,
        "all": {"visits": 300, "previous": 500, "yoy": -0.4},
        "like_for_like": {"visits": 300, "previous": 260, "yoy": 0.153846, "libraries": 1},  # 300 / 260 − 1
        "cagr": {"baseline_year": 2024, "value": 0.0},  # (300 / 300) ** (1/2) − 1
    }
    assert o.growth(REGION_LEGACY, 2026, baseline_year=2025)["cagr"] == {"baseline_year": 2025, "value": -0.4}
    assert o.growth(REGION_LEGACY, 2024)["all"] == {"visits": 300, "previous": 0, "yoy": None}
    assert o.growth(REGION_LEGACY, 2024)["cagr"] == {"baseline_year": 2024, "value": None}
    k4 = o.indicators(REGION_LEGACY, 2025, as_of=date(2026, 2, 1))["K4"]
    assert k4 == {"value": 0.166667, "numerator": 350, "denominator": 300, "target": 0.1, "on_track": True}


# --- indicators ----------------------------------------------------------------------------------

def test_completeness_and_timeliness_with_one_missing_month():
    utc = ZoneInfo("UTC")
    jan = visit("jan", L1, "2025-01-31", 10, submitted=datetime(2025, 2, 10, 16, 59, tzinfo=utc))  # 23:59 on the 10th
    jan_edit = event("visit_logged", "jan-v2", L1, "2025-01-31", counts(11), at("2025-03-01"), root="jan",
                     deprecated="jan")  # a late edit does not make the report late
    # February: no report.
    mar = visit("mar", L1, "2025-03-31", 10, submitted=datetime(2025, 4, 10, 17, 0, tzinfo=utc))  # 00:00 on the 11th
    apr = visit("apr", L1, "2025-04-30", 10, submitted=at("2025-04-30", hour=18))
    l4_feb = visit("l4-feb", L4, "2025-02-28", 5)
    l4_mar = visit("l4-mar", L4, "2025-03-31", 5)
    o = oracle(jan, jan_edit, mar, apr, l4_feb, l4_mar)

    one = o.indicators(Area("legacy", library_id="L1"), 2025, as_of=date(2025, 4, 30))
    assert one["completeness"] == {"value": 0.75, "numerator": 3, "denominator": 4, "target": None,
                                   "on_track": None}
    assert one["timeliness"] == {"value": 0.5, "numerator": 2, "denominator": 4, "target": None, "on_track": None}
    # L4 opened on 1 February: January is not expected of it.
    new = o.indicators(Area("legacy", "04"), 2025, as_of=date(2025, 4, 30))
    assert (new["completeness"]["numerator"], new["completeness"]["denominator"]) == (2, 3)
    assert new["completeness"]["value"] == 0.666667
    # A year not begun yet at as_of: nothing expected.
    assert o.indicators(REGION_LEGACY, 2026, as_of=date(2025, 4, 30))["completeness"]["value"] is None


def _registry_event(event_id: str, library: Library, occurred: str, action: str, **fields: Any) -> Envelope:
    return event("library_registered", event_id, library, occurred, {"action": action, **fields},
                 at(occurred) + timedelta(days=2))


def test_k1_counts_a_commune_with_two_libraries_once():
    joined = _registry_event("l3-joined", L3, "2025-09-01", "model_joined")
    o = oracle(joined)

    # Legacy 02 has three communes; L1 and L2 (both members by D) share 00001; L3 joins in September.
    k1 = o.indicators(Area("legacy", "02"), 2025, as_of=date(2026, 1, 10))["K1"]
    assert k1 == {"value": 0.666667, "numerator": 2, "denominator": 3, "target": 0.15, "on_track": True}
    assert o.k1(Area("legacy", "02"), date(2025, 8, 31)) == (1, 3)
    assert o.k1(Area("legacy", "02"), date(2024, 5, 31)) == (0, 3)  # L1 joined on 1 June 2024
    # 2025 scheme: 00300 has no programme territory, so the communes of 08 are 00100 and 00200.
    assert o.k1(Area("2025", "08"), date(2025, 12, 31)) == (2, 2)
    assert o.k1(Area("2025"), date(2025, 12, 31)) == (2, 3)  # + 00400 of province 04, no member
    # Closing L1 leaves 00001 covered by L2.
    closed = _registry_event("l1-closed", L1, "2025-06-01", "update", status="closed")
    assert oracle(joined, closed).k1(Area("legacy", "02"), date(2025, 12, 31)) == (2, 3)
    l2_closed = _registry_event("l2-closed", L2, "2025-06-01", "update", status="closed")
    assert oracle(joined, closed, l2_closed).k1(Area("legacy", "02"), date(2025, 12, 31)) == (1, 3)
    assert oracle(joined, closed, l2_closed).k1(Area("legacy", "02"), date(2025, 5, 31)) == (1, 3)


def test_registry_follows_the_current_registration_keyed_on_its_chain():
    new = Library("LIB-NEW-ABCDEF12", "", "", "other", _areas("02", "00002", "08", "00100"))
    register = _registry_event("uuid:abcdef12-0000-4000-8000-000000000001", new, "2025-08-10", "register",
                               name_vi="Tủ sách cộng đồng", library_type="other", opened_on=date(2025, 8, 1))
    # The edit has another instanceID (so the intake gave it another LIB-NEW id): the chain's root keeps the id.
    edited_as = Library("LIB-NEW-99999999", "", "", "other", new.areas)
    edit = event("library_registered", "uuid:99999999-0000-4000-8000-000000000002", edited_as, "2025-08-10",
                 {"action": "register", "name_vi": "Thư viện xã", "library_type": "commune_public_library",
                  "opened_on": date(2025, 8, 1)}, at("2025-08-20"), root=register.event_id,
                 deprecated=register.event_id)
    joined = _registry_event("joined", new, "2025-10-01", "model_joined")
    o = oracle(register, edit, joined)

    assert "LIB-NEW-ABCDEF12" not in o.registry(date(2025, 8, 9))
    entry = o.registry(date(2025, 8, 10))["LIB-NEW-ABCDEF12"]
    assert (entry.library_type, entry.opened_on, entry.model_joined_on) == ("commune_public_library",
                                                                            date(2025, 8, 1), None)
    assert "LIB-NEW-99999999" not in o.registry(None)
    assert o.registry(date(2025, 12, 31))["LIB-NEW-ABCDEF12"].model_joined_on == date(2025, 10, 1)
    assert o.k1(Area("legacy", "02"), date(2025, 12, 31)) == (2, 3)  # 00001 (L1, L2) and now 00002
    assert o.k1(Area("legacy", "02"), date(2025, 9, 30)) == (1, 3)


def test_k2_counts_coordination_in_the_twelve_months_ending_d():
    provincial = {"origin": "provincial_library", "origin_province": "08", "titles": 10, "copies": 20,
                  "ethnic_language_copies": 2, "copies_lost": 0, "copies_damaged": 0, "batch_id": "LC-08-2024-001"}
    events = [
        event("mobile_session_held", "m1", L1, "2025-03-01", {
            "team": "Đội 1", "vehicle": "car", "stop_areas": list(L1.areas), "village_or_school": "Bản A",
            "latitude": 22.8, "longitude": 105.0, "visits_total": 30, "visits_children": 20, "visits_adults": 10,
            "loans": 12, "activities": ["book_lending"]}, at("2025-03-02")),
        _promotion("p1", L2, "2025-12-31", co_organised=True),
        _promotion("p2", L3, "2025-06-01", co_organised=False),  # not with the provincial library
        event("rotation_moved", "r1", L3, "2024-12-31", {**provincial, "movement": "received"},
              at("2025-01-02")),  # exactly 365 days before D: outside (D − 365 days, D]
        event("rotation_moved", "r2", L4, "2025-05-01", {**provincial, "movement": "dispatched"},
              at("2025-05-02")),  # dispatched to it is not received by it
    ]
    o = oracle(*events)

    k2 = o.indicators(REGION_LEGACY, 2025, as_of=date(2026, 3, 1))["K2"]
    assert k2 == {"value": 0.5, "numerator": 2, "denominator": 4, "target": 0.15, "on_track": True}
    assert o.k2(REGION_LEGACY, date(2025, 12, 30)) == (2, 4)  # p1 is after D; r1 is now inside the window
    agreed = _registry_event("agreed", L3, "2025-02-01", "coordination_agreed")
    assert oracle(*events, agreed).k2(REGION_LEGACY, date(2025, 12, 31)) == (3, 4)
    assert oracle(*events).k2(REGION_LEGACY, date(2025, 1, 15)) == (1, 3)  # r1 now counts; L4 not open yet


def _promotion(event_id: str, library: Library, occurred: str, co_organised: bool, occasion: str = "book_day_21_04",
               children: int = 40, adults: int = 10) -> Envelope:
    return event("reading_promotion_held", event_id, library, occurred, {
        "activity_type": "book_fair", "occasion": occasion, "participants_total": children + adults,
        "participants_children": children, "participants_adults": adults,
        "co_organised_with_provincial_library": co_organised}, at(occurred) + timedelta(days=1))


def _training(event_id: str, library: Library, occurred: str, worker: str, result: str,
              hours: float = 8.0) -> Envelope:
    return event("staff_trained", event_id, library, occurred, {
        "worker_id": worker, "course": "library_basics", "hours": hours, "result": result},
        at(occurred) + timedelta(days=1))


def test_k3_trained_workers_among_active_workers():
    o = oracle(
        _training("t1", L1, "2024-03-01", "HG-0001", "passed"),
        _training("t2", L1, "2025-05-01", "HG-0002", "attended"),
        _training("t3", L3, "2023-06-01", "HG-0003", "passed"),  # no record in the 24 months ending D
        _training("t4", L1, "2024-01-10", "HG-0004", "passed"),
        _training("t5", L4, "2025-02-01", "CB-0004", "attended"),
        _training("t6", L4, "2025-03-01", "HG-0004", "attended"),  # HG-0004's latest record: L4, province 04
    )

    k3 = o.indicators(Area("legacy", "02"), 2025, as_of=date(2026, 1, 5))["K3"]
    assert k3 == {"value": 0.5, "numerator": 1, "denominator": 2, "target": 0.4, "on_track": True}
    assert o.k3(Area("legacy", "04"), date(2025, 12, 31)) == (1, 2)  # HG-0004 passed at L1 earlier; CB-0004 not
    assert o.k3(REGION_LEGACY, date(2025, 12, 31)) == (2, 4)
    assert o.k3(REGION_LEGACY, date(2024, 12, 31)) == (3, 3)  # HG-0003 still active, HG-0004 still at L1
    assert o.k3(Area("legacy", "02"), date(2024, 12, 31)) == (3, 3)


def test_targets_are_interpolated_between_milestones():
    targets = read_targets()  # services/reference/targets.csv
    assert interpolated_target(targets["K1"], 2028) == 0.325  # 0.15 + (0.50 − 0.15) × 2/4
    assert interpolated_target(targets["K3"], 2028) == 0.5
    assert interpolated_target(targets["K4"], 2028) == 0.125
    assert interpolated_target(targets["K1"], 2035) == 0.633333  # 0.50 + 0.40 × 5/15
    assert interpolated_target(targets["K2"], 2024) == 0.15  # before 2026: the 2026 target
    assert interpolated_target(targets["K4"], 2050) == 0.3
    o = Oracle([], REFERENCE, statuses=STATUSES)
    result = o.indicators(REGION_LEGACY, 2028, as_of=date(2028, 6, 30))
    assert result["K1"]["target"] == 0.325
    assert result["K1"] == {"value": 0.25, "numerator": 1, "denominator": 4, "target": 0.325, "on_track": False}
    assert result["K4"] == {"value": None, "numerator": 0, "denominator": 0, "target": 0.125, "on_track": None}


# --- the other aggregates ------------------------------------------------------------------------

def test_mobile_reading_training_and_donation_aggregates():
    def session(event_id: str, library: Library, occurred: str, children: int, adults: int, loans: int):
        return event("mobile_session_held", event_id, library, occurred, {
            "team": "Đội 1", "vehicle": "boat", "stop_areas": list(L3.areas), "village_or_school": "Bản B",
            "latitude": 22.8, "longitude": 105.0, "visits_total": children + adults, "visits_children": children,
            "visits_adults": adults, "loans": loans, "activities": ["storytelling"]}, at(occurred))

    def donation(event_id: str, library: Library, occurred: str, kind: str, origin: str, books: int, money: int):
        return event("donation_received", event_id, library, occurred, {
            "donor_kind": kind, "donor_origin": origin, "books": books, "money_vnd": money}, at(occurred))

    o = oracle(
        session("s1", L1, "2025-04-02", 20, 10, 15), session("s2", L1, "2025-04-20", 5, 5, 3),
        session("s3", L4, "2025-04-20", 1, 1, 1),  # stop in 00003, but served by L4 (province 04)
        _promotion("p1", L1, "2025-04-21", True), _promotion("p2", L2, "2025-04-21", False, children=5, adults=5),
        _promotion("p3", L3, "2025-10-02", True, occasion="study_promotion_day_02_10"),
        _training("t1", L1, "2025-02-01", "HG-0001", "passed", hours=7.5),
        _training("t2", L2, "2025-02-03", "HG-0001", "passed", hours=16),
        _training("t3", L2, "2025-03-03", "HG-0002", "failed", hours=0.1),
        _training("t4", L2, "2025-03-04", "HG-0002", "attended", hours=0.2),
        donation("d1", L1, "2025-01-05", "enterprise", "domestic", 100, 0),
        donation("d2", L2, "2025-01-20", "enterprise", "domestic", 50, 2_000_000_000),
        donation("d3", L3, "2025-01-20", "individual", "foreign", 10, 0),
    )
    year = (date(2025, 1, 1), date(2025, 12, 31))
    province = Area("legacy", "02")

    assert o.mobile_sessions(province, *year, "month") == [
        {"period": "2025-04", "sessions": 2, "visits_total": 40, "visits_children": 25, "visits_adults": 15,
         "loans": 18}]
    assert o.reading_promotion(province, *year, "quarter") == [
        {"period": "2025-Q2", "occasion": "book_day_21_04", "events": 2, "participants_total": 60,
         "participants_children": 45, "participants_adults": 15, "co_organised": 1},
        {"period": "2025-Q4", "occasion": "study_promotion_day_02_10", "events": 1, "participants_total": 50,
         "participants_children": 40, "participants_adults": 10, "co_organised": 1}]
    assert o.training(province, *year, "year") == [
        {"period": "2025", "records": 4, "hours": 23.8, "workers": 2, "workers_passed": 1}]
    assert o.training(province, *year, "month") == [
        {"period": "2025-02", "records": 2, "hours": 23.5, "workers": 1, "workers_passed": 1},
        {"period": "2025-03", "records": 2, "hours": 0.3, "workers": 1, "workers_passed": 0}]
    assert o.donations(province, *year, "month") == [
        {"period": "2025-01", "donor_kind": "enterprise", "donor_origin": "domestic", "donations": 2, "books": 150,
         "money_vnd": 2_000_000_000},
        {"period": "2025-01", "donor_kind": "individual", "donor_origin": "foreign", "donations": 1, "books": 10,
         "money_vnd": 0}]


# --- reading what was published ------------------------------------------------------------------

def test_from_embedded_log_reads_events_in_order_and_skips_dead_letters(tmp_path: Path):
    first = visit("v1", L1, "2025-01-31", 10)
    second = event("visit_logged", "v2", L1, "2025-01-31", counts(12), at("2025-02-03"), root="v1",
                   deprecated="v1")
    dead = DeadLetter.of(stage="intake", reason=Reason("out_of_scope", "vi", "en"), instance_id="x",
                         form_id="visit_log", library_id="L1", submitter="team", content_hash="0" * 64,
                         raw=b"<data/>", recorded_at=at("2025-02-04"))
    path = tmp_path / "bus.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE log (position INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
               "key TEXT NOT NULL, value BLOB NOT NULL, appended_at REAL NOT NULL)")
    for topic, message in (("events.visit_logged", first), ("deadletters", dead),
                           ("events.visit_logged", retraction(first, at("2025-02-02"))),
                           ("events.visit_logged", second)):
        db.execute("INSERT INTO log (topic, key, value, appended_at) VALUES (?, 'L1', ?, 0)",
                   (topic, encode(message)))
    db.commit()  # left open, as a running stack would

    published = from_embedded_log(path)
    db.close()

    assert [(p, e.event_id) for p, e in published] == [(1, "v1"), (3, "v1#retracted"), (4, "v2")]
    assert published[0][1] == first
    assert current_chains(published)["v1"].event_id == "v2"


@pytest.mark.kafka
def test_from_kafka_reads_every_event_topic_to_its_end(kafka_bootstrap_servers: str):
    import uuid

    from services.bus.admin import ensure_topics
    from services.bus.kafka import KafkaPublisher
    from tests.published import from_kafka

    prefix = f"t{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap_servers, prefix)
    first = visit("k1", L1, "2025-01-31", 10)
    edit = event("visit_logged", "k2", L1, "2025-01-31", counts(12), first.submitted_at, root="k1", deprecated="k1")
    other = _training("k3", L4, "2025-02-01", "CB-0001", "passed")
    dead = DeadLetter.of(stage="intake", reason=Reason("out_of_scope", "vi", "en"), instance_id="x",
                         form_id="visit_log", library_id="L1", submitter="team", content_hash="0" * 64,
                         raw=b"<data/>", recorded_at=at("2025-02-04"))
    publisher = KafkaPublisher(kafka_bootstrap_servers, prefix)
    for message in (first, other, dead, edit):  # the edit accepted in the same instant: the position decides
        publisher.publish(message)
    publisher.close()

    published = from_kafka(kafka_bootstrap_servers, prefix)

    assert sorted(e.event_id for _, e in published) == ["k1", "k2", "k3"]
    positions = {e.event_id: p for p, e in published}
    assert positions["k1"] < positions["k2"]
    assert current_chains(published)["k1"].event_id == "k2"
    assert [e.event_id for _, e in from_kafka(kafka_bootstrap_servers, prefix, ["events.staff_trained"])] == ["k3"]
