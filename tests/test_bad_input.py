"""The bad-input corpus: every case gets its own status and reason, nothing crashes, and
what was accepted before stays accepted. The README's table lists the same cases."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from fastapi.testclient import TestClient

from services.bootstrap import intake_app
from services.clock import today_local
from services.config import REPO_ROOT, Settings
from services.domain.reference import Library
from services.intake.ledger import SqliteLedger
from services.tools.submissions import fill_instance
from tests.conftest import OPENROSA, visit_answers
from tests.kafka.broker import free_port

DAY = today_local() - timedelta(days=1)


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    reason: str
    request: Callable[[TestClient, bytes, Library], object]


def _xml(xform: bytes, library: Library, instance_id: str, **answers: str) -> bytes:
    return fill_instance(xform, visit_answers(library, DAY) | answers, instance_id)


def _post(client: TestClient, xml: bytes, **kwargs):
    return client.post("/submission", files={"xml_submission_file": ("s.xml", xml, "text/xml")}, **kwargs)


BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                   for i in range(1, 10))
        + b']><visit_log id="visit_log">&lol9;</visit_log>')
XXE = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<visit_log id="visit_log"><notes>&x;</notes></visit_log>')

def _chunks(size: int) -> Iterator[bytes]:
    """A multipart body of ``size`` bytes and more, sent without a Content-Length."""
    yield b'--b\r\nContent-Disposition: form-data; name="xml_submission_file"; filename="s.xml"\r\n\r\n'
    for _ in range(size // 65536 + 1):
        yield b"x" * 65536
    yield b"\r\n--b--\r\n"


CORPUS = [
    Case("no X-OpenRosa-Version header", 400, "openrosa_version_missing",
         lambda c, x, lib: c.post("/submission", headers={"X-OpenRosa-Version": ""},
                                  files={"xml_submission_file": ("s.xml", _xml(x, lib, "uuid:b1"), "text/xml")})),
    Case("body not multipart", 415, "not_multipart",
         lambda c, x, lib: c.post("/submission", content=_xml(x, lib, "uuid:b2"),
                                  headers={"Content-Type": "application/xml"})),
    Case("no xml_submission_file part", 400, "no_submission_file",
         lambda c, x, lib: c.post("/submission", files={"other": ("o.xml", b"<x/>", "text/xml")})),
    Case("body over MAX_SUBMISSION_BYTES", 413, "too_large",
         lambda c, x, lib: c.post("/submission", files={"xml_submission_file": ("s.xml", b"x" * 10_485_761,
                                                                                  "text/xml")})),
    Case("body over MAX_SUBMISSION_BYTES sent chunked (no Content-Length)", 413, "too_large",
         lambda c, x, lib: c.post("/submission", content=_chunks(10_485_761), headers={
             "Content-Type": "multipart/form-data; boundary=b"})),
    Case("more than 100 files in one request", 400, "too_many_parts",
         lambda c, x, lib: c.post("/submission", files=[
             ("xml_submission_file", ("s.xml", _xml(x, lib, "uuid:b3"), "text/xml")),
             *((f"p{n}.jpg", (f"p{n}.jpg", b"\xff\xd8", "image/jpeg")) for n in range(101))])),
    Case("more than 20 fields in one request", 400, "too_many_parts",
         lambda c, x, lib: c.post("/submission", files={"xml_submission_file": ("s.xml", _xml(x, lib, "uuid:b4"),
                                                                                "text/xml")},
                                  data={f"f{n}": "x" for n in range(21)})),
    Case("attachment of a refused type", 415, "attachment_type",
         lambda c, x, lib: c.post("/submission", files=[
             ("xml_submission_file", ("s.xml", _xml(x, lib, "uuid:b5"), "text/xml")),
             ("a.exe", ("a.exe", b"MZ", "application/x-msdownload"))])),
    Case("malformed XML", 400, "xml_malformed", lambda c, x, lib: _post(c, b"<visit_log><oops></visit_log>")),
    Case("entity expansion (billion laughs)", 400, "xml_forbidden_construct", lambda c, x, lib: _post(c, BOMB)),
    Case("external entity (XXE)", 400, "xml_forbidden_construct", lambda c, x, lib: _post(c, XXE)),
    Case("elements nested more than 32 deep", 400, "xml_too_deep",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b8").replace(b"<meta>", b"<g>" * 40_000 + b"1"
                                                                     + b"</g>" * 40_000 + b"<meta>", 1))),
    Case("not UTF-8", 400, "not_utf8",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b9", notes="MARK").replace(b"MARK", b"\xff\xfe"))),
    Case("no instanceID", 400, "instance_id_missing",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b10").replace(b"<instanceID>uuid:b10</instanceID>", b""))),
    Case("unknown form", 400, "form_unknown",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b11").replace(b'id="visit_log"', b'id="survey_x"'))),
    Case("unknown form version", 400, "form_version_unknown",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b12").replace(b'version="', b'version="0', 1))),
    Case("unknown library", 400, "library_unknown",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b13", library_id="LIB-ZZ-0000"))),
    Case("date in the future", 400, "date_in_future",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b14", report_date=(today_local() + timedelta(days=3))
                                         .isoformat()))),
    Case("date before the programme", 400, "date_too_old",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b15", report_date="2019-12-31"))),
    Case("negative count", 400, "negative_count",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b16", virtual_visits="-4"))),
    Case("count that is not a number", 400, "not_a_number",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b17", loans="mười"))),
    Case("count over the form's bound", 400, "number_too_large",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b19", virtual_visits="100001"))),
    Case("inconsistent totals", 400, "totals_inconsistent",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:b18", visits_children="39"))),
    Case("same instanceID, other answers", 409, "instance_id_conflict",
         lambda c, x, lib: _post(c, _xml(x, lib, "uuid:good", loans="1"))),
]


def _rejections(client: TestClient) -> dict[tuple[str, str], float]:
    found = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("intake_submissions_rejected_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            found[(labels["status"], labels["reason"])] = found.get((labels["status"], labels["reason"]), 0) + \
                float(line.split()[-1])
    return found


def test_every_bad_input_gets_its_status_and_reason_and_loses_nothing(client: TestClient, library: Library):
    xform = client.get("/forms/visit_log.xml").content
    assert _post(client, _xml(xform, library, "uuid:good", visits_total="40")).status_code == 201

    for case in CORPUS:
        before = _rejections(client).get((str(case.status), case.reason), 0)
        response = case.request(client, xform, library)
        assert response.status_code == case.status, (case.name, response.text)  # type: ignore[attr-defined]
        assert "OpenRosaResponse" in response.text and " / " in response.text, case.name  # type: ignore[attr-defined]
        assert _rejections(client).get((str(case.status), case.reason), 0) == before + 1, case.name

    assert client.get("/health").status_code == 200
    area = library.area("legacy")
    [day] = client.get("/v1/visits", params={"scheme": "legacy", "province": area.province_code, "granularity": "day",
                                             "start": DAY.isoformat(), "end": DAY.isoformat()}).json()["series"]
    assert (day["visits_total"], day["reports"]) == (40, 1)  # the accepted one, and only it


def test_the_readme_table_lists_every_case():
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    for case in CORPUS:
        assert re.search(rf"\| {case.status} \| `{case.reason}` \|", readme), case.reason


def test_a_broker_that_cannot_ack_gets_503_with_retry_after(settings: Settings, library: Library):
    """No broker listens on the port: the intake must not say 201 for what it could not make durable."""
    down = settings.model_copy(update={"bus": "kafka", "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
                                       "kafka_publish_timeout_s": 2.0})
    with TestClient(intake_app(down), headers=OPENROSA) as client:
        xml = _xml(client.get("/forms/visit_log.xml").content, library, "uuid:no-broker")
        response = _post(client, xml)
        assert response.status_code == 503 and response.headers["Retry-After"] == "30"
        assert _rejections(client).get(("503", "bus_unavailable"), 0) >= 1
    # Not recorded as accepted: the retry, once the broker is back, is a first submission, not a duplicate.
    ledger = SqliteLedger(settings.state_dir)
    try:
        assert ledger.lookup("uuid:no-broker") is None
    finally:
        ledger.close()


def test_refusals_are_recorded_for_operators(client: TestClient, stack, library: Library):
    xform = client.get("/forms/visit_log.xml").content
    assert _post(client, _xml(xform, library, "uuid:rec-1", visits_children="39")).status_code == 400
    assert _post(client, b"<broken").status_code == 400
    rows = stack.store.select("SELECT instance_id, form_id, status, reason_code, reason_vi, reason_en "
                              "FROM rejections FINAL ORDER BY received_at")
    assert [(r["instance_id"], r["form_id"], r["status"], r["reason_code"]) for r in rows] == [
        ("uuid:rec-1", "visit_log", 400, "totals_inconsistent"), ("", "unknown", 400, "xml_malformed")]
    assert "trẻ em + người lớn" in rows[0]["reason_vi"] and "children + adults" in rows[0]["reason_en"]
