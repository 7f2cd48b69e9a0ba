"""Book rotation's folds on their own: the batch state machine over the in-memory ``State``
(``tests/fakes.py``), no store, no bus. The stack end to end is ``test_rotation.py``'s."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from services.config import TIMEZONE
from services.domain.events import AdminArea, Retraction, SubmissionRetracted
from services.domain.forms.rotation_movement import RotationMoved, RotationMovement
from services.domain.reference import Library, default_reference
from services.domain.rotation import (
    REASON_CODE,
    FoldResult,
    LetterChange,
    RotationBatchRow,
    RotationMovementRow,
    fold,
)
from tests.fakes import InMemoryState

pytestmark = pytest.mark.unit  # make check: no broker, browser, ClickHouse or Java

REFERENCE = default_reference()
LIBRARIES = sorted(REFERENCE.libraries.values(), key=lambda lib: lib.library_id)
HOLDER = next(lib for lib in LIBRARIES if lib.area("legacy").province_code == "02")  # Hà Giang → Tuyên Quang
OTHER = next(lib for lib in LIBRARIES if lib.area("legacy").province_code == "02" and lib is not HOLDER)
BATCH = "LC-08-2025-001"
NOW = datetime(2025, 12, 1, 9, 0, tzinfo=TIMEZONE)


def moved(movement: str, day: date, *, root: str, version: int = 1, library: Library = HOLDER, batch: str = BATCH,
          submitted: datetime | None = None, lost: int = 0, damaged: int = 0, copies: int = 60,
          origin_province: str = "08") -> RotationMoved:
    event_id = root if version == 1 else f"{root}-v{version}"
    payload = RotationMovement(batch_id=batch, movement=movement, origin="provincial_library",  # type: ignore[arg-type]
                               origin_province=origin_province, titles=30, copies=copies, ethnic_language_copies=12,
                               copies_lost=lost, copies_damaged=damaged)
    return RotationMoved(
        event_id=event_id, root_id=root, deprecated_id=None if version == 1 else root, form_id="rotation_movement",
        form_version="1", submitted_at=submitted or datetime.combine(day, datetime.min.time(), TIMEZONE)
        + timedelta(hours=12 + version), occurred_on=day, library_id=library.library_id,
        areas=[AdminArea(**a.model_dump()) for a in library.areas], submitter="doi-hg-01", source="openrosa",
        content_hash=hashlib.sha256(payload.model_dump_json().encode() + event_id.encode()).hexdigest(),
        payload=payload)


def retracted(of: RotationMoved, submitted: datetime) -> SubmissionRetracted:
    return SubmissionRetracted(
        event_id=f"{of.event_id}#retracted", root_id=of.root_id, form_id=of.form_id, form_version=of.form_version,
        submitted_at=submitted, occurred_on=of.occurred_on, library_id=of.library_id, areas=of.areas,
        submitter="central-pull", source="central", content_hash=of.content_hash,
        payload=Retraction(retracts_event_type="rotation_moved", reason_code="rejected", reason="rejected in review"))


@dataclasses.dataclass
class Folded:
    """What a sink would hold after writing every result: the latest row per key, letters by id."""

    batches: dict[str, RotationBatchRow] = dataclasses.field(default_factory=dict)
    movements: dict[tuple[str, str], RotationMovementRow] = dataclasses.field(default_factory=dict)
    letters: dict[str, LetterChange] = dataclasses.field(default_factory=dict)
    results: list[FoldResult] = dataclasses.field(default_factory=list)

    def live_movements(self, batch: str = BATCH) -> list[RotationMovementRow]:
        return sorted((m for m in self.movements.values() if m.batch_id == batch and not m.is_deleted),
                      key=lambda m: m.seq)

    def open_letters(self) -> dict[str, LetterChange]:
        return {k: c for k, c in self.letters.items() if not c.resolved}


def run(events: list[object], state: InMemoryState | None = None, into: Folded | None = None) -> Folded:
    state = state or InMemoryState()
    into = into or Folded()
    for position, event in enumerate(events, start=len(into.results) + 1):
        result = fold(state, event, position, NOW + timedelta(seconds=position))
        assert result is not None
        into.results.append(result)
        for row in result.batches:
            into.batches[row.batch_id] = row
        for m in result.movements:
            into.movements[(m.batch_id, m.root_id)] = m
        for c in result.letters:
            into.letters[c.letter.dead_letter_id] = c
    return into


D = date(2025, 9, 1)


def lifecycle() -> list[RotationMoved]:
    return [moved("dispatched", D, root="uuid:d"),
            moved("received", D + timedelta(days=3), root="uuid:r", lost=1, damaged=2),
            moved("returned", D + timedelta(days=100), root="uuid:t", lost=2, damaged=1)]


# --- the state machine ---------------------------------------------------------------------------


def test_a_valid_lifecycle_makes_the_batch():
    folded = run(lifecycle())
    row = folded.batches[BATCH]
    assert (row.status, row.dispatched_on, row.received_on, row.returned_on) == (
        "returned", D, D + timedelta(days=3), D + timedelta(days=100))
    assert (row.origin, row.origin_province, row.origin_library_id, row.library_id) == (
        "provincial_library", "08", None, HOLDER.library_id)
    assert (row.province_legacy, row.commune_legacy) == (HOLDER.area("legacy").province_code,
                                                         HOLDER.area("legacy").commune_code)
    assert (row.province_2025, row.commune_2025) == ("08", HOLDER.area("2025").commune_code)
    assert (row.titles, row.copies, row.ethnic_language_copies, row.copies_lost, row.copies_damaged) == (
        30, 60, 12, 3, 3)
    assert (row.valid_movements, row.invalid_movements, row.version) == (3, 0, 3)
    assert [(m.seq, m.movement, m.valid) for m in folded.live_movements()] == [
        (1, "dispatched", True), (2, "received", True), (3, "returned", True)]
    assert folded.letters == {}
    assert [r.outcome for r in folded.results] == ["applied"] * 3


def test_each_step_moves_the_status():
    events = lifecycle()
    for n, status in enumerate(("dispatched", "received", "returned"), start=1):
        assert run(events[:n]).batches[BATCH].status == status


d0, d1, d2, d3 = D, D + timedelta(days=2), D + timedelta(days=40), D + timedelta(days=60)
INVALID = [
    ("received before any dispatch", [("received", d1, HOLDER)], "received_before_dispatch",
     "chưa có phiếu gửi đi", "was not dispatched"),
    ("received the day before its dispatch", [("dispatched", d1, HOLDER), ("received", d0, HOLDER)],
     "received_before_dispatch", "chưa có phiếu gửi đi", "was not dispatched"),
    ("returned, never dispatched", [("returned", d2, HOLDER)], "returned_before_dispatch",
     "chưa có phiếu gửi đi", "never dispatched"),
    ("returned, never received", [("dispatched", d0, HOLDER), ("returned", d2, HOLDER)],
     "returned_before_receipt", "chưa ghi nhận đã nhận", "was not received"),
    ("a second dispatch", [("dispatched", d0, HOLDER), ("dispatched", d1, HOLDER)], "dispatched_twice",
     "chỉ gửi đi một lần", "a batch is dispatched once"),
    ("dispatched again after its return", [("dispatched", d0, HOLDER), ("received", d1, HOLDER),
                                           ("returned", d2, HOLDER), ("dispatched", d3, HOLDER)],
     "dispatched_twice", "chỉ gửi đi một lần", "a batch is dispatched once"),
    ("received twice", [("dispatched", d0, HOLDER), ("received", d1, HOLDER), ("received", d2, HOLDER)],
     "received_twice", "không nhận lần nữa", "cannot be received again"),
    ("returned twice", [("dispatched", d0, HOLDER), ("received", d1, HOLDER), ("returned", d2, HOLDER),
                        ("returned", d3, HOLDER)], "returned_twice", "không trả lần nữa", "cannot be returned twice"),
    ("received by another library", [("dispatched", d0, HOLDER), ("received", d1, OTHER)],
     "received_by_other_library", f"được gửi tới thư viện {HOLDER.library_id}",
     f"was dispatched to library {HOLDER.library_id}, not to library {OTHER.library_id}"),
    ("returned by another library", [("dispatched", d0, HOLDER), ("received", d1, HOLDER), ("returned", d2, OTHER)],
     "returned_by_other_library", f"đang ở thư viện {HOLDER.library_id}",
     f"library {OTHER.library_id} cannot return it"),
]


@pytest.mark.parametrize(("name", "steps", "code", "vi", "en"), INVALID, ids=[i[0] for i in INVALID])
def test_an_impossible_step_is_invalid_with_a_reason(name: str, steps, code: str, vi: str, en: str):
    events = [moved(m, day, root=f"uuid:{n}", library=lib) for n, (m, day, lib) in enumerate(steps)]
    folded = run(events)
    movements = folded.live_movements()
    [bad] = [m for m in movements if not m.valid]
    assert bad.reason_code == code
    assert vi in bad.reason_vi and en in bad.reason_en and BATCH in bad.reason_vi and BATCH in bad.reason_en
    assert all(m.reason_code == "" for m in movements if m.valid)
    row = folded.batches[BATCH]
    assert (row.valid_movements, row.invalid_movements) == (len(steps) - 1, 1)
    # the invalid movement does not move the batch
    assert row.status == {"received_before_dispatch": "dispatched" if len(steps) > 1 else "none",
                          "returned_before_dispatch": "none", "returned_before_receipt": "dispatched",
                          "dispatched_twice": "returned" if len(steps) > 2 else "dispatched",
                          "received_twice": "received", "returned_twice": "returned",
                          "received_by_other_library": "dispatched", "returned_by_other_library": "received"}[code]
    [letter] = folded.open_letters().values()
    assert (letter.letter.reason_code, letter.letter.stage, letter.letter.instance_id) == (
        REASON_CODE, "processor", bad.event_id)
    assert letter.new and vi in letter.letter.reason_vi and en in letter.letter.reason_en
    body = json.loads(letter.letter.event_json)
    assert body["event"]["event_id"] == bad.event_id and body["reason_code"] == code
    assert [m["event_id"] for m in body["batch"]["movements"]] == [m.event_id for m in movements]


def test_an_origin_other_than_the_dispatch_is_invalid():
    folded = run([moved("dispatched", d0, root="uuid:d"), moved("received", d1, root="uuid:r", origin_province="19")])
    [bad] = [m for m in folded.live_movements() if not m.valid]
    assert bad.reason_code == "origin_mismatch" and "thư viện tỉnh 08" in bad.reason_vi


def test_an_edit_replaces_its_movement():
    state, folded = InMemoryState(), Folded()
    run([moved("dispatched", d0, root="uuid:d"), moved("received", d0 - timedelta(days=1), root="uuid:r")],
        state, folded)
    [letter] = folded.open_letters().values()
    assert letter.letter.instance_id == "uuid:r"
    # the receipt's date is corrected: the same chain, a later version
    run([moved("received", d1, root="uuid:r", version=2, lost=4)], state, folded)
    row = folded.batches[BATCH]
    assert (row.status, row.received_on, row.copies_lost, row.valid_movements, row.invalid_movements) == (
        "received", d1, 4, 2, 0)
    assert [(m.event_id, m.valid) for m in folded.live_movements()] == [("uuid:d", True), ("uuid:r-v2", True)]
    assert folded.open_letters() == {} and folded.letters[letter.letter.dead_letter_id].resolved
    assert folded.results[-1].outcome == "replaced"
    # the old version arriving again changes nothing
    run([moved("received", d0 - timedelta(days=1), root="uuid:r")], state, folded)
    assert folded.results[-1].outcome == "stale" and folded.batches[BATCH] == row


def test_an_edit_into_another_batch_leaves_the_first():
    other = "LC-08-2025-002"
    state, folded = InMemoryState(), Folded()
    run([moved("dispatched", d0, root="uuid:d"), moved("dispatched", d0, root="uuid:e", batch=other),
         moved("received", d1, root="uuid:r")], state, folded)
    run([moved("received", d1, root="uuid:r", version=2, batch=other)], state, folded)
    assert folded.batches[BATCH].status == "dispatched" and folded.batches[other].status == "received"
    assert folded.movements[(BATCH, "uuid:r")].is_deleted
    assert [m.event_id for m in folded.live_movements(other)] == ["uuid:e", "uuid:r-v2"]


def test_a_retraction_withdraws_the_movement():
    events = lifecycle()
    state, folded = InMemoryState(), Folded()
    run(events, state, folded)
    run([retracted(events[2], NOW + timedelta(days=30))], state, folded)
    row = folded.batches[BATCH]
    assert (row.status, row.returned_on, row.copies_lost, row.valid_movements) == ("received", None, 1, 2)
    assert folded.movements[(BATCH, "uuid:t")].is_deleted
    assert [m.root_id for m in folded.live_movements()] == ["uuid:d", "uuid:r"]
    assert folded.results[-1].outcome == "retracted"


def test_a_retraction_makes_a_later_movement_invalid_and_its_letter_open():
    events = lifecycle()
    state, folded = InMemoryState(), Folded()
    run(events, state, folded)
    run([retracted(events[0], NOW + timedelta(days=30))], state, folded)
    assert folded.batches[BATCH].status == "none"
    assert {c.letter.instance_id for c in folded.open_letters().values()} == {"uuid:r", "uuid:t"}


def test_a_redelivered_event_rewrites_the_same_rows():
    events = lifecycle()
    state, folded = InMemoryState(), Folded()
    run(events, state, folded)
    before = folded.batches[BATCH]
    again = run([events[1]], state, Folded())
    assert again.results[0].outcome == "duplicate" and again.batches[BATCH] == before


def test_same_instance_id_with_other_answers_is_a_conflict():
    state = InMemoryState()
    run([moved("dispatched", d0, root="uuid:d")], state)
    other = moved("dispatched", d0, root="uuid:d", copies=70)
    assert run([other], state).results[0].outcome == "conflict"


def _shuffled_set() -> list[object]:
    """A batch's events with invalid steps, an edit and a retraction, each chain's versions dated apart."""
    late = NOW + timedelta(days=30)
    return [
        moved("dispatched", d0, root="uuid:d"),
        moved("received", d1, root="uuid:r", lost=1),
        moved("received", d2, root="uuid:r2"),  # received twice
        moved("returned", d3, root="uuid:t", damaged=2),
        moved("returned", d3 + timedelta(days=1), root="uuid:t", version=2, damaged=3),  # edit of the return
        moved("dispatched", d1, root="uuid:x"),  # a second dispatch…
        retracted(moved("dispatched", d1, root="uuid:x"), late),  # …withdrawn in review
        moved("received", d1, root="uuid:o", library=OTHER),  # by another library
    ]


def test_the_result_does_not_depend_on_arrival_order():
    def final(events: list[object]) -> tuple[Any, ...]:
        folded = run(events)
        batch = dataclasses.replace(folded.batches[BATCH], version=0)
        movements = [dataclasses.replace(m, version=0) for m in folded.live_movements()]
        return batch, movements, sorted(folded.open_letters())

    expected = final(_shuffled_set())
    batch, movements, letters = expected
    assert (batch.status, batch.returned_on, batch.copies_lost, batch.copies_damaged) == (
        "returned", d3 + timedelta(days=1), 1, 3)
    assert [(m.root_id, m.reason_code) for m in movements if not m.valid] == [
        ("uuid:o", "received_by_other_library"), ("uuid:r2", "received_twice")]
    assert len(letters) == 2
    rng = random.Random(2026)
    for _ in range(20):
        events = _shuffled_set()
        rng.shuffle(events)
        assert final(events) == expected
