"""Property-based fuzzing of the submission parser and every form's validation (hypothesis).

1. Whatever the bytes (random, XML-ish, or a real submission of each form broken in many ways:
   answers changed to huge, negative, non-numeric, non-NFC values or dates far off, elements
   dropped, duplicated, renamed or nested deep, DTDs, entities, billion laughs, bad encodings),
   the parser and the form's ``parse`` give an event or ``SubmissionRejected`` with a reason code,
   never another exception.
2. The same through the real HTTP intake (an embedded stack): never a 5xx, always an
   ``OpenRosaResponse``, and the submission accepted before stays as it was.
3. Answers within each form's constraints are accepted, and the event carries them back.

Derandomised (the same examples each run, like ``test_openapi_fuzz.py``); ``bench/fuzz_intake.py``
runs the same entry point for longer under atheris.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from services.bootstrap import EmbeddedStack
from services.clock import today_local
from services.domain.errors import SubmissionRejected
from services.domain.forms.common import EARLIEST_DATE
from services.domain.forms.donation import MAX_BOOKS, MAX_MONEY_VND
from services.domain.forms.mobile_session import ACTIVITIES, MAX_VISITS
from services.domain.forms.reading_promotion import MAX_PARTICIPANTS
from services.domain.forms.rotation_movement import MAX_COPIES, MAX_TITLES
from services.domain.forms.staff_training import MAX_HOURS
from services.domain.forms.visit_log import MAX_VISITS as MAX_DAY_VISITS
from services.domain.submission import parse_submission
from services.tools.samples import SampleReport
from services.tools.submissions import fill_instance
from tests.fuzz_inputs import (
    BILLION_LAUGHS,
    DATE_FIELD,
    accept,
    anything,
    mutated,
    outcome,
    read_xforms,
    sample_reports,
    valid_submissions,
    xmlish,
)

FUZZ = settings(deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck))


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


@pytest.fixture(scope="module")
def xforms(forms_dir: Path) -> dict[str, bytes]:
    return read_xforms(forms_dir)


@pytest.fixture(scope="module")
def seeds(xforms: dict[str, bytes]) -> list[tuple[str, bytes]]:
    found = valid_submissions(xforms)
    for form_id, xml in found:  # the corpus starts from submissions that are accepted
        event = outcome(xml)
        assert not isinstance(event, SubmissionRejected), (form_id, event)
    assert {form_id for form_id, _ in found} == set(DATE_FIELD)
    return found


# --- 1. the parser and validation, directly -------------------------------------------------

HOSTILE = {
    "billion laughs": BILLION_LAUGHS.encode() + b"<visit_log id='visit_log'>&lol9;</visit_log>",
    "declared encoding unknown": b"<?xml version='1.0' encoding='no-such-codec'?><visit_log id='visit_log'/>",
    "elements nested 5000 deep": b"<visit_log id='visit_log'>" + b"<g>" * 5000 + b"</g>" * 5000 + b"</visit_log>",
}


def test_known_hostile_inputs_are_rejected_with_their_reason():
    cases = [
        (b"", "xml_malformed"),
        (b"\xff\xfe<a/>", "not_utf8"),
        (HOSTILE["billion laughs"], "xml_forbidden_construct"),
        (HOSTILE["declared encoding unknown"], "instance_id_missing"),  # was a LookupError (a 500)
        (HOSTILE["elements nested 5000 deep"], "xml_too_deep"),  # was a RecursionError (a 500)
    ]
    for raw, code in cases:
        got = outcome(raw)
        assert isinstance(got, SubmissionRejected) and got.code == code, (raw[:60], got)
    # UTF-8 whatever the declaration says: "Thư", not "ThÆ°" read as latin-1
    latin1 = ("<?xml version='1.0' encoding='latin-1'?><visit_log id='visit_log'><notes>Thư</notes>"
              "<meta><instanceID>uuid:1</instanceID></meta></visit_log>").encode()
    assert parse_submission(latin1).answer("notes") == "Thư"


def test_random_bytes_and_text_give_an_event_or_a_reason(seeds: list[tuple[str, bytes]]):
    @fuzz(400)
    @given(st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(str.encode), xmlish()))
    def check(raw: bytes) -> None:
        outcome(raw)

    check()


def test_broken_real_submissions_give_an_event_or_a_reason(seeds: list[tuple[str, bytes]]):
    @fuzz(1500)
    @given(mutated(seeds))
    def check(raw: bytes) -> None:
        outcome(raw)

    check()


# --- 2. through the HTTP intake -------------------------------------------------------------

def test_the_http_intake_never_answers_5xx_and_keeps_what_it_accepted(
        client: TestClient, stack: EmbeddedStack, seeds: list[tuple[str, bytes]]):
    form_id, kept = next(s for s in seeds if s[0] == "visit_log")
    assert client.post("/submission", files={"xml_submission_file": ("s.xml", kept, "text/xml")}).status_code == 201
    instance_id = accept(kept).event_id
    entry = stack.ledger.lookup(instance_id)
    [archived] = [e for e in stack.store.events() if e["event_id"] == instance_id]

    attachments = st.lists(st.tuples(st.sampled_from(["photo.jpg", "a.exe", "../x.png", ""]),
                                     st.binary(max_size=64),
                                     st.sampled_from(["image/jpeg", "image/png", "application/x-msdownload",
                                                      "text/csv", ""])), max_size=2)

    @fuzz(80)
    @given(anything(seeds), attachments, st.booleans())
    @example(HOSTILE["declared encoding unknown"], [], False)
    @example(HOSTILE["elements nested 5000 deep"], [("photo.jpg", b"\xff\xd8", "image/jpeg")], True)
    @example(HOSTILE["billion laughs"], [], False)
    def post(raw: bytes, files: list[tuple[str, bytes, str]], incomplete: bool) -> None:
        parts = [("xml_submission_file", ("submission.xml", raw, "text/xml")),
                 *((name or "f", (name, data, media)) for name, data, media in files)]
        response = client.post("/submission", files=parts, data={"*isIncomplete*": "yes"} if incomplete else {})
        assert response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("text/xml"), response.headers
        assert "<OpenRosaResponse" in response.text and " / " in response.text, response.text

    post()

    assert stack.ledger.lookup(instance_id) == entry
    assert stack.ledger.blobs.read(entry.raw_sha256) == kept
    assert [e for e in stack.store.events() if e["event_id"] == instance_id] == [archived]
    assert client.get("/health").status_code == 200


# --- 3. valid answers round-trip -----------------------------------------------------------

def _day() -> st.SearchStrategy[date]:
    return st.dates(min_value=EARLIEST_DATE, max_value=today_local())


def _split(draw, total: int, parts: int) -> list[int]:
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=parts - 1, max_size=parts - 1)))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


@st.composite
def valid_answers(draw, form_id: str) -> tuple[SampleReport, dict[str, str], dict[str, object]]:
    """(a sample of ``form_id``, answers to change in it, what the payload must then hold)."""
    report = draw(st.sampled_from(sample_reports()[form_id]))
    return (report, *draw(_changes(form_id, report)))


@st.composite
def _changes(draw, form_id: str, report: SampleReport) -> tuple[dict[str, str], dict[str, object]]:
    n = st.integers
    if form_id == "visit_log":
        total = draw(n(0, MAX_DAY_VISITS))
        children, female = draw(n(0, total)), draw(n(0, total))
        learning, information, reading, events = _split(draw, total, 4)
        values = {"visits_total": total, "visits_children": children, "visits_adults": total - children,
                  "visits_female": female, "visits_male": total - female,
                  "visits_ethnic_minority": draw(n(0, total)), "visits_learning": learning,
                  "visits_information": information, "visits_reading": reading, "visits_events": events,
                  **{k: draw(n(0, MAX_DAY_VISITS))
                     for k in ("virtual_visits", "loans", "renewals", "new_registrations")}}
        return {k: str(v) for k, v in values.items()}, values
    if form_id == "mobile_session":
        total = draw(n(0, MAX_VISITS))
        children = draw(n(0, total))
        latitude, longitude = draw(n(8_000_000, 24_000_000)) / 1e6, draw(n(102_000_000, 110_000_000)) / 1e6
        accuracy = draw(n(0, 100_000)) / 10
        activities = sorted(draw(st.sets(st.sampled_from(ACTIVITIES), min_size=1)))
        values = {"visits_total": total, "visits_children": children, "visits_adults": total - children,
                  "loans": draw(n(0, MAX_VISITS))}
        answers = {k: str(v) for k, v in values.items()} | {
            "location": f"{latitude} {longitude} {draw(n(-100, 3000))} {accuracy}", "activities": " ".join(activities)}
        return answers, values | {"latitude": latitude, "longitude": longitude, "location_accuracy_m": accuracy,
                                  "activities": activities}
    if form_id == "donation":
        books, money = draw(n(0, MAX_BOOKS)), draw(n(0, MAX_MONEY_VND))
        if books == money == 0:
            books = 1
        return {"books": str(books), "money_vnd": str(money)}, {"books": books, "money_vnd": money}
    if form_id == "reading_promotion":
        children = draw(n(0, MAX_PARTICIPANTS))
        adults = draw(n(0 if children else 1, MAX_PARTICIPANTS))
        return ({"participants_children": str(children), "participants_adults": str(adults)},
                {"participants_children": children, "participants_adults": adults,
                 "participants_total": children + adults})
    if form_id == "staff_training":
        hundredths = draw(n(1, int(MAX_HOURS * 100)))
        return {"hours": f"{hundredths / 100}"}, {"hours": hundredths / 100}
    if form_id == "rotation_movement":
        titles = draw(n(1, MAX_TITLES))
        copies = draw(n(titles, MAX_COPIES))
        lost = 0 if report.answers["movement"] == "dispatched" else draw(n(0, copies))
        damaged = 0 if report.answers["movement"] == "dispatched" else draw(n(0, copies - lost))
        values = {"titles": titles, "copies": copies, "ethnic_language_copies": draw(n(0, copies)),
                  "copies_lost": lost, "copies_damaged": damaged}
        return {k: str(v) for k, v in values.items()}, values
    return {}, {}


ROUNDTRIP_FORMS = ["visit_log", "mobile_session", "donation", "reading_promotion", "staff_training",
                   "rotation_movement", "library_registry"]


@pytest.mark.parametrize("form_id", ROUNDTRIP_FORMS)
def test_answers_within_the_constraints_are_accepted_and_carried(xforms: dict[str, bytes], form_id: str):
    @fuzz(60)
    @given(valid_answers(form_id), _day())
    def check(changed: tuple[SampleReport, dict[str, str], dict[str, object]], day: date) -> None:
        report, answers, expected = changed
        answers = report.answers | answers
        if form_id != "library_registry":  # a registration's opening date must precede it: keep the sample's
            answers[DATE_FIELD[form_id]] = day.isoformat()
        event = accept(fill_instance(xforms[form_id], answers, report.instance_id))
        assert event.event_id == report.instance_id and event.form_id == form_id
        assert event.occurred_on.isoformat() == answers[DATE_FIELD[form_id]]
        payload = json.loads(event.payload.model_dump_json())
        assert {k: payload[k] for k in expected} == expected

    check()
