"""The intake attacked as a hostile field account, a captured request or a careless proxy would
(SECURITY.md): each test reproduces one attack against the real embedded stack — uvicorn on a
socket where the attack needs one — and checks that it now changes nothing."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack, embedded_stack
from services.clock import today_local
from services.config import REPO_ROOT, Settings
from services.domain.dead_letters import Rejection
from services.domain.reference import Library, default_reference
from services.domain.submission import parse_submission
from services.intake.accounts import Account, Accounts, add_account, ha1
from services.intake.digest import DigestAuthenticator
from services.intake.refusals import OutOfScope
from services.tools.submissions import fill_instance, multipart
from tests.conftest import OPENROSA, digest_header, visit_answers
from tests.disk import fill, small_disk
from tests.serving import serving
from tests.test_bad_input import _rejections

DAY = today_local() - timedelta(days=2)
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(4096)
BOUNDARY = "thuvien-test-boundary"
MIB = 1 << 20


def _library(legacy_province: str) -> Library:
    return next(lib for lib in sorted(default_reference().libraries.values(), key=lambda lib: lib.library_id)
                if lib.area("legacy").province_code == legacy_province)


HA_GIANG, LAI_CHAU = _library("02"), _library("12")
PASSWORDS = {"doi-hg": "mat-khau-hg", "doi-lc": "mat-khau-lc", "doi-ca-hai": "mat-khau-2"}


@pytest.fixture
def accounts_file(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.json"
    add_account(path, "doi-hg", PASSWORDS["doi-hg"], ["legacy:02"])
    add_account(path, "doi-lc", PASSWORDS["doi-lc"], ["2025:12"])
    add_account(path, "doi-ca-hai", PASSWORDS["doi-ca-hai"], ["legacy:02", "2025:12"])
    return path


@pytest.fixture
def secured(settings: Settings, accounts_file: Path) -> Iterator[EmbeddedStack]:
    built = embedded_stack(settings.model_copy(update={"accounts_file": str(accounts_file)}))
    try:
        yield built
    finally:
        built.close()


def team(stack: EmbeddedStack, user: str, address: str = "testclient") -> TestClient:
    client = TestClient(stack.app, headers=OPENROSA, client=(address, 50000))
    client.auth = httpx.DigestAuth(user, PASSWORDS[user])
    return client


@pytest.fixture(scope="module")
def xform(forms_dir: Path) -> bytes:
    return (forms_dir / "visit_log.xml").read_bytes()


def report(xform: bytes, library: Library, instance_id: str, total: int, deprecated_id: str | None = None,
           **answers: str) -> bytes:
    return fill_instance(xform, visit_answers(library, DAY, total=total) | answers, instance_id, deprecated_id)


def visits(stack: EmbeddedStack, library: Library) -> int:
    """The library's visits on DAY, as the query API answers them."""
    query = TestClient(stack.app, headers={"X-API-Key": stack.demo_api_key or ""})
    response = query.get("/v1/visits", params={"library": library.library_id, "granularity": "day",
                                               "start": DAY.isoformat(), "end": DAY.isoformat()})
    assert response.status_code == 200, response.text
    return sum(row["visits_total"] for row in response.json()["series"])


