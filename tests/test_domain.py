"""The domain on its own: parsing, validation and the daily-visits fold (no I/O)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from services.config import TIMEZONE
from services.domain.daily_visits import fold_visit_event
from services.domain.errors import SubmissionRejected
from services.domain.forms.visit_log import VisitCounts, VisitLogged, parse
from services.domain.reference import default_reference
from services.domain.submission import parse_submission


class DictState:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = value


REFERENCE = default_reference()
LIBRARY = next(iter(REFERENCE.libraries.values()))


def event(event_id: str, day: date, total: int, root_id: str | None = None, answers_hash: str = "a",
          submitted_at: datetime = datetime(2026, 11, 25, tzinfo=TIMEZONE)) -> VisitLogged:
    counts = dict.fromkeys(VisitCounts.model_fields, 0) | {
        "visits_total": total, "visits_adults": total, "visits_female": total, "visits_reading": total}
    return VisitLogged(
        event_id=event_id, root_id=root_id or event_id, form_id="visit_log", form_version="1",
        submitted_at=submitted_at, occurred_on=day, library_id=LIBRARY.library_id,
        areas=list(LIBRARY.areas), submitter="t", source="openrosa", content_hash=answers_hash * 64,
        payload=VisitCounts(**counts))


DAY = date(2026, 10, 5)


def test_events_on_the_same_day_add_up():
    state = DictState()
    fold_visit_event(state, event("a", DAY, 10), 1)
    result = fold_visit_event(state, event("b", DAY, 5), 2)
    [row] = result.rows
    assert (row.counts["visits_total"], row.reports, row.version) == (15, 2, 2)


def test_a_redelivered_event_rewrites_the_same_totals():
    state = DictState()
    first = fold_visit_event(state, event("a", DAY, 10), 1)
    again = fold_visit_event(state, event("a", DAY, 10), 1)
    assert again.outcome == "duplicate"
    assert again.rows[0].counts == first.rows[0].counts and again.rows[0].reports == 1


def test_same_id_other_answers_is_a_conflict_and_changes_nothing():
    state = DictState()
    fold_visit_event(state, event("a", DAY, 10), 1)
    result = fold_visit_event(state, event("a", DAY, 99, answers_hash="b"), 2)
    assert result.outcome == "conflict" and result.rows == []
    chains = state.get(f"day:{LIBRARY.library_id}|{DAY}")["chains"]
    assert [c["counts"]["visits_total"] for c in chains.values()] == [10]


def test_an_edit_moving_the_date_retracts_the_old_day():
    state = DictState()
    fold_visit_event(state, event("v1", DAY, 10), 1)
    result = fold_visit_event(state, event("v2", date(2026, 9, 30), 12, root_id="v1", answers_hash="b"), 2)
    assert result.outcome == "replaced"
    by_day = {row.day: row for row in result.rows}
    assert by_day[DAY].counts["visits_total"] == 0 and by_day[DAY].reports == 0
    assert by_day[date(2026, 9, 30)].counts["visits_total"] == 12
    # The superseded version arriving late is ignored.
    assert fold_visit_event(state, event("v1", DAY, 10), 3).outcome == "stale"


def test_a_day_keeps_when_its_reports_were_first_accepted_across_edits():
    """Timeliness counts a month as reported when its first visit log came, not its last edit."""
    state, first_at = DictState(), datetime(2026, 10, 6, 18, tzinfo=TIMEZONE)
    fold_visit_event(state, event("v1", DAY, 10, submitted_at=first_at), 1)
    edit = event("v2", date(2026, 9, 30), 12, root_id="v1", answers_hash="b",
                 submitted_at=datetime(2026, 11, 20, 9, tzinfo=TIMEZONE))
    moved = {row.day: row for row in fold_visit_event(state, edit, 2).rows}
    assert moved[date(2026, 9, 30)].first_reported_at == first_at  # the edit moved the chain, not its first time
    assert moved[DAY].first_reported_at is None and moved[DAY].reports == 0
    later = event("w1", date(2026, 9, 30), 3, answers_hash="c", submitted_at=datetime(2026, 10, 1, tzinfo=TIMEZONE))
    (row,) = fold_visit_event(state, later, 3).rows
    assert row.reports == 2 and row.first_reported_at == datetime(2026, 10, 1, tzinfo=TIMEZONE)


SUBMISSION = b"""<?xml version='1.0' encoding='UTF-8'?>
<visit_log xmlns:orx="http://openrosa.org/xforms" id="visit_log" version="2026112501">
  <library_id>LIB-BG-0001</library_id><report_date>2026-11-01</report_date>
  <visits><visits_total>10</visits_total><visits_children>4</visits_children><visits_adults>6</visits_adults>
    <visits_female>5</visits_female><visits_male>5</visits_male><visits_ethnic_minority>8</visits_ethnic_minority>
  </visits>
  <by_purpose><visits_learning>1</visits_learning><visits_information>2</visits_information>
    <visits_reading>3</visits_reading><visits_events>4</visits_events></by_purpose>
  <notes>Th\xc6\xb0 vi\xe1\xbb\x87n</notes>
  <orx:meta><orx:instanceID>uuid:x</orx:instanceID></orx:meta>
