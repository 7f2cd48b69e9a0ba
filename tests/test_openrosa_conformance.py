"""OpenRosa as ODK Collect behaves: headers, Digest accounts and scopes, attachments,
split uploads, edits that arrive before their original. Embedded stack, real forms."""

from __future__ import annotations

import base64
import hashlib
import time
import unicodedata
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack, embedded_stack
from services.clock import today_local
from services.config import Settings
from services.domain.reference import Library, default_reference
from services.intake.accounts import Account, Accounts, add_account, ha1
from services.intake.digest import DigestAuthenticator
from services.tools.submissions import fill_instance
from tests.conftest import OPENROSA, digest_header, visit_answers

DAY = today_local() - timedelta(days=2)


def xml_for(client: TestClient, library: Library, instance_id: str, total: int = 20, **extra) -> bytes:
    answers = visit_answers(library, DAY, total=total) | extra
    return fill_instance(client.get("/forms/visit_log.xml").content, answers, instance_id, extra.get("_dep"))


def month_total(client: TestClient, library: Library) -> int:
    area = library.area("legacy")
    series = client.get("/v1/visits", params={"scheme": "legacy", "province": area.province_code,
                                              "start": DAY.isoformat(), "end": DAY.isoformat(),
                                              "granularity": "day"}).json()["series"]
    return series[0]["visits_total"] if series else 0


# --- headers and content types -------------------------------------------------------------

def test_requests_without_the_openrosa_header_get_400(stack: EmbeddedStack):
    bare = TestClient(stack.app)
    for response in (bare.get("/formList"), bare.head("/submission"),
                     bare.post("/submission", files={"xml_submission_file": ("s.xml", b"<x/>", "text/xml")})):
        assert response.status_code == 400
        assert response.headers["X-OpenRosa-Version"] == "1.0"
    assert "X-OpenRosa-Version" in bare.get("/formList").text


def test_a_body_that_is_not_multipart_gets_415(client: TestClient, library: Library):
    response = client.post("/submission", content=xml_for(client, library, "uuid:raw"),
                           headers={"Content-Type": "text/xml"})
    assert response.status_code == 415 and "multipart/form-data" in response.text


def test_an_old_form_version_is_refused_with_what_to_do(client: TestClient, library: Library):
    xml = xml_for(client, library, "uuid:old").replace(b'version="', b'version="1999', 1)
    response = client.post("/submission", files={"xml_submission_file": ("s.xml", xml, "text/xml")})
    assert response.status_code == 400 and "Get Blank Form" in response.text


def test_invalid_utf8_is_refused_and_non_nfc_text_is_normalised(client: TestClient, stack, library: Library):
    broken = xml_for(client, library, "uuid:latin1", notes="MARK").replace(b"MARK", b"Th\xe9")
    response = client.post("/submission", files={"xml_submission_file": ("s.xml", broken, "text/xml")})
    assert response.status_code == 400 and "UTF-8" in response.text

    decomposed = unicodedata.normalize("NFD", "Thư viện xã")
    xml = xml_for(client, library, "uuid:nfd", notes=decomposed)
    assert client.post("/submission", files={"xml_submission_file": ("s.xml", xml, "text/xml")}).status_code == 201
    assert month_total(client, library) == 20


# --- attachments and split uploads ----------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 2000


def test_attachments_are_stored_by_content_not_by_file_name(client: TestClient, stack, library: Library):
    xml = xml_for(client, library, "uuid:photo")
    response = client.post("/submission", files=[
        ("xml_submission_file", ("submission.xml", xml, "text/xml")),
        ("../../etc/passwd.jpg", ("../../etc/passwd.jpg", JPEG, "image/jpeg")),
    ])
    assert response.status_code == 201
    [event] = stack.store.events("visit_logged")
    assert event["event_id"] == "uuid:photo"
    refs = stack.ledger.lookup("uuid:photo")
    assert refs is not None and '"name":"../../etc/passwd.jpg"' in refs.event_json
    assert stack.ledger.blobs.read(hashlib.sha256(JPEG).hexdigest()) == JPEG
    assert not Path("/etc/passwd.jpg").exists()


def test_attachment_type_and_size_limits(client: TestClient, settings: Settings, library: Library):
    xml = xml_for(client, library, "uuid:exe")
    wrong = client.post("/submission", files=[("xml_submission_file", ("s.xml", xml, "text/xml")),
                                              ("run.exe", ("run.exe", b"MZ", "application/x-msdownload"))])
    assert wrong.status_code == 415 and "application/x-msdownload" in wrong.text
    huge = b"\xff\xd8" + b"\x00" * (settings.max_attachment_bytes + 1)
    big = client.post("/submission", files=[("xml_submission_file", ("s.xml", xml, "text/xml")),
                                            ("p.jpg", ("p.jpg", huge, "image/jpeg"))])
    assert big.status_code == 413
    assert month_total(client, library) == 0  # neither was accepted


