"""The ``Ledger`` and ``BlobStore`` ports' contract, held by both adapters: SQLite and files in
``tmp_path`` (embedded), and PostgreSQL (shared by replicas; a real server, ``tests/postgres.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from services.config import TIMEZONE
from services.intake.ledger import Ledger, LedgerEntry, SqliteLedger
from services.intake.postgres.database import MIGRATIONS_DIR, LedgerDatabase
from services.intake.postgres.ledger import PostgresLedger
from services.intake.refusals import UploadRefused
from services.store.migrations import load_migrations

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=TIMEZONE)
MAX_BYTES = 1024 * 1024


def postgres_ledger(dsn: str, staging: Path, pool: int = 8) -> PostgresLedger:
    return PostgresLedger(LedgerDatabase(dsn, pool).open(), staging, MAX_BYTES)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        made: Ledger = SqliteLedger(tmp_path / "state")
    else:
        made = postgres_ledger(request.getfixturevalue("ledger_dsn"), tmp_path / "staging")
    try:
        yield made
    finally:
        made.close()


def entry(instance_id: str, root_id: str | None = None, content_hash: str = "h1") -> LedgerEntry:
    return LedgerEntry(instance_id, root_id or instance_id, content_hash, "visit_log", "ab" * 32, '{"x": 1}')


def test_an_entry_is_recorded_once_and_found_by_instance_id(ledger: Ledger):
    assert ledger.lookup("uuid:a") is None
    ledger.record(entry("uuid:a"), T0)
    ledger.record(entry("uuid:a", content_hash="other"), T0 + timedelta(seconds=1))  # a second is ignored
    assert ledger.lookup("uuid:a") == entry("uuid:a")


def test_a_chain_lists_its_versions_in_the_order_accepted(ledger: Ledger):
    ledger.record(entry("uuid:o"), T0)
    ledger.record(entry("uuid:e2", "uuid:o"), T0 + timedelta(minutes=2))
    ledger.record(entry("uuid:e1", "uuid:o"), T0 + timedelta(minutes=1))
    ledger.record(entry("uuid:other"), T0)
    assert [e.instance_id for e in ledger.chain("uuid:o")] == ["uuid:o", "uuid:e1", "uuid:e2"]


def test_a_forms_entries_are_listed_in_the_order_accepted(ledger: Ledger):
    """What every intake replica reads to learn of libraries registered on any of them."""
    def registry(instance_id: str, root_id: str | None = None) -> LedgerEntry:
        return LedgerEntry(instance_id, root_id or instance_id, "h", "library_registry", "ab" * 32, "{}")

    ledger.record(registry("uuid:r1"), T0)
    ledger.record(entry("uuid:visit"), T0)
    ledger.record(registry("uuid:r1-edit", "uuid:r1"), T0 + timedelta(minutes=2))
    ledger.record(registry("uuid:r2"), T0 + timedelta(minutes=1))
    assert [e.instance_id for e in ledger.of_form("library_registry")] == ["uuid:r1", "uuid:r2", "uuid:r1-edit"]
    assert ledger.of_form("donation") == []


def test_a_retraction_is_marked(ledger: Ledger):
    ledger.record(entry("uuid:a"), T0)
    ledger.mark_retracted("uuid:a")
    found = ledger.lookup("uuid:a")
    assert found is not None and found.retracted
    ledger.mark_retracted("uuid:a", False)  # reinstated: live again
    found = ledger.lookup("uuid:a")
    assert found is not None and not found.retracted


def test_held_edits_are_kept_found_by_each_filter_and_released(ledger: Ledger):
    for i, (edit, original) in enumerate([("uuid:e1", "uuid:o1"), ("uuid:e2", "uuid:o2"), ("uuid:e3", "uuid:o1")]):
        ledger.hold(edit, original, f"h{i}", "cd" * 32, "doi-hg-01", '["legacy:02"]', "openrosa", "[]",
                    T0 + timedelta(hours=i))
    ledger.hold("uuid:e1", "uuid:o9", "again", "cd" * 32, "x", "[]", "openrosa", "[]", T0)  # ignored
    assert [h["instance_id"] for h in ledger.held()] == ["uuid:e1", "uuid:e2", "uuid:e3"]
    assert [h["instance_id"] for h in ledger.held(waiting_for="uuid:o1")] == ["uuid:e1", "uuid:e3"]
    assert [h["instance_id"] for h in ledger.held(held_before=T0 + timedelta(minutes=90))] == ["uuid:e1", "uuid:e2"]
    (row,) = ledger.held(instance_id="uuid:e1")
    assert {k: row[k] for k in ("deprecated_id", "content_hash", "username", "provinces", "source", "attachments")} \
        == {"deprecated_id": "uuid:o1", "content_hash": "h0", "username": "doi-hg-01", "provinces": '["legacy:02"]',
            "source": "openrosa", "attachments": "[]"}
    assert datetime.fromisoformat(row["held_at"]) == T0
    ledger.release("uuid:e1")
    assert [h["instance_id"] for h in ledger.held()] == ["uuid:e2", "uuid:e3"]


def test_split_upload_parts_are_listed_updated_and_forgotten_with_their_files(ledger: Ledger):
    blobs = ledger.blobs
    assert ledger.partial_attachments("uuid:s") is None
    staged = blobs.stage_bytes(b"photo a")
    blobs.park("uuid:s", staged)
    ledger.keep_partial("uuid:s", "h", '[{"name": "a.jpg"}]', T0)
    ledger.keep_partial("uuid:s", "h", '[{"name": "a.jpg"}, {"name": "b.jpg"}]', T0 + timedelta(hours=1))
    ledger.keep_partial("uuid:t", "h", "[]", T0)
    assert ledger.partial_attachments("uuid:s") == '[{"name": "a.jpg"}, {"name": "b.jpg"}]'
    assert ledger.partials_before(T0 + timedelta(minutes=30)) == ["uuid:t"]
    ledger.forget_partial("uuid:s")
    assert ledger.partial_attachments("uuid:s") is None
    assert not blobs.adopt_parked("uuid:s", staged.sha256), "its parked file went with it"


def test_blobs_are_kept_by_content_once(ledger: Ledger):
    blobs = ledger.blobs
    digest = blobs.keep(b"<data/>")
    assert blobs.keep(b"<data/>") == digest and blobs.has(digest)
    assert blobs.read(digest) == b"<data/>"
    staged = blobs.stage_bytes(b"\xff\xd8 a photo")
    assert blobs.commit(staged) == staged.sha256
    staged.discard()  # as the service does after a request: a no-op for what was taken
    assert blobs.read(staged.sha256) == b"\xff\xd8 a photo"
    assert not blobs.has("00" * 32)


def test_a_parked_file_is_adopted_into_the_store_or_dropped(ledger: Ledger):
    blobs = ledger.blobs
    kept, dropped = blobs.stage_bytes(b"part one"), blobs.stage_bytes(b"part two")
    blobs.park("uuid:s", kept)
    blobs.park("uuid:u", dropped)
    assert blobs.adopt_parked("uuid:s", kept.sha256)
    assert blobs.read(kept.sha256) == b"part one"
    assert blobs.adopt_parked("uuid:s", kept.sha256), "adopted before: it is in the store"
    blobs.drop_parked("uuid:u")
    assert not blobs.adopt_parked("uuid:u", dropped.sha256) and not blobs.has(dropped.sha256)


def test_exclusive_admits_one_holder_of_an_instance_id_at_a_time(ledger: Ledger):
    inside, overlaps, lock = [0], [], threading.Lock()

    def hold(key: str) -> None:
        with ledger.exclusive(key, None):
            with lock:
                inside[0] += 1
                overlaps.append(inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=hold, args=("uuid:same",)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(overlaps) == 1


def test_postgres_blobs_over_the_limit_are_refused_before_they_are_sent(ledger_dsn: str, tmp_path: Path):
    ledger = PostgresLedger(LedgerDatabase(ledger_dsn, 2).open(), tmp_path, max_blob_bytes=8)
    try:
        with pytest.raises(UploadRefused) as refused:
            ledger.blobs.keep(b"123456789")
        assert refused.value.status == 413
        staged = ledger.blobs.stage_bytes(b"123456789")
        with pytest.raises(UploadRefused):
            ledger.blobs.commit(staged)
        staged.discard()
        assert not ledger.blobs.has(staged.sha256)
    finally:
        ledger.close()


def test_postgres_exclusive_is_one_transaction_rolled_back_on_error(ledger_dsn: str, tmp_path: Path):
    ledger = postgres_ledger(ledger_dsn, tmp_path)
    try:
        with pytest.raises(RuntimeError), ledger.exclusive("uuid:a"):
            ledger.record(entry("uuid:a"), T0)
            digest = ledger.blobs.keep(b"raw")
            assert ledger.lookup("uuid:a") is not None, "seen inside its own transaction"
            raise RuntimeError("publish failed")
        assert ledger.lookup("uuid:a") is None and not ledger.blobs.has(digest)
    finally:
        ledger.close()


def test_postgres_migrations_run_once_when_replicas_start_together(ledger_dsn: str):
    results: list[list[int]] = []

    def start() -> None:
        database = LedgerDatabase(ledger_dsn, 2)
        database.open()
        results.append(database.migrate())  # again: nothing left to do
        database.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[], [], [], []]
    database = LedgerDatabase(ledger_dsn, 1).open()
    with database.connection() as db:
        applied = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert applied == [m.version for m in load_migrations(MIGRATIONS_DIR)] == [1, 2, 3, 4]
    database.close()