def openrosa_refusal(response: httpx.Response, status: int, *says: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["X-OpenRosa-Version"] == "1.0"
    assert "<OpenRosaResponse" in response.text and " / " in response.text  # Vietnamese / English
    for text in says:
        assert text in response.text, (text, response.text)


def staged_or_parked(settings: Settings) -> list[Path]:
    """Files of submissions not accepted: staged in ``raw/incoming`` or parked in ``raw/partial``."""
    raw = settings.state_dir / "raw"
    return [p for folder in ("incoming", "partial") for p in (raw / folder).rglob("*") if p.is_file()]


def blobs(settings: Settings) -> set[str]:
    """Digests in the blob store (what was accepted or held)."""
    return {p.name for p in (settings.state_dir / "raw").glob("??/*")}


# --- 1. an edit, a retraction or a held edit may not rewrite another province's figures ----------------------------

def test_an_edit_cannot_move_or_erase_another_provinces_report(secured: EmbeddedStack, xform: bytes):
    assert team(secured, "doi-lc").post("/submission", files=multipart(
        report(xform, LAI_CHAU, "uuid:lc-v1", 40))).status_code == 201

    attack = report(xform, HA_GIANG, "uuid:hg-v2", 0, deprecated_id="uuid:lc-v1")
    refused = team(secured, "doi-hg").post("/submission", files=multipart(attack))

    openrosa_refusal(refused, 403, "doi-hg", "uuid:lc-v1")
    assert (visits(secured, LAI_CHAU), visits(secured, HA_GIANG)) == (40, 0)
    assert secured.ledger.lookup("uuid:hg-v2") is None
    [letter] = secured.store.dead_letters()
    assert (letter["instance_id"], letter["reason_code"], letter["submitter"]) == (
        "uuid:hg-v2", "out_of_scope", "doi-hg")
    assert "uuid:hg-v2" in letter["raw_xml"]
    # A team whose provinces hold both versions may move the report.
    move = report(xform, HA_GIANG, "uuid:both-v2", 7, deprecated_id="uuid:lc-v1")
    assert team(secured, "doi-ca-hai").post("/submission", files=multipart(move)).status_code == 201
    assert (visits(secured, LAI_CHAU), visits(secured, HA_GIANG)) == (0, 7)


def test_a_held_edit_is_checked_against_the_chain_when_its_original_comes(secured: EmbeddedStack, xform: bytes):
    early_edit = report(xform, HA_GIANG, "uuid:held-v2", 0, deprecated_id="uuid:held-v1")
    held = team(secured, "doi-hg").post("/submission", files=multipart(early_edit))
    assert held.status_code == 201 and "bản gốc" in held.text  # its own version is in scope: held

    original = report(xform, LAI_CHAU, "uuid:held-v1", 40)
    assert team(secured, "doi-lc").post("/submission", files=multipart(original)).status_code == 201

    assert (visits(secured, LAI_CHAU), visits(secured, HA_GIANG)) == (40, 0)
    assert secured.ledger.held(instance_id="uuid:held-v2") == [] and secured.ledger.lookup("uuid:held-v2") is None
    [letter] = secured.store.dead_letters()
    assert (letter["instance_id"], letter["reason_code"]) == ("uuid:held-v2", "out_of_scope")


def test_a_retraction_outside_the_accounts_provinces_changes_nothing(secured: EmbeddedStack, xform: bytes):
    assert team(secured, "doi-lc").post("/submission", files=multipart(
        report(xform, LAI_CHAU, "uuid:ret-v1", 40))).status_code == 201

    with pytest.raises(OutOfScope):
        secured.service.retract("uuid:ret-v1", Account("central-hg", provinces=frozenset({"legacy:02"})),
                                "central_rejected", "rejected in review")
    assert visits(secured, LAI_CHAU) == 40
    assert [letter["reason_code"] for letter in secured.store.dead_letters()] == ["out_of_scope"]

    assert secured.service.retract("uuid:ret-v1", Account("central-lc", provinces=frozenset({"2025:12"})),
                                   "central_rejected", "rejected in review")
    assert visits(secured, LAI_CHAU) == 0


# --- 2. the size limit holds for what is sent, chunked or not -------------------------------------------------------

def _chunked(head: bytes, filler: int, tail: bytes, counter: list[int]) -> Iterator[bytes]:
    yield head
    chunk = b"\x00" * MIB
    for _ in range(filler // MIB):
        counter[0] += len(chunk)
        yield chunk
    yield tail


def _part(name: str, filename: str, media_type: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {media_type}\r\n\r\n").encode()


@pytest.mark.parametrize("where", ["xml", "attachment"])
def test_a_chunked_body_over_the_limit_is_stopped_at_the_limit_and_leaves_nothing(
        stack: EmbeddedStack, settings: Settings, where: str, xform: bytes):
    xml = report(xform, HA_GIANG, f"uuid:chunked-{where}", 12)
    if where == "xml":  # the reported attack: a 100 MB "visit log"
        head = _part("xml_submission_file", "submission.xml", "text/xml") + xml + b"<!--"
        tail = f"-->\r\n--{BOUNDARY}--\r\n".encode()
    else:  # a 100 MB "photo" after a valid visit log
        head = (_part("xml_submission_file", "submission.xml", "text/xml") + xml + b"\r\n"
                + _part("photo.jpg", "photo.jpg", "image/jpeg") + JPEG)
        tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    sent = [0]
    with serving(stack.app, settings) as url:
        response = httpx.post(f"{url}/submission", content=_chunked(head, 100 * MIB, tail, sent), timeout=60,
                              headers={**OPENROSA, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    openrosa_refusal(response, 413, "quá lớn", "too large")
    # Reading stopped at the limit: the client could not push the rest (socket buffers aside).
    assert sent[0] < 50 * MIB, sent[0]
    assert staged_or_parked(settings) == [] and blobs(settings) == set()
    assert stack.ledger.lookup(f"uuid:chunked-{where}") is None


def test_a_declared_body_over_the_limit_is_drained_only_when_small(stack: EmbeddedStack, settings: Settings,
                                                                  xform: bytes):
    """Refused on its declared length, a body a little over the limit is read and dropped (a proxy still
    sending it gets the 413, not a reset: tests/test_proxy.py), and the connection serves the next
    request; one declared over twice the limit is not read: the answer closes the connection."""
    limit = settings.max_submission_bytes
    headers = {**OPENROSA, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    body = _part("xml_submission_file", "submission.xml", "text/xml") + report(xform, HA_GIANG, "uuid:drain", 3)
    with serving(stack.app, settings) as url, httpx.Client(base_url=url, headers=headers, timeout=60) as phone:
        small = phone.post("/submission", content=body + b" " * (limit + 1 - len(body)))
        openrosa_refusal(small, 413, "quá lớn", "too large")
        assert small.headers.get("connection") != "close"
        assert phone.get("/formList").status_code == 200  # the same connection, kept
        large = phone.post("/submission", content=body + b" " * (2 * limit + 1 - len(body)))
        openrosa_refusal(large, 413, "quá lớn", "too large")
        assert large.headers.get("connection") == "close"
    assert stack.ledger.lookup("uuid:drain") is None


def test_a_chunked_submission_within_the_limit_is_accepted(stack: EmbeddedStack, settings: Settings, xform: bytes):
    xml = report(xform, HA_GIANG, "uuid:chunked-ok", 12)
    body = (_part("xml_submission_file", "submission.xml", "text/xml") + xml + b"\r\n"
            + _part("photo.jpg", "photo.jpg", "image/jpeg") + JPEG + f"\r\n--{BOUNDARY}--\r\n".encode())
    with serving(stack.app, settings) as url:
        response = httpx.post(f"{url}/submission", content=iter([body[:100], body[100:5000], body[5000:]]),
                              headers={**OPENROSA, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert response.status_code == 201, response.text
    assert visits(stack, HA_GIANG) == 12
    assert stack.ledger.blobs.read(hashlib.sha256(JPEG).hexdigest()) == JPEG


# --- 3. a captured Digest header opens one request, not more -------------------------------------------------------

def test_a_captured_digest_header_cannot_be_replayed(secured: EmbeddedStack, xform: bytes):
    client = TestClient(secured.app, headers=OPENROSA)
    challenge = client.head("/submission").headers["WWW-Authenticate"]
    captured = digest_header("doi-hg", PASSWORDS["doi-hg"], "POST", "/submission", challenge, nc=1)

    first = client.post("/submission", headers={"Authorization": captured},
                        files=multipart(report(xform, HA_GIANG, "uuid:replay-1", 10)))
    assert first.status_code == 201
    for n, header in enumerate((captured, digest_header("doi-hg", PASSWORDS["doi-hg"], "POST", "/submission",
                                                       challenge, nc=0))):
        again = client.post("/submission", headers={"Authorization": header},
                            files=multipart(report(xform, HA_GIANG, f"uuid:replay-{n + 2}", 99)))
        openrosa_refusal(again, 401)
        assert "stale=true" in again.headers["WWW-Authenticate"]  # Collect retries with a fresh nonce
        assert secured.ledger.lookup(f"uuid:replay-{n + 2}") is None
    assert visits(secured, HA_GIANG) == 10
    # The phone that owns the nonce goes on counting: nc 2 is good once.
    follow = digest_header("doi-hg", PASSWORDS["doi-hg"], "POST", "/submission", challenge, nc=2)
    assert client.post("/submission", headers={"Authorization": follow},
                       files=multipart(report(xform, HA_GIANG, "uuid:replay-ok", 5))).status_code == 201
    # And Collect's way (httpx's DigestAuth, an independent client) keeps working across requests.
    field = team(secured, "doi-hg")
    for n in range(3):
        assert field.post("/submission", files=multipart(report(xform, HA_GIANG, f"uuid:collect-{n}", 1))) \
            .status_code == 201


def test_a_nonce_from_another_process_is_stale_for_the_right_password_and_a_guess_for_a_wrong_one():
    """After a restart (a new nonce secret) phones hold nonces this process did not sign: the right
    password gets stale=true, not a failure; a wrong one is a guess like any other."""
    team_hg = Account("doi-hg", ha1("doi-hg", "thuvien-coso", PASSWORDS["doi-hg"]), frozenset({"legacy:02"}))
    accounts = Accounts("thuvien-coso", {"doi-hg": team_hg})
    before, now = DigestAuthenticator(accounts), DigestAuthenticator(accounts)
    old_challenge = before.challenge()
    right = now.authenticate("HEAD", digest_header("doi-hg", PASSWORDS["doi-hg"], "HEAD", "/submission",
                                                   old_challenge), https=False, uri="/submission")
    assert (right.account, right.stale, right.failed) == (None, True, False)
    wrong = now.authenticate("HEAD", digest_header("doi-hg", "sai", "HEAD", "/submission", old_challenge),
                             https=False, uri="/submission")
    assert (wrong.account, wrong.stale, wrong.failed) == (None, False, True)


# --- 4. X-Forwarded-Proto is believed only from TRUSTED_PROXIES ----------------------------------------------------

@pytest.mark.parametrize(("trusted", "status"), [((), 401), (("127.0.0.1",), 200)])
def test_basic_over_plain_http_is_refused_whatever_the_client_claims(
        settings: Settings, accounts_file: Path, trusted: tuple[str, ...], status: int):
    configured = settings.model_copy(update={"accounts_file": str(accounts_file), "trusted_proxies": trusted})
    stack = embedded_stack(configured)
    basic = "Basic " + base64.b64encode(f"doi-hg:{PASSWORDS['doi-hg']}".encode()).decode()
    try:
        with serving(stack.app, configured) as url:  # uvicorn as the entry points run it, on 127.0.0.1
            response = httpx.get(f"{url}/formList",
                                 headers={**OPENROSA, "Authorization": basic, "X-Forwarded-Proto": "https"})
    finally:
        stack.close()
    assert response.status_code == status, response.text


# --- 5. guessing passwords is braked per account and per address --------------------------------------------------

def _metric(client: TestClient, name: str, **labels: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.split()[-1])
    return 0.0


def test_guessing_an_accounts_password_is_locked_out(secured: EmbeddedStack, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    guesses = [f"doan-{n:03d}" for n in range(200)]
    probe = TestClient(secured.app)
    failures = _metric(probe, "auth_failures_total", service="intake", method="digest")
    lockouts = _metric(probe, "auth_lockouts_total", service="intake", scope="account")
    statuses = []
    for n, guess in enumerate(guesses):  # each from its own address: only the account's count can stop it
        client = TestClient(secured.app, headers=OPENROSA, client=(f"10.1.{n // 250}.{n % 250}", 50000))
        statuses.append(client.head("/submission", auth=httpx.DigestAuth("doi-hg", guess)).status_code)
    assert statuses[:4] == [401] * 4 and set(statuses[5:]) == {429}, statuses[:10]

    locked = TestClient(secured.app, headers=OPENROSA, client=("10.9.9.9", 50000))
    right = locked.head("/submission", auth=httpx.DigestAuth("doi-hg", PASSWORDS["doi-hg"]))
    assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1  # no verdict on any guess
    other = team(secured, "doi-lc", "10.9.9.9")
    assert other.head("/submission").status_code == 204  # another account is not locked
    assert _metric(probe, "auth_failures_total", service="intake", method="digest") == failures + 5
    assert _metric(probe, "auth_lockouts_total", service="intake", scope="account") == lockouts + 1

    logged = [r for r in caplog.records if r.name == "services.login_throttle"]
    assert {r.getMessage() for r in logged} == {"authentication failed", "authentication locked"}
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert not any(guess in text for guess in guesses) and PASSWORDS["doi-hg"] not in text



def test_a_lock_out_ends_and_the_right_password_then_works(settings: Settings, accounts_file: Path):
    stack = embedded_stack(settings.model_copy(update={"accounts_file": str(accounts_file), "auth_lockout_s": 1.0}))
    try:
        client = TestClient(stack.app, headers=OPENROSA)
        wrong = [client.head("/submission", auth=httpx.DigestAuth("doi-hg", "sai")).status_code for _ in range(6)]
        assert wrong == [401] * 5 + [429]
        threading.Event().wait(1.2)  # AUTH_LOCKOUT_S
        assert client.head("/submission", auth=httpx.DigestAuth("doi-hg", PASSWORDS["doi-hg"])).status_code == 204
    finally:
        stack.close()


def test_one_address_guessing_many_accounts_is_locked_out(secured: EmbeddedStack):
    guesser = TestClient(secured.app, headers=OPENROSA, client=("203.0.113.7", 50000),
                         base_url="https://testserver")
    statuses = []
    for n in range(30):  # Basic over HTTPS, names that are no account: the address is what counts
        credentials = base64.b64encode(f"user-{n}:guess".encode()).decode()
        statuses.append(guesser.get("/formList", headers={"Authorization": f"Basic {credentials}"}).status_code)
    assert statuses[:19] == [401] * 19 and set(statuses[20:]) == {429}
    right = base64.b64encode(f"doi-hg:{PASSWORDS['doi-hg']}".encode()).decode()
    assert guesser.get("/formList", headers={"Authorization": f"Basic {right}"}).status_code == 429
    elsewhere = TestClient(secured.app, headers=OPENROSA, client=("198.51.100.1", 50000), base_url="https://testserver")
    assert elsewhere.get("/formList", headers={"Authorization": f"Basic {right}"}).status_code == 200


# --- 8. split uploads: every part checked, unfinished ones expire, refused files deleted ----------------------------

def _part_post(client: TestClient, xml: bytes, photo: bytes = JPEG, incomplete: bool = True) -> httpx.Response:
    return client.post("/submission", files=[("xml_submission_file", ("s.xml", xml, "text/xml")),
                                             ("p.jpg", ("p.jpg", photo, "image/jpeg"))],
                       data={"*isIncomplete*": "yes"} if incomplete else {})


@pytest.mark.parametrize(("answers", "status", "reason"), [
    ({"library_id": "LIB-XX-9999"}, 400, "library_unknown"),
    ({"report_date": (today_local() + timedelta(days=3)).isoformat()}, 400, "date_in_future"),
    ({"virtual_visits": "-4"}, 400, "negative_count"),
])
def test_a_part_of_a_split_upload_is_checked_as_the_whole_submission(
        client: TestClient, stack: EmbeddedStack, settings: Settings, answers: dict, status: int, reason: str,
        xform: bytes):
    before = _rejections(client).get((str(status), reason), 0)
    xml = report(xform, HA_GIANG, "uuid:bad-part", 12, **answers)
    openrosa_refusal(_part_post(client, xml), status)
    assert _rejections(client).get((str(status), reason), 0) == before + 1
    assert stack.ledger.partial_attachments("uuid:bad-part") is None
    assert staged_or_parked(settings) == [] and blobs(settings) == set()


def test_a_part_outside_the_accounts_provinces_is_refused_and_kept_as_a_dead_letter(
        secured: EmbeddedStack, settings: Settings, xform: bytes):
    xml = report(xform, LAI_CHAU, "uuid:foreign-part", 12)
    openrosa_refusal(_part_post(team(secured, "doi-hg"), xml), 403, "doi-hg")
    assert secured.ledger.partial_attachments("uuid:foreign-part") is None
    assert staged_or_parked(settings) == []
    assert [letter["instance_id"] for letter in secured.store.dead_letters()] == ["uuid:foreign-part"]


def test_an_unfinished_split_upload_expires_with_its_files(settings: Settings, xform: bytes):
    stack = embedded_stack(settings.model_copy(update={"partial_timeout_hours": 0.0}))
    try:
        client = TestClient(stack.app, headers=OPENROSA)
        xml = report(xform, HA_GIANG, "uuid:abandoned", 12)
        assert _part_post(client, xml).status_code == 201
        assert len(staged_or_parked(settings)) == 1 and stack.ledger.partial_attachments("uuid:abandoned")
        assert stack.service.expire_partials() == 1
        assert staged_or_parked(settings) == [] and stack.ledger.partial_attachments("uuid:abandoned") is None
        assert visits(stack, HA_GIANG) == 0
        # The phone sends it whole later: it is a first submission, with what that request carries.
        assert _part_post(client, xml, incomplete=False).status_code == 201
        assert visits(stack, HA_GIANG) == 12 and staged_or_parked(settings) == []
    finally:
        stack.close()


def test_the_attachments_of_a_refused_submission_are_deleted(client: TestClient, stack: EmbeddedStack,
                                                             settings: Settings, xform: bytes):
    refused = report(xform, HA_GIANG, "uuid:refused-photo", 12, visits_children="39")
    openrosa_refusal(_part_post(client, refused, incomplete=False), 400)
    conflict_first = report(xform, HA_GIANG, "uuid:twice", 12)
    assert _part_post(client, conflict_first, photo=b"\xff\xd8first", incomplete=False).status_code == 201
    conflicting = report(xform, HA_GIANG, "uuid:twice", 13)
    openrosa_refusal(_part_post(client, conflicting, photo=b"\xff\xd8second", incomplete=False), 409)
    assert blobs(settings) == {hashlib.sha256(b"\xff\xd8first").hexdigest(),
                               stack.ledger.lookup("uuid:twice").raw_sha256}
    assert staged_or_parked(settings) == []


# --- 9. racing sends of one instanceID: one 201, and everything agrees on the winner ------------------------------

def test_racing_sends_of_one_instance_id_get_one_201_and_agree_everywhere(
        stack: EmbeddedStack, settings: Settings):
    xform = TestClient(stack.app, headers=OPENROSA).get("/forms/visit_log.xml").content
    with serving(stack.app, settings) as url, ThreadPoolExecutor(8) as pool, httpx.Client(headers=OPENROSA) as http:
        for attempt in range(5):
            instance_id, day = f"uuid:race-{attempt}", DAY - timedelta(days=attempt)
            versions = [fill_instance(xform, visit_answers(HA_GIANG, day, total=10 + n), instance_id)
                        for n in range(8)]
            start = threading.Barrier(8)

            def send(xml: bytes, start: threading.Barrier = start) -> int:
                start.wait()
                return http.post(f"{url}/submission", files=multipart(xml)).status_code

            statuses = list(pool.map(send, versions))
            assert sorted(statuses) == [201] + [409] * 7, (attempt, statuses)
            winner = versions[statuses.index(201)]
            accepted_hash = parse_submission(winner).content_hash
            assert stack.ledger.lookup(instance_id).content_hash == accepted_hash
            archived = [e for e in stack.store.events("visit_logged") if e["event_id"] == instance_id]
            assert [e["content_hash"] for e in archived] == [accepted_hash]
            query = TestClient(stack.app, headers={"X-API-Key": stack.demo_api_key or ""})
            [row] = query.get("/v1/visits", params={"library": HA_GIANG.library_id, "granularity": "day",
                                                    "start": day.isoformat(), "end": day.isoformat()}).json()["series"]
            assert row["visits_total"] == 10 + statuses.index(201)
    assert stack.store.dead_letters(open_only=False) == []


# --- 10. a full disk under the ledger is 507 with Retry-After ------------------------------------------------------

def test_a_full_disk_under_the_ledger_gets_507_then_each_submission_goes_in_once(
        settings: Settings, tmp_path: Path, xform: bytes):
    with small_disk(tmp_path / "ledger-disk", 2 * MIB) as disk:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        # Only the ledger's SQLite file (and its WAL, which SQLite puts beside the resolved path) on the small disk.
        (settings.state_dir / "intake.sqlite").symlink_to(disk / "intake.sqlite")
        stack = embedded_stack(settings)
        try:
            client = TestClient(stack.app, headers=OPENROSA)
            assert client.post("/submission", files=multipart(report(xform, HA_GIANG, "uuid:ledger-0", 3))) \
                .status_code == 201
            filler = fill(disk)
            statuses = {}
            for n in range(1, 21):
                response = client.post("/submission",
                                       files=multipart(report(xform, HA_GIANG, f"uuid:ledger-{n}", 1)))
                statuses[n] = response.status_code
                if response.status_code == 507:
                    openrosa_refusal(response, 507, "hết dung lượng", "out of storage space")
                    assert int(response.headers["Retry-After"]) > 0
            assert set(statuses.values()) <= {201, 507} and 507 in statuses.values(), statuses
            filler.unlink()
            for n, status in statuses.items():
                if status == 507:  # Collect keeps it and sends it again
                    assert client.post("/submission", files=multipart(
                        report(xform, HA_GIANG, f"uuid:ledger-{n}", 1))).status_code == 201
            assert all(stack.ledger.lookup(f"uuid:ledger-{n}") for n in range(21))
            assert visits(stack, HA_GIANG) == 3 + 20  # each once, whatever was published before the 507
        finally:
            stack.close()


# --- 11. recording a refusal runs off the event loop ---------------------------------------------------------------

def test_recording_a_refusal_does_not_hold_up_other_requests(stack: EmbeddedStack, settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch, xform: bytes):
    publishing, health_answered, waited = threading.Event(), threading.Event(), []
    publish = stack.bus.publish

    def slow_for_rejections(event):  # noqa: ANN001
        if isinstance(event, Rejection):
            publishing.set()
            waited.append(health_answered.wait(15))  # stays here until /health has answered
        publish(event)

    monkeypatch.setattr(stack.bus, "publish", slow_for_rejections)
    refused = report(xform, HA_GIANG, "uuid:slow-refusal", 12, visits_children="39")
    with serving(stack.app, settings) as url, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(httpx.post, f"{url}/submission", files=multipart(refused), headers=OPENROSA, timeout=30)
        assert publishing.wait(15)
        health = httpx.get(f"{url}/health", timeout=30)
        health_answered.set()
        assert answer.result().status_code == 400
    assert health.status_code == 200 and waited == [True]  # /health answered while the refusal was recorded


# --- 12. the accounts file is private, or the intake does not start ------------------------------------------------

def test_the_accounts_file_is_written_0600_and_one_others_may_read_stops_the_start(
        settings: Settings, accounts_file: Path):
    assert stat.S_IMODE(accounts_file.stat().st_mode) == 0o600
    accounts_file.chmod(0o644)
    with pytest.raises(ValueError, match=f"chmod 600 {re.escape(str(accounts_file))}"):
        # close: only if it started
        embedded_stack(settings.model_copy(update={"accounts_file": str(accounts_file)})).close()
    env = {**os.environ, "ACCOUNTS_FILE": str(accounts_file), "STATE_DIR": str(settings.state_dir),
           "STORE_DSN": settings.store_dsn, "FORMS_DIR": str(settings.forms_dir), "PORT": "1"}
    started = subprocess.run([sys.executable, "-m", "services.embedded"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert started.returncode != 0 and "chmod 600" in started.stderr, started.stderr[-2000:]


# --- 13. too many parts in one request: an OpenRosa answer --------------------------------------------------------

@pytest.mark.parametrize("kind", ["files", "fields"])
def test_thousands_of_parts_get_an_openrosa_400(client: TestClient, stack: EmbeddedStack, kind: str, xform: bytes):
    xml = report(xform, HA_GIANG, f"uuid:parts-{kind}", 12)
    if kind == "files":
        files = [("xml_submission_file", ("s.xml", xml, "text/xml"))] + [
            (f"p{n}.jpg", (f"p{n}.jpg", b"\xff\xd8", "image/jpeg")) for n in range(5000)]
        response = client.post("/submission", files=files)
    else:
        response = client.post("/submission", files=multipart(xml), data={f"f{n}": "x" for n in range(2000)})
    openrosa_refusal(response, 400, "The submission has more than")
    assert response.headers["content-type"].startswith("text/xml")
    assert stack.ledger.lookup(f"uuid:parts-{kind}") is None
