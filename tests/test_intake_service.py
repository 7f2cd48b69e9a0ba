"""The intake's service layer on the in-memory ports (``tests/fakes.py``): no SQLite, no chDB, no HTTP.

What a field team and an operator would see: what is published (reaches the aggregates), what
the phone is told (accepted, duplicate, held, part, or a refusal with its status), and what is
kept for operators (dead letters). The SQLite ledger, the real bus and the OpenRosa edge are the
integration tests' (``test_held_edits.py``, ``test_openrosa.py``, ``test_security_intake.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from services.config import TIMEZONE
from services.domain.dead_letters import DeadLetter
from services.domain.errors import SubmissionRejected
from services.domain.events import SubmissionRetracted
from services.domain.reference import Library, default_reference
from services.intake.accounts import Account
from services.intake.blobs import BlobStore, FileBlobStore, IncomingFile
from services.intake.refusals import BusUnavailable, OutOfScope, SubmissionConflict
from services.intake.service import IntakeService
from tests.conftest import visit_answers
from tests.fakes import InMemoryLedger, ListPublisher

pytestmark = pytest.mark.unit  # make check: no broker, browser, ClickHouse or Java

REFERENCE = default_reference()
HG = next(lib for lib in REFERENCE.libraries.values() if lib.area("legacy").province_code == "02")  # Hà Giang
LAI_CHAU = next(lib for lib in REFERENCE.libraries.values() if lib.area("legacy").province_code == "12")
VERSION = "2026010101"
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=TIMEZONE)
DAY = NOW.date() - timedelta(days=2)


def visit_log(instance_id: str, total: int = 10, *, deprecated_id: str | None = None, library: Library = HG,
              version: str = VERSION) -> bytes:
    """A visit log as Collect sends it (the answers' nesting does not matter to the intake)."""
    answers = "".join(f"<{name}>{value}</{name}>" for name, value in visit_answers(library, DAY, total).items())
    meta = f"<instanceID>{instance_id}</instanceID>"
    if deprecated_id:
        meta += f"<deprecatedID>{deprecated_id}</deprecatedID>"
    return (f'<?xml version="1.0" encoding="UTF-8"?><data id="visit_log" version="{version}">'
            f"{answers}<meta>{meta}</meta></data>").encode()


@dataclass
class Intake:
    service: IntakeService
    published: ListPublisher
    ledger: InMemoryLedger
    clock: list[datetime]

    def visits_published(self) -> dict[str, int]:
        """event_id → visits_total of each submission's event published, in order."""
        return {e.event_id: e.payload.visits_total for e in self.published.events()}  # type: ignore[attr-defined]

    def dead_letters(self) -> list[DeadLetter]:
        return [m for m in self.published.published if isinstance(m, DeadLetter)]


@pytest.fixture
def intake(tmp_path: Path) -> Intake:
    publisher, ledger, clock = ListPublisher(), InMemoryLedger(FileBlobStore(tmp_path / "blobs")), [NOW]
    service = IntakeService(REFERENCE, ledger, publisher, known_forms={"visit_log": VERSION},
                            clock=lambda: clock[0], held_timeout=timedelta(days=7))
    return Intake(service, publisher, ledger, clock)


# -- first submissions and resends --------------------------------------------------------------


def test_a_first_submission_is_published_then_recorded(intake: Intake):
    accepted = intake.service.submit(visit_log("uuid:a", total=10))
    assert accepted.kind == "new"
    assert intake.visits_published() == {"uuid:a": 10}
    event = intake.published.events()[0]
    assert (event.root_id, event.library_id, event.occurred_on, event.submitted_at) == ("uuid:a", HG.library_id,
                                                                                          DAY, NOW)
    entry = intake.ledger.lookup("uuid:a")
    assert entry is not None and entry.content_hash == event.content_hash
    assert intake.ledger.blobs.read(entry.raw_sha256) == visit_log("uuid:a", total=10)  # replayable as sent


def test_an_identical_resend_is_a_duplicate_and_publishes_nothing(intake: Intake):
    intake.service.submit(visit_log("uuid:a", total=10))
    assert intake.service.submit(visit_log("uuid:a", total=10)).kind == "duplicate"
    assert intake.visits_published() == {"uuid:a": 10}
    assert len(intake.published.published) == 1


def test_the_same_instance_id_with_other_answers_is_a_conflict(intake: Intake):
    intake.service.submit(visit_log("uuid:a", total=10))
    with pytest.raises(SubmissionConflict) as refused:
        intake.service.submit(visit_log("uuid:a", total=11))
    assert (refused.value.status, refused.value.code) == (409, "instance_id_conflict")
    assert intake.visits_published() == {"uuid:a": 10}, "the first answers stand"


def test_a_form_version_no_longer_served_is_refused_with_what_to_do(intake: Intake):
    with pytest.raises(SubmissionRejected) as refused:
        intake.service.submit(visit_log("uuid:old", version="2025010101"))
    assert (refused.value.status, refused.value.code) == (400, "form_version_unknown")
    assert "Get Blank Form" in refused.value.reasons[0].message_vi
    assert intake.published.published == []


# -- edits ---------------------------------------------------------------------------------------


def test_an_edit_before_its_original_is_held_then_released_after_it(intake: Intake):
    assert intake.service.submit(visit_log("uuid:edit", total=12, deprecated_id="uuid:orig")).kind == "held"
    assert intake.published.published == [], "nothing counts before the original"
    assert intake.service.submit(visit_log("uuid:edit", total=12, deprecated_id="uuid:orig")).kind == "held"

    assert intake.service.submit(visit_log("uuid:orig", total=10)).kind == "new"
    assert intake.visits_published() == {"uuid:orig": 10, "uuid:edit": 12}
    edit = intake.published.events()[1]
    assert (edit.root_id, edit.deprecated_id) == ("uuid:orig", "uuid:orig"), "the edit replaces the original's chain"
    assert intake.ledger.held() == []


def test_a_held_edit_whose_original_never_comes_becomes_a_dead_letter(intake: Intake):
    intake.service.submit(visit_log("uuid:edit", total=12, deprecated_id="uuid:never"))
    intake.clock[0] = NOW + timedelta(days=8)
    intake.service.expire_held()
    assert [d.reason_code for d in intake.dead_letters()] == ["predecessor_missing"]
    assert intake.ledger.held() == [] and intake.published.events() == []


# -- split uploads -------------------------------------------------------------------------------


def _attachment(blobs: BlobStore, name: str, data: bytes) -> IncomingFile:
    return IncomingFile(name, "image/jpeg", blobs.stage_bytes(data))


def test_a_split_upload_becomes_one_event_with_every_attachment_when_its_last_part_comes(intake: Intake):
    xml, blobs = visit_log("uuid:split"), intake.ledger.blobs
    first = intake.service.submit(xml, attachments=[_attachment(blobs, "a.jpg", b"photo a")], incomplete=True)
    assert first.kind == "partial"
    assert intake.published.published == [], "no event before the last part"

    last = intake.service.submit(xml, attachments=[_attachment(blobs, "b.jpg", b"photo b")])
    assert last.kind == "new"
    (event,) = intake.published.events()
    assert [a.name for a in event.attachments] == ["a.jpg", "b.jpg"]
    assert [blobs.read(a.sha256) for a in event.attachments] == [b"photo a", b"photo b"]


# -- refusals that say "not now" and "not yours" ------------------------------------------------------


def test_a_publish_failure_is_a_503_that_records_nothing_and_a_resend_is_new(intake: Intake):
    intake.published.down = True
    with pytest.raises(BusUnavailable) as refused:
        intake.service.submit(visit_log("uuid:a"))
    assert (refused.value.status, refused.value.retry_after) == (503, 30)
    assert intake.ledger.lookup("uuid:a") is None, "not durable, so not recorded: the phone keeps it"

    intake.published.down = False
    assert intake.service.submit(visit_log("uuid:a")).kind == "new"
    assert intake.visits_published() == {"uuid:a": 10}


def test_an_account_is_refused_outside_its_provinces_and_the_submission_kept_as_a_dead_letter(intake: Intake):
    lai_chau_team = Account("doi-lc-01", provinces=frozenset({"legacy:12"}))
    with pytest.raises(OutOfScope) as refused:
        intake.service.submit(visit_log("uuid:hg", library=HG), lai_chau_team)
    assert (refused.value.status, refused.value.code) == (403, "out_of_scope")
    assert intake.published.events() == [] and intake.ledger.lookup("uuid:hg") is None
    (letter,) = intake.dead_letters()
    assert (letter.instance_id, letter.submitter) == ("uuid:hg", "doi-lc-01")

    assert intake.service.submit(visit_log("uuid:lc", library=LAI_CHAU), lai_chau_team).kind == "new"


def test_an_edit_cannot_take_over_another_provinces_report(intake: Intake):
    intake.service.submit(visit_log("uuid:hg", library=HG))
    lai_chau_team = Account("doi-lc-01", provinces=frozenset({"legacy:12"}))
    with pytest.raises(OutOfScope):  # its own library now, but the version it replaces is Hà Giang's
        intake.service.submit(visit_log("uuid:lc", library=LAI_CHAU, deprecated_id="uuid:hg"), lai_chau_team)
    assert intake.visits_published() == {"uuid:hg": 10}


def test_a_retraction_withdraws_the_chain_once(intake: Intake):
    central = Account("central-pull", provinces=frozenset({"*"}))
    intake.service.submit(visit_log("uuid:a"))
    assert intake.service.retract("uuid:a", central, "rejected", "review")
    assert not intake.service.retract("uuid:a", central, "rejected", "again")
    retractions = [m for m in intake.published.published if isinstance(m, SubmissionRetracted)]
    assert [(r.root_id, r.payload.reason_code) for r in retractions] == [("uuid:a", "rejected")]


def test_a_reinstatement_counts_the_current_version_again_and_the_chain_can_be_withdrawn_again(intake: Intake):
    central = Account("central-pull", provinces=frozenset({"*"}))
    intake.service.submit(visit_log("uuid:r1", 10))
    intake.service.submit(visit_log("uuid:r2", 14, deprecated_id="uuid:r1"))
    assert not intake.service.reinstate("uuid:r1", central, "k0")  # live: nothing to do
    intake.clock[0] = NOW + timedelta(minutes=1)
    assert intake.service.retract("uuid:r2", central, "rejected", "review", key="k1")
    intake.clock[0] = NOW + timedelta(minutes=2)
    assert intake.service.reinstate("uuid:r1", central, "k2")  # any version of the chain addresses it
    assert not intake.service.reinstate("uuid:r1", central, "k2")  # once
    assert not any(e.retracted for e in intake.ledger.chain("uuid:r1"))
    assert intake.service.submit(visit_log("uuid:r1", 10)).kind == "duplicate"  # the phone's XML: still known
    intake.clock[0] = NOW + timedelta(minutes=3)
    assert intake.service.retract("uuid:r2", central, "rejected", "review", key="k3")  # withdrawn again

    events = [(e.event_id, e.deprecated_id, e.submitted_at) for e in intake.published.events()]
    assert [e[0] for e in events] == ["uuid:r1", "uuid:r2", "uuid:r2#retracted@k1", "uuid:r1#reinstated@k2",
                                      "uuid:r2#retracted@k3"]
    # The current version (the edit) again, accepted after the retraction it undoes, replacing the edit.
    assert events[3][1:] == ("uuid:r2", NOW + timedelta(minutes=2))
    [again] = [e for e in intake.published.events() if e.event_id == "uuid:r1#reinstated@k2"]
    assert again.payload.visits_total == 14 and again.root_id == "uuid:r1"  # type: ignore[attr-defined]
    assert again.content_hash == intake.ledger.lookup("uuid:r2").content_hash  # type: ignore[union-attr]


def test_a_reinstatement_outside_the_accounts_provinces_is_refused(intake: Intake):
    intake.service.submit(visit_log("uuid:far", library=LAI_CHAU))
    assert intake.service.retract("uuid:far", Account("central-pull", provinces=frozenset({"*"})), "rejected", "r")
    with pytest.raises(OutOfScope):
        intake.service.reinstate("uuid:far", Account("central-hg", provinces=frozenset({"legacy:02"})), "k")
    assert intake.ledger.lookup("uuid:far").retracted  # type: ignore[union-attr]
    assert intake.dead_letters()[-1].instance_id == "uuid:far#reinstated@k"


# -- the acceptance time of a pulled submission ----------------------------------------------------


@pytest.mark.parametrize(("received", "stamped"), [
    (NOW - timedelta(days=1), NOW - timedelta(days=1)),  # when Central received it: believed
    (None, NOW),  # sent here directly: ours
    (NOW + timedelta(minutes=2), NOW),  # a little ahead: clocks differ, clamped to ours
    (NOW + timedelta(days=1), NOW),  # in the future: not believed
    (datetime.combine(DAY, datetime.min.time(), tzinfo=TIMEZONE) - timedelta(seconds=1), NOW),  # before the day
    (datetime(1970, 1, 1, tzinfo=TIMEZONE), NOW),  # absurdly old
    (datetime(2026, 3, 9, 8, 0), NOW),  # no time zone: cannot be placed
])
def test_a_received_time_is_the_acceptance_time_only_if_it_can_be_true(intake: Intake, received, stamped):
    accepted = intake.service.submit(visit_log("uuid:t"), source="central", received_at=received)
    assert accepted.kind == "new"  # an unbelievable time never loses the submission
    [event] = intake.published.events()
    assert event.submitted_at == stamped
