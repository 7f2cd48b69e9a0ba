"""ODK Central pull, end to end: Central's OData feed → CentralPoller → intake → /v1/visits.

No ODK Central can run in CI (it needs PostgreSQL, Enketo and more), so these tests run
against ``tests/fake_central.py``: a local HTTP server that answers as Central's documented
API does (response shapes taken from Central's API documentation and central-backend's own
code and tests; its docstring lists which section each comes from). pyodk talks to it over
real HTTP, with a real ``pyodk_config.toml``; the submissions are built from the served
visit_log XForm, and the counts are read back through the query API.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pyodk.client import Client
from pyodk.errors import PyODKError

from services.bootstrap import EmbeddedStack
from services.clock import today_local
from services.config import REPO_ROOT, Settings
from services.domain.reference import Library, default_reference
from services.domain.submission import parse_submission
from services.intake.accounts import Account
from services.intake.central import CentralPoller, Cursor, PollResult
from services.intake.ledger import SqliteLedger
from services.intake.refusals import BusUnavailable
from services.tools.submissions import fill_instance
from tests.conftest import visit_answers
from tests.fake_central import Attachment, FakeCentral, iso, served

FORM = "visit_log"
PROJECT = 7
PULL = Account("central-pull", provinces=frozenset({"*"}))
T0 = datetime(2026, 1, 5, 3, 0, 0, tzinfo=UTC)  # Central's clock for the seeded rows


@pytest.fixture
def xform(client: TestClient) -> bytes:
    return client.get("/forms/visit_log.xml").content


@pytest.fixture
def central(xform: bytes) -> Iterator[FakeCentral]:
    """The fake Central, served by uvicorn on a free localhost port in a thread."""
    version = xform.split(b'version="', 1)[1].split(b'"', 1)[0].decode()
    with served(FakeCentral(project_id=PROJECT, forms={FORM: version})) as fake:
        yield fake


@pytest.fixture
def pyodk_config(tmp_path: Path, central: FakeCentral) -> Path:
    path = tmp_path / "pyodk_config.toml"
    path.write_text(f'[central]\nbase_url = "{central.base_url}"\nusername = "{central.email}"\n'
                    f'password = "{central.password}"\ndefault_project_id = {central.project_id}\n', "utf-8")
    return path


@pytest.fixture
def odk(pyodk_config: Path, tmp_path: Path) -> Client:
    """pyodk's Client from the config file (the token cache kept in tmp, not in $HOME)."""
    return Client(config_path=pyodk_config, cache_path=tmp_path / "pyodk_cache.toml")


@pytest.fixture
def poller(odk: Client, stack: EmbeddedStack, tmp_path: Path) -> Callable[..., CentralPoller]:
    def make(page_size: int = 250, service=None, **options) -> CentralPoller:
        return CentralPoller(odk, service or stack.service, tmp_path / "central" / "cursor.json", PROJECT, FORM,
                             PULL, page_size, attachment_store=stack.ledger.blobs.stage_bytes, **options)
    return make


def report(xform: bytes, library: Library, instance_id: str, days_ago: int, total: int,
           deprecated_id: str | None = None) -> bytes:
    return fill_instance(xform, visit_answers(library, today_local() - timedelta(days=days_ago), total=total),
                         instance_id, deprecated_id=deprecated_id)


def totals(client: TestClient, library: Library) -> tuple[int, int]:
    """(visits_total, reports) over the last 60 days for the library's province, from /v1/visits."""
    end = today_local()
    response = client.get("/v1/visits", params={
        "scheme": "legacy", "province": library.area("legacy").province_code,
        "start": (end - timedelta(days=60)).isoformat(), "end": end.isoformat(), "granularity": "day"})
    assert response.status_code == 200, response.text
    series = response.json()["series"]
    return sum(s["visits_total"] for s in series), sum(s["reports"] for s in series)


def counts(result: PollResult) -> dict[str, object]:
    return {k: v for k, v in vars(result).items() if v and k not in ("backlog",)}