</visit_log>"""


def test_parsing_reads_ids_and_answers_whatever_the_namespaces():
    submission = parse_submission(SUBMISSION)
    assert (submission.form_id, submission.form_version, submission.instance_id) == (
        "visit_log", "2026112501", "uuid:x")
    assert submission.answer("visits_total") == "10" and submission.answer("notes") == "Thư viện"
    report = parse(submission, date(2026, 11, 25), REFERENCE)
    assert report.payload.visits_total == 10 and report.occurred_on == date(2026, 11, 1)


def test_formatting_does_not_change_the_content_hash():
    assert parse_submission(SUBMISSION).content_hash == parse_submission(
        SUBMISSION.replace(b"\n  ", b"")).content_hash


def test_a_future_date_and_bad_totals_are_all_reported():
    broken = SUBMISSION.replace(b"2026-11-01", b"2027-01-01").replace(b">6</visits_adults>", b">7</visits_adults>")
    with pytest.raises(SubmissionRejected) as caught:
        parse(parse_submission(broken), date(2026, 11, 25), REFERENCE)
    codes = [r.code for r in caught.value.reasons]
    assert codes == ["date_in_future", "totals_inconsistent"]
    assert "trẻ em + người lớn" in caught.value.reasons[1].message_vi


@pytest.mark.parametrize("hostile", [
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "boom">]><visit_log id="visit_log">&x;</visit_log>',
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><visit_log>&x;</visit_log>',
])
def test_entities_and_dtds_are_refused(hostile: bytes):
    with pytest.raises(SubmissionRejected) as caught:
        parse_submission(hostile)
    assert caught.value.code == "xml_forbidden_construct"


def test_malformed_xml_is_refused_with_a_reason():
    with pytest.raises(SubmissionRejected) as caught:
        parse_submission(b"<visit_log id='visit_log'><unclosed></visit_log>")
    assert caught.value.code == "xml_malformed"


def test_a_half_persisted_edit_is_completed_by_its_redelivery():
    """A worker killed mid-write may persist the new day but not the old day's retraction."""
    state = DictState()
    fold_visit_event(state, event("v1", DAY, 10), 1)
    old_index = dict(state.get("sub:v1"))
    fold_visit_event(state, event("v2", date(2026, 9, 30), 12, root_id="v1", answers_hash="b"), 2)
    # Undo the retraction and the index update, as if only the new day's key reached the changelog.
    state.data[f"day:{LIBRARY.library_id}|{DAY}"]["chains"]["v1"] = {
        "event_id": "v1", "content_hash": "a" * 64, "counts": event("v1", DAY, 10).payload.model_dump(),
        "versions": ["v1"]}
    state.data["sub:v1"] = old_index

    again = fold_visit_event(state, event("v2", date(2026, 9, 30), 12, root_id="v1", answers_hash="b"), 2)

    by_day = {row.day: (row.counts["visits_total"], row.reports) for row in again.rows}
    assert by_day == {date(2026, 9, 30): (12, 1), DAY: (0, 0)}


def test_a_retraction_withdraws_the_chain_once():
    from services.domain.daily_visits import retract_visit_chain
    from services.domain.events import Retraction, SubmissionRetracted

    state = DictState()
    fold_visit_event(state, event("v1", DAY, 10), 1)
    fold_visit_event(state, event("v2", DAY, 12, root_id="v1", answers_hash="b"), 2)
    base = event("v2", DAY, 0, root_id="v1").model_dump(exclude={"event_type", "payload"})
    retraction = SubmissionRetracted(**base, payload=Retraction(
        retracts_event_type="visit_logged", reason_code="central_rejected", reason="rejected in review"))

    result = retract_visit_chain(state, retraction, 3)
    assert result.outcome == "retracted"
    assert (result.rows[0].counts["visits_total"], result.rows[0].reports) == (0, 0)
    assert retract_visit_chain(state, retraction, 3).outcome == "duplicate"
    assert fold_visit_event(state, event("v2", DAY, 12, root_id="v1", answers_hash="b"), 2).outcome == "stale"
