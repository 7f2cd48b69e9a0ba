"""Disk full where the intake keeps what phones send: 507 to Collect, nothing half-written.

The blob store (``STATE_DIR/raw``: raw XML and attachments, content-addressed) is put on a
real, tiny tmpfs (``tests/disk.py``) and filled; the kernel answers ENOSPC. The ledger and the
embedded log stay on the test's ordinary disk, so what is asserted about them (nothing recorded,
nothing published) is the intake's doing, not a side effect of SQLite failing too.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pyodk.client import Client

from services.bootstrap import EmbeddedStack, embedded_stack
from services.clock import today_local
from services.config import Settings
from services.domain.reference import Library, default_reference
from services.intake.accounts import Account
from services.intake.central import CentralPoller
from services.tools.load_samples import last_month_end
from services.tools.samples import all_sample_reports
from services.tools.submissions import fill_instance
from tests.conftest import OPENROSA, visit_answers
from tests.disk import fill, small_disk
from tests.fake_central import Attachment, FakeCentral, served
from tests.test_bad_input import _rejections

DISK_BYTES = 4 * 1024 * 1024
PHOTO = b"\xff\xd8\xff\xe0" + os.urandom(256 * 1024)  # a photo of 256 KiB (random: no filesystem shrinks it)
SMALL_PHOTO = b"\xff\xd8\xff\xe0" + os.urandom(8 * 1024)


@pytest.fixture
def blobs(settings: Settings) -> Iterator[Path]:
    """The blob directory of ``settings`` on its own tmpfs of a few MB."""
    with small_disk(settings.state_dir / "raw", DISK_BYTES) as path:
        yield path


@pytest.fixture
def full_stack(settings: Settings, blobs: Path) -> Iterator[EmbeddedStack]:
    built = embedded_stack(settings)  # started after the mount, closed before the unmount
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def client(full_stack: EmbeddedStack) -> TestClient:
    return TestClient(full_stack.app, headers={**OPENROSA, "X-API-Key": full_stack.demo_api_key or ""})


def mobile_answers(photo: str) -> dict[str, str]:
    report = next(r for form_id, r in all_sample_reports(default_reference(), last_month_end(today_local()))
                  if form_id == "mobile_session")
    return report.answers | {"photo": photo}


def post(client: TestClient, xml: bytes, *attachments: tuple[str, bytes]):
    return client.post("/submission", files=[("xml_submission_file", ("submission.xml", xml, "text/xml")),
                                             *((name, (name, data, "image/jpeg")) for name, data in attachments)])


def blob_path(blobs: Path, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return blobs / digest[:2] / digest


def leftovers(blobs: Path) -> list[Path]:
    """Half-written files: a .tmp, or a blob whose content does not hash to its name."""
    found = []
    for path in blobs.rglob("*"):
        if path.is_dir() or path.name == "filler.bin":
            continue
        if path.suffix == ".tmp" or hashlib.sha256(path.read_bytes()).hexdigest() != path.name:
            found.append(path)
    return found


def bus_log(settings: Settings) -> list[tuple[str, str]]:
    """(topic, event or instance id) of everything on the embedded log, in order."""
    db = sqlite3.connect(f"file:{settings.state_dir / 'bus.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT topic, value FROM log ORDER BY position").fetchall()
    finally:
        db.close()
    return [(topic, (m := json.loads(value)).get("event_id") or m.get("instance_id", "")) for topic, value in rows]


def refused_507(response) -> None:
    assert response.status_code == 507, response.text
    assert response.headers["X-OpenRosa-Version"] == "1.0"
    assert "<OpenRosaResponse" in response.text and 'nature="submit_error"' in response.text
    assert "hết dung lượng" in response.text and "out of storage space" in response.text


def test_an_attachment_on_a_full_disk_gets_507_and_leaves_nothing_then_goes_in_once(
        client: TestClient, full_stack: EmbeddedStack, settings: Settings, blobs: Path):
    xform = client.get("/forms/mobile_session.xml").content
    earlier = fill_instance(xform, mobile_answers("before.jpg"), "uuid:disk-before")
    assert post(client, earlier, ("before.jpg", SMALL_PHOTO)).status_code == 201
    logged = bus_log(settings)
    assert [eid for _, eid in logged] == ["uuid:disk-before"]

    fill(blobs, leave_bytes=64 * 1024)  # room for the XML, not for the photo
    xml = fill_instance(xform, mobile_answers("photo.jpg"), "uuid:disk-photo")
    before = _rejections(client).get(("507", "storage_full"), 0)
    refused_507(post(client, xml, ("photo.jpg", PHOTO)))

    assert _rejections(client).get(("507", "storage_full"), 0) == before + 1
    assert leftovers(blobs) == []
    assert not blob_path(blobs, PHOTO).exists() and not blob_path(blobs, xml).exists()
    assert full_stack.ledger.lookup("uuid:disk-photo") is None
    assert full_stack.ledger.partial_attachments("uuid:disk-photo") is None
    assert bus_log(settings) == logged  # not even a rejection record
    assert [e["event_id"] for e in full_stack.store.events()] == ["uuid:disk-before"]

    (blobs / "filler.bin").unlink()  # space is freed; Collect sends the same submission again
    again = post(client, xml, ("photo.jpg", PHOTO))
    assert again.status_code == 201 and "Submission received" in again.text
    assert post(client, xml, ("photo.jpg", PHOTO)).status_code == 201  # and once more: a duplicate

    assert [eid for _, eid in bus_log(settings)] == ["uuid:disk-before", "uuid:disk-photo"]
    [event] = full_stack.store.events("mobile_session_held")[1:]
    assert event["event_id"] == "uuid:disk-photo"
    [photo] = json.loads(full_stack.ledger.lookup("uuid:disk-photo").event_json)["attachments"]
    assert (photo["name"], photo["sha256"], photo["size"]) == ("photo.jpg", hashlib.sha256(PHOTO).hexdigest(),
                                                                len(PHOTO))
    assert full_stack.ledger.blobs.read(photo["sha256"]) == PHOTO
    # what was accepted before the disk filled is as it was
    entry = full_stack.ledger.lookup("uuid:disk-before")
    assert entry is not None and full_stack.ledger.blobs.read(entry.raw_sha256) == earlier
    assert full_stack.ledger.blobs.read(hashlib.sha256(SMALL_PHOTO).hexdigest()) == SMALL_PHOTO
    assert leftovers(blobs) == []


def test_raw_xml_on_a_completely_full_disk_gets_507_then_goes_in_once(
        client: TestClient, full_stack: EmbeddedStack, settings: Settings, blobs: Path, library: Library):
    xform = client.get("/forms/visit_log.xml").content
    day = today_local() - timedelta(days=1)
    earlier = fill_instance(xform, visit_answers(library, day, total=30), "uuid:disk-xml-before")
    assert post(client, earlier).status_code == 201

    fill(blobs, leave_bytes=0)
    xml = fill_instance(xform, visit_answers(library, day - timedelta(days=1), total=12), "uuid:disk-xml")
    before = _rejections(client).get(("507", "storage_full"), 0)  # the counters are the process's
    refused_507(post(client, xml))
    assert _rejections(client).get(("507", "storage_full"), 0) == before + 1
    assert leftovers(blobs) == [] and not blob_path(blobs, xml).exists()
    assert full_stack.ledger.lookup("uuid:disk-xml") is None
    assert [eid for _, eid in bus_log(settings)] == ["uuid:disk-xml-before"]
    assert full_stack.store.select("SELECT count() AS n FROM rejections")[0]["n"] == 0

    (blobs / "filler.bin").unlink()
    assert post(client, xml).status_code == 201
    assert [eid for _, eid in bus_log(settings)] == ["uuid:disk-xml-before", "uuid:disk-xml"]
    area = library.area("legacy")
    series = client.get("/v1/visits", params={
        "scheme": "legacy", "province": area.province_code, "granularity": "day",
        "start": (day - timedelta(days=1)).isoformat(), "end": day.isoformat()}).json()["series"]
    assert [(d["period"], d["visits_total"], d["reports"]) for d in series] == [
        ((day - timedelta(days=1)).isoformat(), 12, 1), (day.isoformat(), 30, 1)]
    assert full_stack.ledger.blobs.read(full_stack.ledger.lookup("uuid:disk-xml-before").raw_sha256) == earlier


@contextmanager
def fake_central(form_version: str) -> Iterator[FakeCentral]:
    """The fake ODK Central of ``tests/fake_central.py`` on a free localhost port (as test_central_pull runs it)."""
    with served(FakeCentral(project_id=7, forms={"visit_log": form_version})) as fake:
        yield fake


def test_the_central_pull_stops_before_a_row_it_cannot_store_and_takes_it_once_space_is_freed(
        client: TestClient, full_stack: EmbeddedStack, settings: Settings, blobs: Path, library: Library,
        tmp_path: Path):
    xform = client.get("/forms/visit_log.xml").content
    version = xform.split(b'version="', 1)[1].split(b'"', 1)[0].decode()
    xml = fill_instance(xform, visit_answers(library, today_local() - timedelta(days=1), total=9), "uuid:disk-central")
    with fake_central(version) as central:
        central.add("visit_log", xml, datetime(2026, 1, 5, 3, 0, tzinfo=UTC),
                    attachments=[Attachment("anh.jpg", PHOTO, "image/jpeg")])
        config = tmp_path / "pyodk.toml"
        config.write_text(f'[central]\nbase_url = "{central.base_url}"\nusername = "{central.email}"\n'
                          f'password = "{central.password}"\ndefault_project_id = 7\n', "utf-8")
        odk = Client(config_path=config, cache_path=tmp_path / "pyodk_cache.toml")
        poller = CentralPoller(odk, full_stack.service, tmp_path / "cursor.json", 7, "visit_log",
                               Account("central-pull", provinces=frozenset({"*"})), 250,
                               attachment_store=full_stack.ledger.blobs.stage_bytes)

        fill(blobs, leave_bytes=64 * 1024)
        stuck = poller.poll_once()
        assert stuck.error is not None and "no space" in stuck.error
        assert (stuck.accepted, stuck.rejected) == (0, {})  # not skipped as refused: tried again next poll
        assert leftovers(blobs) == [] and not blob_path(blobs, PHOTO).exists()
        assert full_stack.ledger.lookup("uuid:disk-central") is None and bus_log(settings) == []

        (blobs / "filler.bin").unlink()
        done = poller.poll_once()
        assert done.error is None and done.accepted == 1
        assert poller.poll_once().rows == 0  # the cursor moved past it
    assert [eid for _, eid in bus_log(settings)] == ["uuid:disk-central"]
    assert full_stack.ledger.blobs.read(hashlib.sha256(PHOTO).hexdigest()) == PHOTO