class BusDownAt:
    """The intake as wired, except that the n-th call to it finds the bus down (BusUnavailable)."""

    def __init__(self, service, n: int):
        self._service, self._n, self.calls = service, n, 0

    def _tick(self) -> None:
        self.calls += 1
        if self.calls == self._n:
            raise BusUnavailable("broker unreachable (test)")

    def submit(self, raw, account, source="openrosa", attachments=(), received_at=None):
        self._tick()
        return self._service.submit(raw, account, source=source, attachments=attachments, received_at=received_at)

    def retract(self, instance_id, account, reason_code, reason, key=None):
        self._tick()
        return self._service.retract(instance_id, account, reason_code, reason, key=key)

    def reinstate(self, instance_id, account, key):  # not counted: the bus is down for submit/retract
        return self._service.reinstate(instance_id, account, key)


# ---------------------------------------------------------------------------------------


def test_rows_are_accepted_once(central, poller, xform, client, library):
    for i, total in enumerate((30, 20, 12)):
        central.add(FORM, report(xform, library, f"uuid:once-{i}", 1 + i, total), T0 + timedelta(minutes=i))

    first = poller().poll_once()

    assert counts(first) == {"rows": 3, "accepted": 3}
    assert totals(client, library) == (62, 3)
    again = poller().poll_once()  # the same cursor file, a new poller
    assert counts(again) == {} and again.complete
    assert poller().poll_once().rows == 0
    assert totals(client, library) == (62, 3)
    # What was asked of Central: filters on the two documented fields, in order, only __id/__system.
    odata = [q for _m, path, q in central.requests if path.endswith(".svc/Submissions")]
    assert {q["$orderby"] for q in odata} == {"__system/submissionDate asc", "__system/updatedAt asc"}
    assert all(" ge " in q["$filter"] and q["$select"] == "__id,__system" for q in odata)


def test_a_restart_neither_skips_nor_repeats_rows_sharing_a_timestamp_across_pages(
        central, poller, xform, client, library):
    # Five rows Central writes with the same submissionDate (same millisecond; two pairs are equal
    # to the microsecond), read two per page: the tie spans both page boundaries.
    ats = [T0, T0, T0 + timedelta(microseconds=300), T0 + timedelta(microseconds=300),
           T0 + timedelta(microseconds=600)]
    ids = [central.add(FORM, report(xform, library, f"uuid:tie-{i}", 2, 10 + i), at) for i, at in enumerate(ats)]
    assert len({iso(at) for at in ats}) == 1
    central.fail_next(f"/submissions/{ids[2]}.xml")  # Central fails on the third row: the poll stops there

    first = poller(page_size=2).poll_once()

    assert not first.complete and "500" in (first.error or "")
    assert counts(first)["accepted"] == 2 and totals(client, library) == (21, 2)
    saved = json.loads((central_cursor := poller(page_size=2)._cursor.path).read_text())["streams"]["submissionDate"]
    assert sorted(saved["seen"]) == sorted(ids[:2]) and saved["high"] == iso(T0)

    restarted = poller(page_size=2).poll_once()  # a new process: only the cursor file carries over

    assert restarted.complete
    assert counts(restarted) == {"rows": 3, "accepted": 3}  # no duplicate: nothing handled twice
    assert totals(client, library) == (60, 5)
    assert counts(poller(page_size=2).poll_once()) == {}
    assert central_cursor.exists() and not central_cursor.with_name(central_cursor.name + ".tmp").exists()


def test_the_bus_being_down_stops_the_poll_before_the_row(central, poller, xform, client, library, stack):
    for i in range(3):
        central.add(FORM, report(xform, library, f"uuid:bus-{i}", 3, 10), T0 + timedelta(seconds=i))

    down = poller(service=BusDownAt(stack.service, 2)).poll_once()

    assert "durable" in (down.error or "") and counts(down)["accepted"] == 1
    assert totals(client, library) == (10, 1)
    back = poller().poll_once()
    assert counts(back) == {"rows": 2, "accepted": 2}
    assert totals(client, library) == (30, 3)

    # The same for review changes that share one updatedAt across a page boundary.
    for i in range(3):
        central.review(FORM, f"uuid:bus-{i}", "rejected", T0 + timedelta(hours=1))
    down = poller(page_size=2, service=BusDownAt(stack.service, 2)).poll_once()
    assert counts(down)["retracted"] == 1 and down.error
    back = poller(page_size=2).poll_once()
    assert counts(back) == {"rows": 2, "retracted": 2}
    assert totals(client, library) == (0, 0)