def test_a_split_upload_emits_one_event_with_every_attachment(client: TestClient, stack, library: Library):
    xml = xml_for(client, library, "uuid:split", total=33)
    parts = [("a.jpg", b"\xff\xd8a"), ("b.jpg", b"\xff\xd8b"), ("c.jpg", b"\xff\xd8c")]
    for i, (name, data) in enumerate(parts):
        files = [("xml_submission_file", ("s.xml", xml, "text/xml")), (name, (name, data, "image/jpeg"))]
        last = i == len(parts) - 1
        response = client.post("/submission", files=files, data={} if last else {"*isIncomplete*": "yes"})
        assert response.status_code == 201
        assert month_total(client, library) == (33 if last else 0)
    [event] = stack.store.events("visit_logged")
    assert event["event_id"] == "uuid:split"
    entry = stack.ledger.lookup("uuid:split")
    assert all(f'"name":"{name}"' in entry.event_json for name, _ in parts)


# --- edits that arrive before their original ------------------------------------------------

def test_an_edit_before_its_original_is_held_then_applied(client: TestClient, library: Library):
    xform = client.get("/forms/visit_log.xml").content
    edit = fill_instance(xform, visit_answers(library, DAY, total=25), "uuid:v2", deprecated_id="uuid:v1")
    original = fill_instance(xform, visit_answers(library, DAY, total=20), "uuid:v1")

    held = client.post("/submission", files={"xml_submission_file": ("s.xml", edit, "text/xml")})
    assert held.status_code == 201 and "bản gốc" in held.text
    assert month_total(client, library) == 0
    assert client.post("/submission", files={"xml_submission_file": ("s.xml", edit, "text/xml")}).status_code == 201

    assert client.post("/submission", files={"xml_submission_file": ("s.xml", original, "text/xml")}).status_code \
        == 201
    assert month_total(client, library) == 25  # the original, then replaced by the held edit


def test_an_edit_whose_original_never_comes_goes_to_the_dead_letters(settings: Settings, library: Library):
    built = embedded_stack(settings.model_copy(update={"held_timeout_hours": 0.0}))
    try:
        client = TestClient(built.app, headers=OPENROSA)
        edit = fill_instance(client.get("/forms/visit_log.xml").content, visit_answers(library, DAY, total=9),
                             "uuid:orphan", deprecated_id="uuid:lost")
        assert client.post("/submission", files={"xml_submission_file": ("s.xml", edit, "text/xml")}).status_code \
            == 201
        assert built.service.expire_held() == 1
        [letter] = built.store.dead_letters()
        assert (letter["instance_id"], letter["reason_code"]) == ("uuid:orphan", "predecessor_missing")
        assert "uuid:lost" in letter["reason_en"] and 'deprecatedID' not in letter["reason_en"]
        assert "<instanceID>uuid:orphan</instanceID>" in letter["raw_xml"]
    finally:
        built.close()


# --- accounts -------------------------------------------------------------------------------

@pytest.fixture
def secured(settings: Settings, tmp_path: Path) -> Iterator[EmbeddedStack]:
    accounts = tmp_path / "accounts.json"
    add_account(accounts, "doi-hg", "mat-khau-hg", ["legacy:02"])
    add_account(accounts, "doi-lc", "mat-khau-lc", ["2025:12"])
    built = embedded_stack(settings.model_copy(update={"accounts_file": str(accounts)}))
    try:
        yield built
    finally:
        built.close()


def _library(legacy_province: str) -> Library:
    return next(lib for lib in default_reference().libraries.values()
                if lib.area("legacy").province_code == legacy_province)


def test_digest_challenge_then_access(secured: EmbeddedStack):
    client = TestClient(secured.app, headers=OPENROSA)
    challenge = client.head("/submission")
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"].startswith('Digest realm="thuvien-coso"')
    assert client.head("/submission", auth=httpx.DigestAuth("doi-hg", "sai")).status_code == 401
    ok = client.head("/submission", auth=httpx.DigestAuth("doi-hg", "mat-khau-hg"))
    assert ok.status_code == 204 and ok.headers["X-OpenRosa-Accept-Content-Length"]


