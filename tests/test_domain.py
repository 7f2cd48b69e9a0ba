"""The domain on its own: parsing, validation and the visit-log report-chain fold (no I/O)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.config import TIMEZONE
from services.domain.errors import SubmissionRejected
from services.domain.events import Retraction, SubmissionRetracted
from services.domain.forms.visit_log import VisitCounts, VisitLogged, parse
from services.domain.reference import default_reference
from services.domain.report_chains import ChainChange, ReportChain, fold_batch
from services.domain.submission import parse_submission
from services.domain.visit_chains import VISIT_CHAINS
from tests.oracle import Area, Oracle

pytestmark = pytest.mark.unit  # make check: no broker, browser, ClickHouse or Java

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


class Chains:
    """The visit chains as the store keeps them, and the library-day sums its view makes of them."""

    def __init__(self) -> None:
        self.rows: dict[str, ReportChain] = {}
        self.position = 0

    def fold(self, *events: object) -> list[str]:
        batch = []
        for e in events:
            self.position += 1
            batch.append((self.position, e))
        return self.fold_at(batch)

    def fold_at(self, batch: list[tuple[int, object]]) -> list[str]:
        folded = fold_batch(self.rows, batch, VISIT_CHAINS)
        self.rows.update(folded.chains)
        return [outcome for _, outcome, _ in folded.outcomes]

    def days(self) -> dict[date, tuple[int, int, datetime | None]]:
        """day → (visits_total, reports, first reported) over the counted chains."""
        out: dict[date, tuple[int, int, datetime | None]] = {}
        for c in self.rows.values():
            if c.counted:
                total, reports, first = out.get(c.day, (0, 0, None))
                firsts = [t for t in (first, c.first_reported_at) if t is not None]
                out[c.day] = (total + c.values["visits_total"], reports + 1, min(firsts, default=None))
        return out


def retraction_of(version: VisitLogged, at: datetime) -> SubmissionRetracted:
    base = version.model_dump(exclude={"event_type", "payload", "event_id", "submitted_at", "content_hash"})
    return SubmissionRetracted(**base, event_id=f"{version.root_id}#retracted", submitted_at=at,
                               content_hash="f" * 64, payload=Retraction(
                                   retracts_event_type="visit_logged", reason_code="central_rejected",
                                   reason="rejected in review"))


def test_events_on_the_same_day_add_up():
    chains = Chains()
    assert chains.fold(event("a", DAY, 10), event("b", DAY, 5)) == ["applied", "applied"]
    assert chains.days()[DAY][:2] == (15, 2)


def test_a_redelivered_event_changes_nothing():
    chains = Chains()
    chains.fold(event("a", DAY, 10))
    before = dict(chains.rows)
    assert chains.fold(event("a", DAY, 10)) == ["duplicate"]
    assert chains.rows == before


def test_same_id_other_answers_is_a_conflict_and_changes_nothing():
    chains = Chains()
    chains.fold(event("a", DAY, 10))
    assert chains.fold(event("a", DAY, 99, answers_hash="b")) == ["conflict"]
    assert chains.days()[DAY][:2] == (10, 1)


def test_an_edit_moving_the_date_moves_the_chain():
    chains = Chains()
    chains.fold(event("v1", DAY, 10))
    assert chains.fold(event("v2", date(2026, 9, 30), 12, root_id="v1", answers_hash="b")) == ["replaced"]
    assert chains.days() == {date(2026, 9, 30): (12, 1, datetime(2026, 11, 25, tzinfo=TIMEZONE))}
    # The superseded version arriving late is ignored.
    assert chains.fold(event("v1", DAY, 10)) == ["stale"]
    assert DAY not in chains.days()


def test_a_chain_keeps_when_it_was_first_accepted_across_edits():
    """Timeliness counts a month as reported when its first visit log came, not its last edit."""
    chains, first_at = Chains(), datetime(2026, 10, 6, 18, tzinfo=TIMEZONE)
    chains.fold(event("v1", DAY, 10, submitted_at=first_at))
    chains.fold(event("v2", date(2026, 9, 30), 12, root_id="v1", answers_hash="b",
                      submitted_at=datetime(2026, 11, 20, 9, tzinfo=TIMEZONE)))
    assert chains.days()[date(2026, 9, 30)] == (12, 1, first_at)  # the edit moved the chain, not its first time
    earlier = datetime(2026, 10, 1, tzinfo=TIMEZONE)
    chains.fold(event("w1", date(2026, 9, 30), 3, answers_hash="c", submitted_at=earlier))
    assert chains.days()[date(2026, 9, 30)] == (15, 2, earlier)  # the day's earliest chain


def test_a_batch_folded_again_from_the_same_state_gives_the_same_rows():
    """A worker killed after its store write, before its commit, folds the batch again."""
    chains = Chains()
    chains.fold(event("v1", DAY, 10))
    batch = [(2, event("v2", date(2026, 9, 30), 12, root_id="v1", answers_hash="b")), (3, event("w", DAY, 4))]
    first = fold_batch(chains.rows, batch, VISIT_CHAINS).chains
    chains.rows.update(first)
    # the written rows already hold it: nothing to rewrite
    assert fold_batch(chains.rows, batch, VISIT_CHAINS).chains == {}
    before = Chains()
    before.fold_at([(1, event("v1", DAY, 10))])
    assert fold_batch(before.rows, batch, VISIT_CHAINS).chains == first  # the write lost: the same rows again, same seq


def test_a_retraction_withdraws_the_chain_once():
    chains = Chains()
    v2 = event("v2", DAY, 12, root_id="v1", answers_hash="b", submitted_at=datetime(2026, 11, 26, tzinfo=TIMEZONE))
    chains.fold(event("v1", DAY, 10), v2)
    retraction = retraction_of(v2, datetime(2026, 11, 27, tzinfo=TIMEZONE))
    assert chains.fold(retraction) == ["retracted"]
    assert chains.days() == {}
    assert chains.fold(retraction) == ["duplicate"]
    assert chains.fold(v2) == ["stale"]
    assert chains.days() == {}


# --- the fold alone against the oracle: any interleaving and duplication of a chain's versions -----------

_ANSWERS = "abcdef"


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[tuple[int, object]], list[tuple[int, object]]]:
    """Up to three chains, each with up to four versions (edits moving day and totals) and maybe a
    retraction, accepted in order; then delivered in any order, each any number of times (≥ 1)."""
    log: list[tuple[int, object]] = []
    accepted = datetime(2026, 11, 1, 8, tzinfo=TIMEZONE)
    for chain in range(draw(st.integers(1, 3))):
        root = f"uuid:c{chain}"
        for version in range(draw(st.integers(1, 4))):
            accepted += timedelta(minutes=draw(st.integers(0, 2)))  # equal times: the log position decides
            event_id = root if version == 0 else f"{root}-v{version + 1}"
            log.append((len(log) + 1, event(event_id, DAY + timedelta(days=draw(st.integers(0, 2))),
                                            draw(st.integers(0, 50)), root_id=root,
                                            answers_hash=_ANSWERS[version], submitted_at=accepted)))
        if draw(st.booleans()):
            accepted += timedelta(minutes=draw(st.integers(0, 2)))
            log.append((len(log) + 1, retraction_of(log[-1][1], accepted)))  # type: ignore[arg-type]
    copies = [pair for pair in log for _ in range(draw(st.integers(1, 3)))]
    return log, draw(st.permutations(copies))


@settings(max_examples=300, deadline=None)
@given(deliveries(), st.integers(1, 5))
def test_any_interleaving_and_duplication_gives_the_oracles_totals(delivered, batch_size: int):
    log, order = delivered
    chains = Chains()
    for start in range(0, len(order), batch_size):
        chains.fold_at(order[start:start + batch_size])
    oracle = Oracle(log, REFERENCE)
    area = Area("legacy", library_id=LIBRARY.library_id)
    expected = {row["period"]: (row["visits_total"], row["reports"])
                for row in oracle.visits(area, None, None, "day")}
    assert {d.isoformat(): totals[:2] for d, totals in chains.days().items()} == expected
    firsts = {c.root_id: c.first_reported_at for c in chains.rows.values() if c.counted}
    assert firsts == {root: oracle._first_accepted(root) for root in oracle._current}
    # Each chain's history (what its lineage lists) is every version and retraction once, in acceptance
    # order, whatever order and however often they arrived.
    accepted = {}
    for _, e in log:
        accepted.setdefault(e.root_id, []).append(ChainChange.of(e))  # type: ignore[attr-defined]
    assert {root: list(c.history) for root, c in chains.rows.items()} == {
        root: sorted(changes, key=lambda c: (c.accepted_at, c.event_id)) for root, changes in accepted.items()}


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