def test_an_edit_replaces_the_earlier_version(central, poller, xform, client, library):
    central.add(FORM, report(xform, library, "uuid:ed-v1", 4, 30), T0)
    assert counts(poller().poll_once()) == {"rows": 1, "accepted": 1}
    assert totals(client, library) == (30, 1)

    # Two edits in Central between polls: each a new instanceID naming the one it replaces.
    central.edit(FORM, "uuid:ed-v1", report(xform, library, "uuid:ed-v2", 4, 34, "uuid:ed-v1"), T0 + timedelta(hours=1))
    central.edit(FORM, "uuid:ed-v1", report(xform, library, "uuid:ed-v3", 4, 38, "uuid:ed-v2"), T0 + timedelta(hours=2))
    result = poller().poll_once()

    assert counts(result) == {"rows": 1, "replaced": 2, "duplicates": 1}
    assert totals(client, library) == (38, 1)

    # A submission first seen after it was edited: its original is sent first, then the edit.
    central.add(FORM, report(xform, library, "uuid:late-v1", 5, 7), T0 + timedelta(hours=3))
    central.edit(FORM, "uuid:late-v1", report(xform, library, "uuid:late-v2", 5, 9, "uuid:late-v1"),
                 T0 + timedelta(hours=4))
    later = poller().poll_once()
    assert later.replaced == 1 and later.accepted == 1 and later.held == 0
    assert totals(client, library) == (47, 2)


def test_rejected_in_review_is_retracted_and_the_history_kept(central, poller, xform, client, library, stack):
    central.add(FORM, report(xform, library, "uuid:keep", 6, 30), T0)
    central.add(FORM, report(xform, library, "uuid:drop", 6, 11), T0 + timedelta(seconds=1))
    central.add(FORM, report(xform, library, "uuid:never", 6, 5), T0 + timedelta(seconds=2))
    central.review(FORM, "uuid:never", "rejected", T0 + timedelta(seconds=3))  # rejected before we saw it
    first = poller().poll_once()
    assert first.accepted == 2 and first.retract_noop == 2  # "never": in both streams, nothing to withdraw
    assert totals(client, library) == (41, 2)

    central.review(FORM, "uuid:keep", "approved", T0 + timedelta(hours=1))
    central.review(FORM, "uuid:drop", "rejected", T0 + timedelta(hours=1))
    result = poller().poll_once()

    assert counts(result) == {"rows": 2, "duplicates": 1, "retracted": 1}
    assert totals(client, library) == (30, 1)
    assert [e["event_id"] for e in stack.store.events("visit_logged")] == ["uuid:keep", "uuid:drop"]
    [retraction] = stack.store.events("submission_retracted")
    assert retraction["event_id"] == f"uuid:drop#retracted@{iso(T0 + timedelta(hours=1))}"  # keyed by the review
    assert '"central_rejected"' in retraction["payload"]
    assert counts(poller().poll_once()) == {}



def central_says(central: FakeCentral) -> tuple[int, int]:
    """(visits_total, reports) of Central's current, non-rejected versions: what the store must show."""
    live = [s for s in central.submissions if s.review_state != "rejected" and s.deleted_at is None]
    return sum(int(parse_submission(s.current.xml).answer("visits_total") or 0) for s in live), len(live)


