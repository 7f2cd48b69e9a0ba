"""Two intake replicas sharing one PostgreSQL ledger (``LEDGER_DSN``): each an ``IntakeService``
with its own pool, staging folder and publisher (``ListPublisher``), as two processes behind a
proxy would be. What one accepted, held, parked or counted the other must see, and of racing
sends exactly one may publish. A real server (``tests/postgres.py``), no mocks."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import embedded_stack
from services.config import Settings
from services.domain.errors import Refused
from services.domain.reference import Library
from services.intake.accounts import Account, Accounts, ha1
from services.intake.blobs import IncomingFile
from services.intake.digest import DigestAuthenticator
from services.intake.ledger import Ledger, SqliteLedger
from services.intake.postgres.database import LedgerDatabase
from services.intake.postgres.ledger import PostgresLedger
from services.intake.postgres.nonce_counts import PostgresNonceCounts
from services.intake.refusals import LedgerUnavailable, SubmissionConflict
from services.intake.service import IntakeService
from services.tools.submissions import fill_instance, multipart
from tests import postgres
from tests.conftest import OPENROSA, digest_header, visit_answers
from tests.fakes import ListPublisher
from tests.races import race
from tests.test_intake_service import NOW, REFERENCE, VERSION, visit_log

MAX_BYTES = 10 * 1024 * 1024


@dataclass
class Replica:
    service: IntakeService
    ledger: Ledger
    published: ListPublisher
    database: LedgerDatabase | None = None

    def events(self) -> list[str]:
        return [e.event_id for e in self.published.events()]


def replica(ledger: Ledger, database: LedgerDatabase | None = None) -> Replica:
    publisher = ListPublisher()
    service = IntakeService(REFERENCE, ledger, publisher, known_forms={"visit_log": VERSION}, clock=lambda: NOW,
                            held_timeout=timedelta(days=7))
    return Replica(service, ledger, publisher, database)


def postgres_replica(dsn: str, staging: Path) -> Replica:
    database = LedgerDatabase(dsn, 8).open()
    return replica(PostgresLedger(database, staging, MAX_BYTES), database)


@pytest.fixture
def replicas(ledger_dsn: str, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    a, b = postgres_replica(ledger_dsn, tmp_path / "a"), postgres_replica(ledger_dsn, tmp_path / "b")
    try:
        yield a, b
    finally:
        a.ledger.close()
        b.ledger.close()


def kinds(outcomes: list[object]) -> list[str]:
    return sorted(type(o).__name__ if isinstance(o, Exception) else o.kind for o in outcomes)  # type: ignore[attr-defined]


# -- racing one instanceID -------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["sqlite", "postgres"])
def test_threads_racing_one_instance_id_with_different_answers_one_wins(adapter: str, tmp_path: Path,
                                                                        request: pytest.FixtureRequest):
    if adapter == "sqlite":
        one = replica(SqliteLedger(tmp_path / "state"))
    else:
        one = postgres_replica(request.getfixturevalue("ledger_dsn"), tmp_path / "staging")
    try:
        outcomes = race([lambda n=n: one.service.submit(visit_log("uuid:race", total=10 + n)) for n in range(8)])
        assert kinds(outcomes) == ["SubmissionConflict"] * 7 + ["new"]
        assert one.events() == ["uuid:race"]
    finally:
        one.ledger.close()


def test_replicas_racing_one_instance_id_with_different_answers_one_publishes(replicas: tuple[Replica, Replica]):
    a, b = replicas
    sends = [lambda n=n, r=r: r.service.submit(visit_log("uuid:race", total=10 + n))
             for n, r in enumerate([a, b] * 4)]
    outcomes = race(sends)
    assert kinds(outcomes) == ["SubmissionConflict"] * 7 + ["new"]
    assert sorted(a.events() + b.events()) == ["uuid:race"], "exactly one event, from the winner"
    winner = next(o for o in outcomes if not isinstance(o, Exception))
    published = (a.published.events() + b.published.events())[0]
    entry = a.ledger.lookup("uuid:race")
    assert entry is not None and entry.content_hash == published.content_hash and winner is not None


def test_replicas_racing_an_identical_send_publish_it_once(replicas: tuple[Replica, Replica]):
    a, b = replicas
    outcomes = race([lambda r=r: r.service.submit(visit_log("uuid:same")) for r in [a, b] * 4])
    assert kinds(outcomes) == ["duplicate"] * 7 + ["new"]
    assert sorted(a.events() + b.events()) == ["uuid:same"]


def test_an_identical_resend_to_the_other_replica_is_a_duplicate(replicas: tuple[Replica, Replica]):
    a, b = replicas
    assert a.service.submit(visit_log("uuid:a")).kind == "new"
    assert b.service.submit(visit_log("uuid:a")).kind == "duplicate"
    with pytest.raises(SubmissionConflict):
        b.service.submit(visit_log("uuid:a", total=11))
    assert (a.events(), b.published.published) == (["uuid:a"], [])
    entry = b.ledger.lookup("uuid:a")
    assert entry is not None and b.ledger.blobs.read(entry.raw_sha256) == visit_log("uuid:a"), "raw XML shared"


# -- what one replica keeps, the other continues -----------------------------------------------------


def attachment(r: Replica, name: str, data: bytes) -> IncomingFile:
    return IncomingFile(name, "image/jpeg", r.ledger.blobs.stage_bytes(data))


def test_a_split_upload_whose_parts_reach_different_replicas_is_one_event_with_every_file(
        replicas: tuple[Replica, Replica]):
    a, b = replicas
    xml = visit_log("uuid:split")
    assert a.service.submit(xml, attachments=[attachment(a, "a.jpg", b"photo a")], incomplete=True).kind == "partial"
    assert b.service.submit(xml, attachments=[attachment(b, "b.jpg", b"photo b")], incomplete=True).kind == "partial"
    assert a.service.submit(xml, attachments=[attachment(a, "c.jpg", b"photo c")]).kind == "new"
    (event,) = a.published.events()
    assert [f.name for f in event.attachments] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [b.ledger.blobs.read(f.sha256) for f in event.attachments] == [b"photo a", b"photo b", b"photo c"]
    assert b.ledger.partial_attachments("uuid:split") is None and b.published.published == []


def test_an_edit_held_on_one_replica_is_released_when_its_original_reaches_the_other(
        replicas: tuple[Replica, Replica]):
    a, b = replicas
    assert a.service.submit(visit_log("uuid:edit", total=12, deprecated_id="uuid:orig")).kind == "held"
    assert b.service.submit(visit_log("uuid:edit", total=12, deprecated_id="uuid:orig")).kind == "held", \
        "the other replica knows it is held"
    assert b.service.submit(visit_log("uuid:orig", total=10)).kind == "new"
    assert b.events() == ["uuid:orig", "uuid:edit"] and a.published.published == []
    edit = b.published.events()[1]
    assert (edit.root_id, edit.deprecated_id, edit.submitter) == ("uuid:orig", "uuid:orig", "anonymous")
    assert a.ledger.held() == []
    assert a.service.submit(visit_log("uuid:edit", total=12, deprecated_id="uuid:orig")).kind == "duplicate"


def test_a_digest_header_replayed_to_the_other_replica_is_refused(ledger_dsn: str):
    accounts = Accounts("thuvien", {"doi-hg-01": Account("doi-hg-01", ha1("doi-hg-01", "thuvien", "pw"))})
    databases = [LedgerDatabase(ledger_dsn, 2).open() for _ in range(2)]
    try:
        a, b = (DigestAuthenticator(accounts, b"one secret for every replica", counts=PostgresNonceCounts(db, 300))
                for db in databases)
        challenge = a.challenge()

        def send(to: DigestAuthenticator, nc: int) -> tuple[bool, bool]:
            result = to.authenticate("POST", digest_header("doi-hg-01", "pw", "POST", "/submission", challenge, nc),
                                     https=False, uri="/submission")
            return result.account is not None, result.stale

        assert send(a, 1) == (True, False)
        assert send(b, 1) == (False, True), "the count was used, on another replica: a replay"
        assert send(b, 2) == (True, False), "the client's next count, on either replica"
        assert send(a, 2) == (False, True)
        assert send(a, 1) == (False, True), "an older count"
    finally:
        for db in databases:
            db.close()


# -- the server going away ---------------------------------------------------------------------------


def test_a_ledger_server_that_is_down_is_a_503_and_what_was_accepted_survives(tmp_path: Path):
    with postgres.PostgresCluster() as cluster:
        dsn = postgres.create_database(cluster.dsn())
        a = postgres_replica(dsn, tmp_path / "a")
        try:
            assert a.service.submit(visit_log("uuid:before")).kind == "new"
            cluster.stop()
            with pytest.raises(LedgerUnavailable) as refused:
                a.service.submit(visit_log("uuid:during"))
            assert isinstance(refused.value, Refused)
            assert (refused.value.status, refused.value.retry_after) == (503, 30)
            cluster.start()
            assert a.service.submit(visit_log("uuid:during")).kind == "new", "the phone's resend is a first one"
            assert a.service.submit(visit_log("uuid:before")).kind == "duplicate"
            assert a.events() == ["uuid:before", "uuid:during"]
        finally:
            a.ledger.close()


def test_a_ledger_dsn_password_reaches_neither_the_refusal_nor_the_logs(caplog: pytest.LogCaptureFixture):
    # The cluster above trusts local connections (no password to leak): here the DSN has one, and
    # nothing listens on its port, as when the server is down at start-up.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        secret = "s3cret-Ledger-pw"
        with caplog.at_level(logging.DEBUG), pytest.raises(LedgerUnavailable) as refused:
            LedgerDatabase(f"postgresql://thuvien:{secret}@127.0.0.1:{port}/thuvien", 2).open(wait_s=2)
    assert (refused.value.status, refused.value.retry_after) == (503, 30)
    shown = str(refused.value) + "".join(traceback.format_exception(refused.value)) + caplog.text
    assert secret not in shown


# -- wired by LEDGER_DSN -----------------------------------------------------------------------------


def test_the_stack_keeps_its_ledger_in_postgres_when_ledger_dsn_is_set(settings: Settings, ledger_dsn: str,
                                                                       library: Library):
    stack = embedded_stack(settings.model_copy(update={"ledger_dsn": ledger_dsn}))
    try:
        assert isinstance(stack.ledger, PostgresLedger)
        client = TestClient(stack.app, headers=OPENROSA)
        xform = client.get("/forms/visit_log.xml").content
        xml = fill_instance(xform, visit_answers(library, NOW.date() - timedelta(days=2)), "uuid:wired")
        assert client.post("/submission", files=multipart(xml)).status_code == 201
    finally:
        stack.close()
    other = postgres_replica(ledger_dsn, settings.state_dir / "other")
    try:
        entry = other.ledger.lookup("uuid:wired")
        assert entry is not None and other.ledger.blobs.read(entry.raw_sha256) == xml
    finally:
        other.ledger.close()
