"""The libraries the intake knows (``services/domain/directory.py``) on the in-memory ports: a
registration accepted by one intake replica is known to another sharing its ledger at the next
report that names it; a withdrawn registration is forgotten; a registration outside the account's
provinces is refused. The HTTP path is ``tests/test_registry_form.py``'s."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from services.config import TIMEZONE
from services.domain.directory import LibraryDirectory
from services.domain.errors import SubmissionRejected
from services.domain.forms.library_registry import new_library_id
from services.domain.reference import default_reference
from services.domain.registry import registry_at, registry_change
from services.intake.accounts import Account
from services.intake.blobs import FileBlobStore
from services.intake.refusals import OutOfScope
from services.intake.registry import ledger_registry_changes
from services.intake.service import IntakeService
from tests.conftest import visit_answers
from tests.fakes import InMemoryLedger, ListPublisher

pytestmark = pytest.mark.unit

REFERENCE = default_reference()
VERSIONS = {"visit_log": "2026010101", "library_registry": "2026010101"}
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=TIMEZONE)
DAY = NOW.date() - timedelta(days=2)
REGISTRATION = "uuid:5eed0001-0000-4000-8000-000000000001"
NEW_ID = new_library_id(REGISTRATION) or ""
HG = next(lib for lib in REFERENCE.libraries.values() if lib.area("legacy").province_code == "02")


def _xml(form_id: str, answers: dict[str, str], instance_id: str) -> bytes:
    body = "".join(f"<{name}>{value}</{name}>" for name, value in answers.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><data id="{form_id}" version="{VERSIONS[form_id]}">'
            f"{body}<meta><instanceID>{instance_id}</instanceID></meta></data>").encode()


def registration(instance_id: str = REGISTRATION, name: str = "Thư viện xã Mới") -> bytes:
    commune = next(c for c in REFERENCE.communes_in("2025", "08") if REFERENCE.in_programme(c.code))
    legacy = REFERENCE.legacy_communes_of(commune.code)[0]
    return _xml("library_registry", {
        "action": "register", "province": "08", "commune_2025": commune.code, "commune_legacy": legacy.code,
        "name_vi": name, "library_type": "other", "opened_on": "2025-09-01", "location": "21.8 105.2",
        "effective_date": DAY.isoformat()}, instance_id)


def visit_for_new(instance_id: str) -> bytes:
    return _xml("visit_log", visit_answers(replace(HG, library_id=NEW_ID), DAY, 9), instance_id)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replica(ledger: InMemoryLedger, clock: Clock, max_age_s: float = 60.0) -> tuple[IntakeService, ListPublisher]:
    publisher = ListPublisher()
    directory = LibraryDirectory(REFERENCE, lambda: ledger_registry_changes(ledger), max_age_s, clock)
    return IntakeService(REFERENCE, ledger, publisher, known_forms=VERSIONS, clock=lambda: NOW,
                         directory=directory), publisher


@pytest.fixture
def ledger(tmp_path: Path) -> InMemoryLedger:
    return InMemoryLedger(FileBlobStore(tmp_path / "blobs"))


def test_a_library_registered_on_one_replica_is_known_to_another_at_the_next_report(ledger: InMemoryLedger):
    clock = Clock()
    first, _ = replica(ledger, clock)
    second, published = replica(ledger, clock)
    assert NEW_ID not in second.directory.reference().libraries  # read once, kept for 60 s

    assert first.submit(registration()).kind == "new"
    clock.now += 1  # well within the second replica's 60 s: only the unknown id makes it read again

    assert second.submit(visit_for_new("uuid:visit-1")).kind == "new"
    [event] = published.events()
    assert event.library_id == NEW_ID
    assert [a.province_code for a in event.areas] == [REFERENCE.legacy_communes_of(event.areas[1].commune_code)[0]
                                                      .province_code, "08"]
    assert second.directory.reference().libraries[NEW_ID].name_vi == "Thư viện xã Mới"


def test_an_id_still_unknown_after_a_fresh_read_is_refused_with_what_to_do(ledger: InMemoryLedger):
    service, published = replica(ledger, Clock())
    with pytest.raises(SubmissionRejected) as refused:
        service.submit(visit_for_new("uuid:visit-early"))
    assert refused.value.code == "library_unknown" and "Get Blank Form" in refused.value.reasons[0].message_en
    assert published.published == []


def test_concurrent_askers_share_one_read_and_the_view_is_kept_while_unchanged(ledger: InMemoryLedger):
    clock, reads = Clock(), []

    def read() -> list:
        reads.append(clock.now)
        return ledger_registry_changes(ledger)

    directory = LibraryDirectory(REFERENCE, read, 60.0, clock)
    view = directory.reference()
    asked_at = clock.now
    assert directory.refresh(asked_at) is True and reads == [0.0]  # a read since the ask answers for it
    clock.now = 30
    assert directory.reference() is view and reads == [0.0]
    clock.now = 61
    assert directory.reference() is view and reads == [0.0, 61]  # read again, nothing changed: same object
    directory.changed()
    assert directory.reference() is not view and len(reads) == 3


def test_a_withdrawn_registration_is_forgotten(ledger: InMemoryLedger):
    service, _ = replica(ledger, Clock())
    service.submit(registration())
    assert NEW_ID in service.directory.reference().libraries

    assert service.retract(REGISTRATION, Account("central", provinces=frozenset({"*"})), "central_rejected", "rejected")

    assert NEW_ID not in service.directory.reference().libraries
    with pytest.raises(SubmissionRejected):
        service.submit(visit_for_new("uuid:visit-after"))


def test_a_registration_outside_the_accounts_provinces_is_refused(ledger: InMemoryLedger):
    service, published = replica(ledger, Clock())
    lai_chau_team = Account("lai-chau", provinces=frozenset({"2025:12", "legacy:12"}))
    with pytest.raises(OutOfScope):
        service.submit(registration(), lai_chau_team)
    assert published.events() == [] and NEW_ID not in service.directory.reference().libraries


def test_the_fold_ignores_a_registration_of_a_taken_id():
    """Both sides' one fold: a register chain naming a library already there never replaces it."""
    taken = next(iter(REFERENCE.libraries.values()))
    crafted = registry_change(root_id="not-a-uuid", library_id=taken.library_id, occurred_on=date(2026, 1, 1),
                              payload={"action": "register", "name_vi": "Giả mạo"}, areas=taken.areas, order=0)
    after = registry_at(REFERENCE.libraries.values(), [crafted], date(2026, 12, 31))
    assert after[taken.library_id].name_vi == taken.name_vi