def test_every_review_transition_keeps_the_totals_equal_to_centrals(central, poller, xform, client, library, stack,
                                                                   odk, tmp_path):
    # Central's PATCH sets reviewState to approved, hasIssues or rejected; null is only a new
    # submission's, and "edited" comes from an edit (a new version), never from a review.
    central.add(FORM, report(xform, library, "uuid:rv", 7, 25), T0)
    central.add(FORM, report(xform, library, "uuid:rv-other", 7, 10), T0 + timedelta(seconds=1))
    assert counts(poller().poll_once()) == {"rows": 2, "accepted": 2}
    assert totals(client, library) == central_says(central) == (35, 2)

    at = T0
    steps: list[tuple[str, dict[str, object]]] = [
        ("approved", {"rows": 1, "duplicates": 1}),  # none → approved
        ("rejected", {"rows": 1, "retracted": 1}),  # approved → rejected
        ("approved", {"rows": 1, "duplicates": 1, "reinstated": 1}),  # rejected → approved
        ("rejected", {"rows": 1, "retracted": 1}),  # approved → rejected, again
        ("hasIssues", {"rows": 1, "duplicates": 1, "reinstated": 1}),  # rejected → hasIssues
        ("rejected", {"rows": 1, "retracted": 1}),  # hasIssues → rejected
        ("edited", {"rows": 1, "duplicates": 1, "replaced": 1, "reinstated": 1}),  # rejected → an edit
        ("rejected", {"rows": 1, "retracted": 1}),  # edited → rejected
        ("approved", {"rows": 1, "duplicates": 2, "reinstated": 1}),  # rejected → approved: the edit counts
    ]
    for state, outcome in steps:
        at += timedelta(hours=1)
        if state == "edited":
            central.edit(FORM, "uuid:rv", report(xform, library, "uuid:rv-v2", 7, 28, "uuid:rv"), at)
        else:
            central.review(FORM, "uuid:rv", state, at)
        assert counts(poller().poll_once()) == outcome, state
        assert totals(client, library) == central_says(central), state
        assert counts(poller().poll_once()) == {}, state  # handled: nothing happens twice
    assert totals(client, library) == (38, 2)

    # The ledger knows the chain is live: the phone's XML is still a duplicate, and every withdrawal
    # and reinstatement was its own event (a redelivered review would make the same event_id).
    assert not any(e.retracted for e in stack.ledger.chain("uuid:rv"))
    resent = stack.service.submit(central.submissions[0].versions[0].xml, PULL, source="central")
    assert resent.kind == "duplicate"
    retractions = [e["event_id"] for e in stack.store.events("submission_retracted")]
    assert len(retractions) == len(set(retractions)) == 4
    reinstated = [e["event_id"] for e in stack.store.events("visit_logged") if "#reinstated@" in e["event_id"]]
    assert len(reinstated) == len(set(reinstated)) == 4

    # Everything delivered again (a lost cursor): nothing changes.
    again = CentralPoller(odk, stack.service, tmp_path / "lost" / "cursor.json", PROJECT, FORM, PULL,
                          attachment_store=stack.ledger.blobs.stage_bytes).poll_once()
    assert again.complete and again.accepted == again.replaced == again.retracted == again.reinstated == 0
    assert totals(client, library) == central_says(central) == (38, 2)


