"""Every programme form round-trips: a sample filled into the served XForm → OpenRosa POST → a
validated event → archived once in the store's ``events`` table; and a wrong submission of
each form is refused with a reason in Vietnamese and in English, and archives nothing."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from functools import cache

import pytest
from fastapi.testclient import TestClient

from services.clock import today_local
from services.domain.errors import SubmissionRejected
from services.domain.forms import FORMS
from services.domain.forms.library_registry import new_library_id
from services.domain.reference import default_reference
from services.domain.submission import parse_submission
from services.tools.load_samples import last_month_end
from services.tools.samples import SampleReport, all_sample_reports
from services.tools.submissions import fill_instance, multipart
from tests.conftest import DATE_FIELD


@cache
def samples() -> dict[str, list[SampleReport]]:
    by_form: dict[str, list[SampleReport]] = {}
    for form_id, report in all_sample_reports(default_reference(), last_month_end(today_local())):
        by_form.setdefault(form_id, []).append(report)
    return by_form


def sample(form_id: str, **wanted: str) -> SampleReport:
    """The first sample of ``form_id`` whose answers include ``wanted``."""
    return next(r for r in samples()[form_id] if all(r.answers.get(k) == v for k, v in wanted.items()))


def post(client: TestClient, form_id: str, answers: dict[str, str], instance_id: str):
    xform = client.get(f"/forms/{form_id}.xml")
    assert xform.status_code == 200, xform.text
    xml = fill_instance(xform.content, answers, instance_id)
    return client.post("/submission", files=multipart(xml)), xml


def test_every_registered_form_is_served_and_has_samples(client: TestClient):
    listing = client.get("/formList").text
    for form_id in FORMS:
        assert f"<formID>{form_id}</formID>" in listing
        assert samples().get(form_id), f"no samples for {form_id}"
    ids = [r.instance_id for reports in samples().values() for r in reports]
    assert len(ids) == len(set(ids)), "sample instanceIDs are unique"
    until = date(2026, 6, 30)
    first, second = (list(all_sample_reports(default_reference(), until)) for _ in range(2))
    assert first == second, "samples are deterministic, instanceIDs included"
    assert all(date.fromisoformat(r.answers[DATE_FIELD[f]]) <= until for f, r in first)


ROUNDTRIPS = [(form_id, {}) for form_id in FORMS] + [
    ("library_registry", {"action": "register"}),
    ("library_registry", {"action": "update"}),
    ("rotation_movement", {"movement": "returned"}),
    ("rotation_movement", {"origin": "grassroots_library"}),
]


@pytest.mark.parametrize(("form_id", "wanted"), ROUNDTRIPS,
                         ids=[f"{f}-{'-'.join(w.values()) or 'first'}" for f, w in ROUNDTRIPS])
def test_a_sample_round_trips_to_the_event_archive(client: TestClient, stack, form_id: str, wanted: dict[str, str]):
    report = sample(form_id, **wanted)
    spec = FORMS[form_id]

    response, xml = post(client, form_id, report.answers, report.instance_id)
    assert response.status_code == 201, response.text
    again, _ = post(client, form_id, report.answers, report.instance_id)  # a resend changes nothing
    assert again.status_code == 201 and "already received" in again.text

    [archived] = stack.store.events(spec.event_type)
    assert archived["event_id"] == report.instance_id
    assert (archived["form_id"], archived["event_type"]) == (form_id, spec.event_type)
    assert archived["occurred_on"] == date.fromisoformat(report.answers[DATE_FIELD[form_id]])
    if report.answers.get("action") == "register":
        library_id = new_library_id(report.instance_id)
        assert library_id is not None and library_id.startswith("LIB-NEW-") and len(library_id) == 16
        assert archived["library_id"] == library_id
        assert (archived["commune_legacy"], archived["commune_2025"]) == (
            report.answers["commune_legacy"], report.answers["commune_2025"])
        assert archived["province_2025"] == report.answers["province"]
    else:
        library = default_reference().libraries[report.answers["library_id"]]
        assert archived["library_id"] == library.library_id
        assert (archived["province_legacy"], archived["commune_legacy"]) == (
            library.area("legacy").province_code, library.area("legacy").commune_code)
        assert archived["province_2025"] == library.area("2025").province_code

    payload = json.loads(archived["payload"])
    expected = spec.parse(parse_submission(xml), today_local(), default_reference()).payload
    assert payload == expected.model_dump(mode="json")
    _check_payload(form_id, report.answers, payload)


def _check_payload(form_id: str, answers: dict[str, str], payload: dict) -> None:
    """The answers that matter, as the payload carries them (typed, named as in the form)."""
    a = answers
    if form_id == "visit_log":
        assert payload["visits_total"] == int(a["visits_total"]) and payload["loans"] == int(a["loans"])
    elif form_id == "library_registry":
        assert payload["action"] == a["action"]
        if a["action"] == "register":
            assert (payload["name_vi"], payload["library_type"], payload["opened_on"]) == (
                a["name_vi"], a["library_type"], a["opened_on"])
            assert [payload["latitude"], payload["longitude"]] == [float(x) for x in a["location"].split()[:2]]
        elif a["action"] == "update":
            assert payload["status"] == a["status"] and payload["latitude"] is not None
    elif form_id == "rotation_movement":
        for name in ("titles", "copies", "ethnic_language_copies"):
            assert payload[name] == int(a[name])
        assert (payload["batch_id"], payload["movement"], payload["origin"]) == (
            a["batch_id"], a["movement"], a["origin"])
        assert payload["copies_lost"] == int(a.get("copies_lost", 0))
        assert payload["copies_damaged"] == int(a.get("copies_damaged", 0))
        assert payload["origin_library_id"] == a.get("origin_library_id")
    elif form_id == "mobile_session":
        reference = default_reference()
        assert payload["stop_areas"] == [
            {"scheme": "legacy", "province_code": reference.commune("legacy", a["stop_commune_legacy"]).province_code,
             "commune_code": a["stop_commune_legacy"]},
            {"scheme": "2025", "province_code": a["province"], "commune_code": a["stop_commune_2025"]}]
        assert payload["visits_children"] + payload["visits_adults"] == payload["visits_total"]
        assert payload["activities"] == sorted(a["activities"].split())
        assert (payload["team"], payload["vehicle"]) == (a["team"], a["vehicle"])
    elif form_id == "reading_promotion":
        assert payload["occasion"] == a["occasion"]
        assert payload["participants_total"] == int(a["participants_children"]) + int(a["participants_adults"])
        assert payload["co_organised_with_provincial_library"] is (a["co_organised_with_provincial_library"] == "yes")
    elif form_id == "staff_training":
        assert (payload["worker_id"], payload["course"], payload["result"]) == (a["worker_id"], a["course"],
                                                                                a["result"])
        assert payload["hours"] == float(a["hours"])
    elif form_id == "donation":
        assert (payload["books"], payload["money_vnd"]) == (int(a["books"]), int(a["money_vnd"]))
        assert (payload["donor_kind"], payload["donor_origin"]) == (a["donor_kind"], a["donor_origin"])


# --- refused submissions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    form_id: str
    name: str
    base: dict[str, str]  # which sample to start from
    changes: dict[str, str]
    code: str
    vi: str  # fragments of the Vietnamese and English messages
    en: str


def _other_legacy_commune(code_2025: str) -> str:
    """A legacy commune of the same province that did not go into ``code_2025``."""
    reference = default_reference()
    province = reference.commune("legacy", reference.legacy_communes_of(code_2025)[0].code).province_code
    return next(c.code for c in reference.communes_in("legacy", province) if not reference.maps_to(c.code, code_2025))


BAD = [
    Bad("visit_log", "children + adults differ from total", {}, {"visits_children": "99999"}, "totals_inconsistent",
        "trẻ em + người lớn", "children + adults"),
    Bad("library_registry", "unknown 2025 commune", {"action": "register"}, {"commune_2025": "99999"},
        "commune_unknown", "không có trong danh mục xã từ 01/07/2025", "is not a commune of the 2025 scheme"),
    Bad("library_registry", "legacy commune not in the chosen 2025 commune", {"action": "register"},
        {"commune_legacy": "<other>"}, "commune_mapping_mismatch", "không thuộc xã mới",
        "did not go into the 2025 commune"),
    Bad("library_registry", "2025 commune of another province", {"action": "register"}, {"province": "<other>"},
        "commune_not_in_province", "không thuộc tỉnh đã chọn", "is not in the chosen province"),
    Bad("library_registry", "library not in the registry", {"action": "model_joined"},
        {"library_id": "LIB-XX-9999"}, "library_unknown", "không có trong danh mục", "is not in the registry"),
    Bad("rotation_movement", "lost + damaged more than the copies", {"movement": "received"},
        {"copies": "40", "titles": "20", "ethnic_language_copies": "5", "copies_lost": "30", "copies_damaged": "15"},
        "totals_inconsistent", "mất (30) + hư hỏng (15) lớn hơn tổng số bản (40)",
        "Lost (30) + damaged (15) copies exceed the copies in the batch (40)"),
    Bad("rotation_movement", "ethnic-language copies more than the copies", {"movement": "dispatched"},
        {"copies": "40", "titles": "20", "ethnic_language_copies": "41"}, "totals_inconsistent",
        "tiếng dân tộc thiểu số (41) lớn hơn tổng số bản (40)", "Ethnic-language copies (41) exceed"),
    Bad("rotation_movement", "batch id not in the pattern", {}, {"batch_id": "lô 14"}, "text_pattern",
        "không đúng mẫu", "does not have the expected form"),
    Bad("mobile_session", "children + adults differ from total", {}, {"visits_total": "10", "visits_children": "8",
                                                                        "visits_adults": "8"},
        "totals_inconsistent", "trẻ em + người lớn (16) khác tổng lượt (10)",
        "children + adults (16) differs from total visits (10)"),
    Bad("mobile_session", "legacy stop commune not in the 2025 stop commune", {}, {"stop_commune_legacy": "<other>"},
        "commune_mapping_mismatch", "không thuộc xã mới", "did not go into the 2025 commune"),
    Bad("mobile_session", "GPS point outside Vietnam", {}, {"location": "48.8566 2.3522 35 5"},
        "geopoint_outside_vietnam", "nằm ngoài Việt Nam", "is outside Vietnam"),
    Bad("reading_promotion", "nobody took part", {}, {"participants_children": "0", "participants_adults": "0"},
        "count_zero", "ít nhất 1 người tham gia", "at least 1 participant"),
    Bad("reading_promotion", "occasion not in the list", {}, {"occasion": "tet"}, "choice_unknown",
        "không hợp lệ", "is not one of the choices"),
    Bad("staff_training", "a real name instead of the pseudonymous id", {}, {"worker_id": "Nguyễn Văn A"},
        "text_pattern", "không ghi họ tên", "never a name"),
    Bad("staff_training", "hours over 500", {}, {"hours": "600"}, "number_out_of_range",
        "phải lớn hơn 0 và không quá 500", "must be more than 0 and at most 500"),
    Bad("staff_training", "zero hours", {}, {"hours": "0"}, "number_out_of_range", "phải lớn hơn 0",
        "must be more than 0"),
    Bad("donation", "neither books nor money", {}, {"books": "0", "money_vnd": "0"}, "donation_empty",
        "Phải có sách hoặc tiền", "at least one must be more than 0"),
    Bad("donation", "money with thousands separators", {}, {"money_vnd": "5.000.000"}, "not_a_number",
        "không phải số nguyên", "is not a whole number"),
]


@pytest.mark.parametrize("bad", BAD, ids=[f"{b.form_id}-{b.name}" for b in BAD])
def test_a_wrong_submission_is_refused_in_both_languages(client: TestClient, stack, bad: Bad):
    report = sample(bad.form_id, **bad.base)
    answers = report.answers | bad.changes
    if answers.get("commune_legacy") == "<other>":
        answers["commune_legacy"] = _other_legacy_commune(answers["commune_2025"])
    if answers.get("stop_commune_legacy") == "<other>":
        answers["stop_commune_legacy"] = _other_legacy_commune(answers["stop_commune_2025"])
    if answers.get("province") == "<other>":
        answers["province"] = next(p.code for p in default_reference().provinces_in("2025")
                                   if p.code != report.answers["province"])

    response, xml = post(client, bad.form_id, answers, f"uuid:{uuid.uuid5(uuid.NAMESPACE_URL, bad.name)}")

    assert response.status_code == 400, response.text
    assert 'nature="submit_error"' in response.text
    assert bad.vi in response.text, response.text
    assert bad.en in response.text, response.text
    assert stack.store.events(FORMS[bad.form_id].event_type) == []
    with pytest.raises(SubmissionRejected) as refused:
        FORMS[bad.form_id].parse(parse_submission(xml), today_local(), default_reference())
    assert bad.code in [r.code for r in refused.value.reasons]
