"""The approval fold (services/domain/approvals.py) on plain rows: what is approved, what a late
report would change, what applying, declining and un-approving do, and the log deciding races."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import date, datetime

import pytest

from services.domain.approvals import (
    HELD_EVENT_TYPES,
    VALUES,
    ApprovalAction,
    Approvals,
    ChainRow,
    add_visit_sums,
    held_changes,
    mark_series,
    months_of,
    visit_sums,
)
from services.domain.chain_rows import MAX_UNPACKED, pack_rows, unpack_rows
from services.domain.periods import Granularity

pytestmark = pytest.mark.unit

MAPPING = {"02": "08", "08": "08", "04": "04"}  # legacy → 2025: Hà Giang and Tuyên Quang make 2025 Tuyên Quang
AT = datetime(2026, 4, 2, 9, 0)


def row(root: str, version: str, day: date, total: int, province: str = "02") -> ChainRow:
    counts = dict.fromkeys(VALUES, 0) | {"visits_total": total, "reports": 1}
    return ChainRow(root_id=root, event_id=version, day=day, library_id=f"lib-{province}", province_legacy=province,
                    commune_legacy="c", province_2025=MAPPING[province], commune_2025="c2", counts=counts)


def act(n: int, action: str, approval: str = "A", *, scheme: str = "legacy", province: str = "02",
        period: str = "2026-03", rows: list[ChainRow] | None = None, root: str = "",
        target: str = "", event_types: list[str] | None = None) -> ApprovalAction:
    return ApprovalAction(action_id=f"x{n}", action=action, approval_id=approval, scheme=scheme,  # type: ignore[arg-type]
                          province=province, period=period, by="officer", at=AT, rows=rows or [], root_id=root,
                          target=target, event_types=event_types or list(HELD_EVENT_TYPES))


MARCH = date(2026, 3, 5)
SNAPSHOT = [row("r1", "r1", MARCH, 10), row("r2", "r2", MARCH, 20)]


def test_a_quarter_covers_its_months_and_bad_periods_are_refused():
    assert months_of("2026-Q1") == (date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1))
    assert months_of("2026-03") == (date(2026, 3, 1),)
    for bad in ("2026-13", "2026-Q5", "26-03", "2026-3"):
        with pytest.raises(ValueError):
            months_of(bad)


def test_a_late_edit_is_held_with_its_delta_and_applying_moves_the_figure_by_it():
    approvals = Approvals.fold([act(1, "approve", rows=SNAPSHOT)], MAPPING)
    approval = approvals.by_id["A"]
    live = [row("r1", "r1-edit", MARCH, 13), row("r2", "r2", MARCH, 20), row("r3", "r3", MARCH, 5)]
    held = held_changes(approval, live)
    assert [(h.root_id, h.as_dict()["delta"]["visits_total"]) for h in held] == [("r1", 3), ("r3", 5)]
    assert approval.figures["2026-03"]["visits_total"] == 30  # what the approver saw

    approvals.take(act(2, "apply", rows=[held[0].after], root="r1", target="r1-edit"))  # type: ignore[list-item]
    approvals.take(act(3, "decline", root="r3", target="r3"))
    assert sum(r.counts["visits_total"] for r in approval.rows.values()) == 33
    assert held_changes(approval, live) == []  # applied and declined
    newer = [*live[:2], row("r3", "r3-edit", MARCH, 6)]
    assert [h.root_id for h in held_changes(approval, newer)] == ["r3"]  # a declined chain that changes again


def served(granularity: Granularity, approvals: Approvals, live: list[ChainRow]) -> list[dict[str, object]]:
    """The visits of legacy province 02 over 2026-Q1 as the API serves them, the live chain rows being
    ``live``: what the store sums outside the approved months, and their approved rows."""
    start, end = date(2026, 1, 1), date(2026, 3, 31)
    covered = approvals.covered("legacy", "02", start, end)
    rows = [r for r in live if r.month not in covered.months] + covered.approved_rows(lambda r: True)
    return mark_series(add_visit_sums([], visit_sums(rows, granularity)), granularity, start, end, covered)


def test_a_retraction_is_held_as_withdrawn_and_unapproving_returns_to_live():
    approvals = Approvals.fold([act(1, "approve", rows=SNAPSHOT)], MAPPING)
    held = held_changes(approvals.by_id["A"], [SNAPSHOT[0]])
    assert [(h.root_id, h.as_dict()["change"], h.as_dict()["delta"]["visits_total"]) for h in held] == [
        ("r2", "withdrawn", -20)]
    marked = served("month", approvals, [SNAPSHOT[0]])
    assert [(p["period"], p["visits_total"], p["status"]) for p in marked] == [("2026-03", 30, "approved")]
    approvals.take(act(2, "unapprove"))
    marked = served("month", approvals, [SNAPSHOT[0]])
    assert [(p["period"], p["visits_total"], p["status"]) for p in marked] == [("2026-03", 10, "provisional")]


def test_a_2025_province_approval_covers_its_legacy_provinces_and_the_log_decides_overlaps():
    both = [row("h", "h", MARCH, 10, "02"), row("t", "t", MARCH, 7, "08")]
    approvals = Approvals.fold([act(1, "approve", "TQ", scheme="2025", province="08", period="2026-Q1", rows=both),
                                act(2, "approve", "HG", province="02", rows=[both[0]])], MAPPING)
    assert set(approvals.by_id) == {"TQ"} and approvals.ignored[0]["approval_id"] == "HG"
    assert approvals.covering("legacy", "02", date(2026, 2, 1)) is not None
    assert approvals.covering("legacy", "04", date(2026, 2, 1)) is None
    assert approvals.covering("legacy", None, date(2026, 2, 1)) is None  # the region: not every province


def test_a_quarter_point_is_approved_only_when_all_its_months_are():
    approvals = Approvals.fold([act(1, "approve", rows=SNAPSHOT)], MAPPING)
    live = [*SNAPSHOT, row("r9", "r9", date(2026, 2, 1), 1)]
    marked = served("quarter", approvals, live)
    assert [(p["visits_total"], p["status"]) for p in marked] == [(31, "provisional")]


def test_decisions_on_an_unapproved_approval_are_ignored():
    approvals = Approvals.fold([act(1, "approve", rows=SNAPSHOT), act(2, "unapprove"),
                                act(3, "apply", root="r1", target="")], MAPPING)
    assert approvals.ignored[-1]["action_id"] == "x3"
    assert len(approvals.by_id["A"].rows) == 2


# --- the snapshot on the wire: packed (services/domain/chain_rows.py) ---------------------------------

def test_an_approval_s_snapshot_travels_packed_and_reads_back_the_same_rows():
    edited = row("r3", "r3-v2", MARCH, 5, province="08").model_copy(update={"counts": {"visits_total": 5}})
    rows = [*SNAPSHOT, edited]
    approval = act(1, "approve", rows=rows)
    wire = approval.model_dump_json()
    assert '"rows":"z1:' in wire and "r3-v2" not in wire  # packed: no row readable as JSON
    back = ApprovalAction.model_validate_json(wire)
    assert back.rows == rows  # each row with exactly its counts: a held change compares rows
    assert Approvals.fold([back], MAPPING).by_id["A"].figures == Approvals.fold([approval], MAPPING).by_id["A"].figures
    # an action written before packing (rows as a JSON list) is still read
    plain = {**approval.model_dump(mode="json"), "rows": [r.model_dump(mode="json") for r in rows]}
    assert ApprovalAction.model_validate(plain).rows == rows


def test_activity_rows_travel_with_their_form_labels_and_fractional_hours():
    visit = row("v1", "v1", MARCH, 12)
    training = visit.model_copy(update={
        "root_id": "t1", "event_id": "t1-v2", "event_type": "staff_trained",
        "labels": {"occasion": "", "donor_kind": "", "donor_origin": "", "worker_id": "HG-0042", "result": "passed"},
        "counts": {"hours": 7.5, "books": 0, "reports": 1}})
    donation = visit.model_copy(update={
        "root_id": "d1", "event_id": "d1", "event_type": "donation_received",
        "labels": {"occasion": "", "donor_kind": "business", "donor_origin": "foreign", "worker_id": "", "result": ""},
        "counts": {"books": 120, "money_vnd": 5_000_000, "reports": 1}})
    rows = [visit, training, donation]
    back = unpack_rows(pack_rows(rows))
    assert back == rows and back[1].counts["hours"] == 7.5 and not back[0].labels
    # the figures at approval are the visit logs' only; a held activity change has its form and counts
    approvals = Approvals.fold([act(1, "approve", rows=rows)], MAPPING)
    assert approvals.by_id["A"].figures == {"2026-03": {**dict.fromkeys(VALUES, 0), "visits_total": 12, "reports": 1}}
    more = training.model_copy(update={"event_id": "t1-v3", "counts": {"hours": 9.0, "books": 0, "reports": 1}})
    (held,) = held_changes(approvals.by_id["A"], [visit, more, donation])
    assert (held.as_dict()["form"], held.as_dict()["delta"]["hours"], held.as_dict()["delta"]["reports"]) == (
        "staff_training", 1.5, 0)


def test_a_province_quarter_of_daily_logs_packs_to_about_fifty_bytes_a_chain():
    from bench.approval_snapshot import large_rows

    rows = large_rows(libraries=60)  # 60 libraries x 91 days of random-id chains
    packed = pack_rows(rows)
    assert len(packed) < 60 * len(rows)  # about 49 B a chain; as JSON rows, about 370 B
    assert unpack_rows(packed) == rows


@pytest.mark.parametrize("bad", [
    "not packed", "z1:!!!not base64!!!", "z1:" + base64.b64encode(b"not deflated").decode(),
    "z1:" + base64.b64encode(zlib.compress(b'{"first": "2026-03-01"}')).decode(),
    "z1:" + base64.b64encode(zlib.compress(json.dumps({
        "first": "2026-03-01", "values": ["reports"], "place_table": [["L", "02", "c", "08", "c2"]],
        "roots": ["r1", "r2"], "versions": [""], "days": [0], "places": [0], "counts": [[1]]}).encode())).decode(),
    "z1:" + base64.b64encode(zlib.compress(b" " * (MAX_UNPACKED + 1))).decode(),  # a deflate bomb
    *("z1:" + base64.b64encode(zlib.compress(json.dumps({  # one row of a form no approval holds, or badly typed
        "first": "2026-03-01", "values": ["reports"], "place_table": [["L", "02", "c", "08", "c2"]],
        "roots": ["r1"], "versions": [""], "days": [0], "places": [0], "counts": [[1]], **forms}).encode())).decode()
      for forms in ({"types": [0], "type_table": ["library_registered"], "labels": [None]},
                    {"types": [3], "type_table": ["visit_logged"], "labels": [None]},
                    {"types": [0], "type_table": ["donation_received"], "labels": [["a"]]})),
])
def test_a_bad_packed_snapshot_is_refused_not_half_read(bad: str):
    with pytest.raises(ValueError):
        unpack_rows(bad)
    with pytest.raises(ValueError):
        ApprovalAction.model_validate({**act(1, "approve").model_dump(mode="json"), "rows": bad})


def test_an_approval_made_before_activities_were_held_holds_visit_logs_only():
    """An approval archived before approvals held the activity forms (no ``event_types``) keeps its
    meaning on replay: its months' activity figures stay live, and activity reports are not queued."""
    mobile = row("m1", "m1", MARCH, 0).model_copy(update={
        "event_type": "mobile_session_held", "labels": {}, "counts": {"visits_total": 7, "reports": 1}})
    old = act(1, "approve", rows=SNAPSHOT).model_dump(mode="json")
    del old["event_types"]
    approvals = Approvals.fold([ApprovalAction.model_validate(old)], MAPPING)
    assert approvals.covered("legacy", "02", MARCH, MARCH, "visit_logged").months
    assert not approvals.covered("legacy", "02", MARCH, MARCH, "mobile_session_held").months
    assert held_changes(approvals.by_id["A"], [*SNAPSHOT, mobile]) == []
    now = Approvals.fold([act(1, "approve", rows=[*SNAPSHOT, mobile])], MAPPING)
    assert now.covered("legacy", "02", MARCH, MARCH, "mobile_session_held").months
    assert now.by_id["A"].summary()["forms"] == ["visit_log", "mobile_session", "reading_promotion",
                                                 "staff_training", "donation"]