def test_a_report_central_received_before_the_deadline_is_on_time_though_pulled_after(
        central, poller, xform, stack, library):
    # Two months back: its deadline (the month's last day + 10 days) has passed whatever today is.
    this_month = today_local().replace(day=1)
    month = (this_month - timedelta(days=1)).replace(day=1)
    month = (month - timedelta(days=1)).replace(day=1)
    deadline = (this_month - timedelta(days=1)).replace(day=10)  # the next month's 10th
    day = month + timedelta(days=14)
    other = next(lib for lib in default_reference().libraries.values()
                 if lib.area("legacy").province_code == "02" and lib.library_id != library.library_id)
    on_time_at = datetime.combine(deadline - timedelta(days=3), datetime.min.time(), tzinfo=UTC)
    late_at = datetime.combine(deadline + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    for lib, at in ((library, on_time_at), (other, late_at)):
        central.add(FORM, fill_instance(xform, visit_answers(lib, day, total=9), f"uuid:due-{lib.library_id}"), at)

    assert counts(poller().poll_once()) == {"rows": 2, "accepted": 2}  # both pulled now, after the deadline

    rows = stack.store.select(
        "SELECT library_id, toInt64(sum(reports)) AS reports, toInt64(sum(on_time_reports)) AS on_time "
        "FROM visits_library_month WHERE month = {m:Date} GROUP BY library_id", {"m": month})
    assert {r["library_id"]: (r["reports"], r["on_time"]) for r in rows} == {
        library.library_id: (1, 1), other.library_id: (1, 0)}
    stamped = {e["event_id"]: e["submitted_at"] for e in stack.store.events("visit_logged")}
    assert stamped[f"uuid:due-{library.library_id}"].astimezone(UTC) == on_time_at

def test_a_row_the_intake_refuses_is_counted_and_does_not_stop_the_poll(central, poller, xform, client, library):
    bad = visit_answers(library, today_local() - timedelta(days=2), total=40)
    bad["visits_children"] = "35"  # 35 + 20 adults ≠ 40
    central.add(FORM, report(xform, library, "uuid:good-1", 2, 10), T0)
    central.add(FORM, fill_instance(xform, bad, "uuid:bad"), T0 + timedelta(seconds=1))
    central.add(FORM, report(xform, library, "uuid:good-2", 2, 12), T0 + timedelta(seconds=2))

    result = poller().poll_once()

    assert result.complete
    assert counts(result) == {"rows": 3, "accepted": 2, "rejected": {"totals_inconsistent": 1}}
    assert totals(client, library) == (22, 2)
    assert counts(poller().poll_once()) == {}  # handled: not asked for again


def test_attachments_are_fetched_checked_and_handed_to_the_intake(central, poller, xform, stack, library):
    photo = b"\xff\xd8\xff\xe0" + os.urandom(2048)
    central.add(FORM, report(xform, library, "uuid:att", 1, 15), T0, attachments=[
        Attachment("anh-thu-vien.jpg", photo, "image/jpeg"),
        Attachment("ghi-am.amr", None, "audio/amr")])  # expected, not uploaded to Central

    result = poller().poll_once()

    assert counts(result) == {"rows": 1, "accepted": 1, "attachments_fetched": 1, "attachments_missing": 1}
    digest = hashlib.sha256(photo).hexdigest()
    assert stack.ledger.blobs.read(digest) == photo
    entry = json.loads(stack.ledger.lookup("uuid:att").event_json)
    assert entry["attachments"] == [{"name": "anh-thu-vien.jpg", "sha256": digest, "size": len(photo),
                                     "media_type": "image/jpeg"}]
    assert entry["source"] == "central" and entry["submitter"] == "central-pull"


def test_an_attachment_that_appears_after_its_submission(central, poller, xform, client, stack, library):
    photo = b"\xff\xd8\xff\xe0" + os.urandom(4096)
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # after the report's day began
    central.add(FORM, report(xform, library, "uuid:late", 1, 15), sent, attachments=[
        Attachment("anh-thu-vien.jpg", None, "image/jpeg")])  # the phone sent the form, not yet the photo

    first = poller().poll_once()

    assert counts(first) == {"rows": 1, "accepted": 1, "attachments_missing": 1}
    assert totals(client, library) == (15, 1)
    restarted = poller()  # a new process: what it waits for was saved with the cursor
    assert restarted.waiting() == {"uuid:late": ["anh-thu-vien.jpg"]}
    assert counts(restarted.poll_once()) == {}  # still not on Central: asked again, nothing else

    central.upload(FORM, "uuid:late", "anh-thu-vien.jpg", photo)  # the OData row does not move
    late = restarted.poll_once()

    assert late.complete and counts(late) == {"attachments_fetched": 1, "attachments_late": 1}
    assert restarted.waiting() == {} and poller().waiting() == {}
    digest = hashlib.sha256(photo).hexdigest()
    assert stack.ledger.blobs.read(digest) == photo
    [first_version, amended] = stack.ledger.chain("uuid:late")
    assert json.loads(first_version.event_json)["attachments"] == []
    event = json.loads(amended.event_json)
    assert event["deprecated_id"] == "uuid:late" and event["attachments"] == [
        {"name": "anh-thu-vien.jpg", "sha256": digest, "size": len(photo), "media_type": "image/jpeg"}]
    assert totals(client, library) == (15, 1)  # the same report, not a second one
    # Its acceptance (timeliness) is still when Central received it.
    [chain] = stack.store.select("SELECT event_id, first_reported_at FROM visit_chain_rows "
                                 "WHERE root_id = 'uuid:late' AND sign = 1 ORDER BY seq DESC LIMIT 1")
    assert chain["event_id"] == amended.instance_id and chain["first_reported_at"].astimezone(UTC) == sent
    assert counts(poller().poll_once()) == {}


def test_an_attachment_too_large_is_refused_whatever_its_content_length_says(
        central, poller, xform, client, stack, library):
    limit = 8192
    small, big = os.urandom(1000), os.urandom(limit + 1)
    central.add(FORM, report(xform, library, "uuid:big", 1, 9), T0, attachments=[
        Attachment("a-nho.jpg", small), Attachment("b-lon.jpg", big),  # Content-Length says it is too large
        Attachment("c-lon-chunked.jpg", big, chunked=True),  # no Content-Length: only the bytes read tell
        Attachment("d-sau.jpg", None)])
    pull = poller(attachment_limit=limit)

    result = pull.poll_once()

    assert result.complete
    assert counts(result) == {"rows": 1, "accepted": 1, "attachments_fetched": 1, "attachments_too_large": 2,
                              "attachments_missing": 1}
    names = [a["name"] for a in json.loads(stack.ledger.lookup("uuid:big").event_json)["attachments"]]
    assert names == ["a-nho.jpg"] and totals(client, library) == (9, 1)
    refused = client.get("/v1/rejections", params={"form_id": FORM, "reason_code": "too_large"})
    assert refused.status_code == 200, refused.text
    reasons = sorted((r["instance_id"], r["reason_vi"], r["reason_en"]) for r in refused.json())
    assert reasons == [
        ("uuid:big", f"Tệp b-lon.jpg quá lớn ({limit + 1} byte, tối đa {limit} byte).",
         f"Attachment b-lon.jpg too large ({limit + 1} bytes, at most {limit} bytes)."),
        ("uuid:big", f"Tệp c-lon-chunked.jpg quá lớn (tối đa {limit} byte).",
         f"Attachment c-lon-chunked.jpg too large (at most {limit} bytes).")]
    # The same limit on one that comes late, and sent chunked: refused, not waited for again.
    central.upload(FORM, "uuid:big", "d-sau.jpg", big, chunked=True)
    late = pull.poll_once()
    assert counts(late) == {"attachments_too_large": 1} and pull.waiting() == {}


def test_an_attachment_still_missing_after_the_wait_is_given_up(central, poller, xform, client, library):
    now = [datetime(2026, 1, 5, 4, 0, tzinfo=UTC)]
    central.add(FORM, report(xform, library, "uuid:never", 1, 7), T0, attachments=[Attachment("anh.jpg", None)])
    pull = poller(attachment_wait_h=48, clock=lambda: now[0])
    pull.poll_once()

    now[0] += timedelta(hours=47)
    assert counts(pull.poll_once()) == {} and pull.waiting() == {"uuid:never": ["anh.jpg"]}
    now[0] += timedelta(hours=2)
    given_up = pull.poll_once()

    assert counts(given_up) == {"attachments_abandoned": 1} and pull.waiting() == {}
    assert totals(client, library) == (7, 1)  # the submission stays, without it
    assert 'central_attachments_total{form_id="visit_log",outcome="abandoned"}' in client.get("/metrics").text


def test_a_late_attachment_does_not_bring_back_a_rejected_submission(central, poller, xform, client, library):
    central.add(FORM, report(xform, library, "uuid:gone", 1, 11), T0, attachments=[Attachment("anh.jpg", None)])
    pull = poller()
    pull.poll_once()
    central.review(FORM, "uuid:gone", "rejected", T0 + timedelta(hours=1))
    assert pull.poll_once().retracted == 1

    central.upload(FORM, "uuid:gone", "anh.jpg", b"\xff\xd8" + os.urandom(100))
    result = pull.poll_once()

    assert result.complete and result.attachments_late == 0 and pull.waiting() == {}
    assert totals(client, library) == (0, 0)


def test_the_fake_answers_as_central_does(central, odk, xform, library):
    """The behaviours the poller is built around, asked through pyodk's own get_table."""
    central.add(FORM, report(xform, library, "uuid:doc", 1, 3), T0 + timedelta(microseconds=456))

    with pytest.raises(PyODKError) as refused:
        odk.submissions.get_table(form_id=FORM, filter="__system/createdAt gt 2025-01-01")
    assert refused.value.args[1].status_code == 501 and refused.value.is_central_error(501.5)

    table = odk.submissions.get_table(form_id=FORM, count=True)
    [row] = table["value"]
    assert table["@odata.count"] == 1 and row["__id"] == "uuid:doc"
    assert row["__system"]["updatedAt"] is None and row["__system"]["submissionDate"] == "2026-01-05T03:00:00.000Z"
    # Written to the millisecond, kept to the microsecond: `gt` the written value still finds the row.
    again = odk.submissions.get_table(form_id=FORM, filter="__system/submissionDate gt 2026-01-05T03:00:00.000Z")
    assert [r["__id"] for r in again["value"]] == ["uuid:doc"]
    assert odk.submissions.get_table(form_id=FORM, filter="__system/updatedAt ge 1970-01-01")["value"] == []
    together = odk.get(f"projects/{PROJECT}/forms/{FORM}.svc/Submissions",
                       params={"$orderby": "__system/updatedAt asc", "$skiptoken": "01e30="})
    assert together.status_code == 501 and together.json()["code"] == 501.1


def test_an_expired_session_is_renewed(central, poller, xform, client, library):
    central.add(FORM, report(xform, library, "uuid:s-1", 1, 4), T0)
    pull = poller()
    assert pull.poll_once().accepted == 1
    central.tokens.clear()  # Central's 24-hour session ended
    central.add(FORM, report(xform, library, "uuid:s-2", 1, 6), T0 + timedelta(minutes=1))

    result = pull.poll_once()

    assert result.complete and result.accepted == 1
    assert totals(client, library) == (10, 2)


def test_metrics_count_what_the_pull_did(central, poller, xform, client, library):
    central.add(FORM, report(xform, library, "uuid:m-1", 1, 4), T0)
    pull = poller()
    pull.poll_once()
    central.fail_next("/Submissions")
    assert not pull.poll_once().complete

    text = client.get("/metrics").text

    assert 'central_rows_total{form_id="visit_log",outcome="accepted"}' in text
    assert 'central_poll_errors_total{form_id="visit_log"}' in text
    lag = next(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('central_poll_lag_seconds{form_id="visit_log"}'))
    assert 0 <= lag < 600


def test_a_cursor_belongs_to_one_form(tmp_path: Path):
    cursor = Cursor(tmp_path / "c.json", PROJECT, FORM)
    cursor.streams["submissionDate"].handled("uuid:x", "2026-01-05T03:00:00.000Z")
    cursor.save()
    assert Cursor(tmp_path / "c.json", PROJECT, FORM).streams["submissionDate"].seen == {
        "uuid:x": "2026-01-05T03:00:00.000Z"}
    with pytest.raises(ValueError, match="not of project 7 form 'donation'"):
        Cursor(tmp_path / "c.json", PROJECT, "donation")


def test_the_command_line_pulls_once(central, pyodk_config, xform, library, settings: Settings, tmp_path: Path):
    for i in range(3):
        central.add(FORM, report(xform, library, f"uuid:cli-{i}", 1, 5), T0 + timedelta(seconds=i))
    env = {**os.environ, "BUS": "embedded", "STORE_DSN": f"chdb://{tmp_path / 'cli-store'}",
           "STATE_DIR": str(tmp_path / "cli-state"), "FORMS_DIR": str(settings.forms_dir), "LOG_LEVEL": "WARNING"}

    done = subprocess.run(
        [sys.executable, "-m", "services.intake.central", "--config", str(pyodk_config), "--project", str(PROJECT),
         "--form", FORM, "--once", "--page-size", "2", "--cache", str(tmp_path / "cli-cache.toml")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])[FORM]
    assert result["accepted"] == 3 and result["error"] is None
    assert (tmp_path / "cli-state" / "central" / f"{PROJECT}-{FORM}.json").exists()
    # This process already runs a chDB (the `stack` fixture): read the CLI's intake ledger instead.
    ledger = SqliteLedger(tmp_path / "cli-state")
    try:
        for i in range(3):
            entry = ledger.lookup(f"uuid:cli-{i}")
            assert entry is not None and json.loads(entry.event_json)["source"] == "central"
    finally:
        ledger.close()