def test_basic_is_refused_over_http_and_accepted_over_https(secured: EmbeddedStack):
    basic = {"Authorization": "Basic " + base64.b64encode(b"doi-hg:mat-khau-hg").decode()}
    plain = TestClient(secured.app, headers=OPENROSA)
    assert plain.get("/formList", headers=basic).status_code == 401
    # A client's own X-Forwarded-Proto is not HTTPS (proxies are trusted only from TRUSTED_PROXIES).
    assert plain.get("/formList", headers={**basic, "X-Forwarded-Proto": "https"}).status_code == 401
    tls = TestClient(secured.app, headers=OPENROSA, base_url="https://testserver")
    assert tls.get("/formList", headers=basic).status_code == 200


def test_a_submission_outside_the_account_provinces_gets_403_and_is_kept(secured: EmbeddedStack):
    client = TestClient(secured.app, headers=OPENROSA)
    client.auth = httpx.DigestAuth("doi-hg", "mat-khau-hg")
    ha_giang, lai_chau = _library("02"), _library("12")
    xform = client.get("/forms/visit_log.xml").content
    inside = fill_instance(xform, visit_answers(ha_giang, DAY, total=12), "uuid:in-scope")
    outside = fill_instance(xform, visit_answers(lai_chau, DAY, total=13), "uuid:out-of-scope")

    assert client.post("/submission", files={"xml_submission_file": ("s.xml", inside, "text/xml")}).status_code == 201
    refused = client.post("/submission", files={"xml_submission_file": ("s.xml", outside, "text/xml")})

    assert refused.status_code == 403 and "doi-hg" in refused.text
    [letter] = secured.store.dead_letters()
    assert (letter["instance_id"], letter["reason_code"], letter["submitter"]) == (
        "uuid:out-of-scope", "out_of_scope", "doi-hg")
    assert "uuid:out-of-scope" in letter["raw_xml"]
    [event] = secured.store.events("visit_logged")
    assert (event["event_id"], event["submitter"]) == ("uuid:in-scope", "doi-hg")
    # The Lai Châu team, scoped under the 2025 scheme, may send it: the dead letter is then resolved.
    other = TestClient(secured.app, headers=OPENROSA)
    other.auth = httpx.DigestAuth("doi-lc", "mat-khau-lc")
    assert other.post("/submission", files={"xml_submission_file": ("s.xml", outside, "text/xml")}).status_code \
        == 201
    assert secured.store.dead_letters() == []
    assert len(secured.store.dead_letters(open_only=False)) == 1


def test_an_expired_nonce_is_answered_stale_and_a_wrong_uri_is_refused():
    account = Account("doi-hg", ha1("doi-hg", "thuvien-coso", "mat-khau-hg"), frozenset({"legacy:02"}))
    authenticator = DigestAuthenticator(Accounts("thuvien-coso", {"doi-hg": account}), lifetime_s=0)
    header = digest_header("doi-hg", "mat-khau-hg", "HEAD", "/submission", authenticator.challenge())
    time.sleep(1.1)

    stale = authenticator.authenticate("HEAD", header, https=False, uri="/submission")
    assert stale.account is None and stale.stale  # Collect retries with a fresh nonce, no new password
    assert "stale=true" in authenticator.challenge(stale=True)
    elsewhere = authenticator.authenticate("HEAD", header, https=False, uri="/formList")
    assert elsewhere.account is None and not elsewhere.stale


def test_operators_list_and_redrive_dead_letters(secured: EmbeddedStack, tmp_path: Path):
    from services.tools.deadletters import list_dead_letters, redrive

    field = TestClient(secured.app, headers=OPENROSA)
    field.auth = httpx.DigestAuth("doi-hg", "mat-khau-hg")
    outside = fill_instance(field.get("/forms/visit_log.xml").content, visit_answers(_library("12"), DAY, total=8),
                            "uuid:redrive-me")
    assert field.post("/submission", files={"xml_submission_file": ("s.xml", outside, "text/xml")}).status_code \
        == 403

    query = TestClient(secured.app, headers={"X-API-Key": secured.demo_api_key or ""})
    [letter] = list_dead_letters(query)
    assert (letter["reason_code"], letter["instance_id"]) == ("out_of_scope", "uuid:redrive-me")
    assert "raw_xml" not in letter  # listings stay small; the raw XML is fetched per letter

    wrong_team = TestClient(secured.app)
    wrong_team.auth = httpx.DigestAuth("doi-hg", "mat-khau-hg")
    assert redrive(query, wrong_team, letter["dead_letter_id"]).status == 403  # the cause is not fixed yet
    right_team = TestClient(secured.app)
    right_team.auth = httpx.DigestAuth("doi-lc", "mat-khau-lc")
    assert redrive(query, right_team, letter["dead_letter_id"]).status == 201

    assert list_dead_letters(query) == []
    assert [r["resolved"] for r in list_dead_letters(query, include_resolved=True)] == [True]
    assert redrive(query, right_team, "no-such-id").status == 404
