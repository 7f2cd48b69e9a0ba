"""The registry follows its form (issue #16, item 3), end to end on the embedded stack over HTTP.

A library registered on a phone through the ``library_registry`` form is in the ``libraries.csv``
served to Collect at once (its md5 in the manifest changes, which is what makes Collect offer
the update), and the next visit log for it is accepted and counts in ``/v1/visits`` and, once it
joined the model, in K1. A hostile registration (an id that is taken, a name with hidden
characters or too long) is refused with its reason and changes nothing served.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from dataclasses import replace
from datetime import timedelta

from fastapi.testclient import TestClient

from services.clock import today_local
from services.domain.forms.library_registry import new_library_id
from services.domain.reference import Library, default_reference
from services.tools.submissions import fill_instance, multipart
from tests.conftest import visit_answers

REFERENCE = default_reference()
REGISTERED_UUID = "uuid:5eed0001-0000-4000-8000-000000000001"
NEW_ID = new_library_id(REGISTERED_UUID)


def _free_commune() -> tuple[str, str, str]:
    """A 2025 programme commune of Tuyên Quang (08) with no library in the packaged registry, and a
    former commune in it: (province, 2025 commune, legacy commune)."""
    taken = {lib.area("2025").commune_code for lib in REFERENCE.libraries.values()}
    commune = next(c for c in REFERENCE.communes_in("2025", "08") if REFERENCE.in_programme(c.code)
                   and c.code not in taken)
    return "08", commune.code, REFERENCE.legacy_communes_of(commune.code)[0].code


def registration(name: str, day: str) -> dict[str, str]:
    province, code_2025, code_legacy = _free_commune()
    return {"action": "register", "province": province, "commune_2025": code_2025, "commune_legacy": code_legacy,
            "name_vi": name, "library_type": "commune_public_library", "opened_on": "2025-09-01",
            "location": "21.8 105.2 0 5", "effective_date": day}


def submit(client: TestClient, form_id: str, answers: dict[str, str], instance_id: str):
    xform = client.get(f"/forms/{form_id}.xml").content
    return client.post("/submission", files=multipart(fill_instance(xform, answers, instance_id)))


def served_libraries(client: TestClient, form_id: str = "visit_log") -> tuple[str, dict[str, dict[str, str]]]:
    """The manifest's md5 of the form's ``libraries.csv``, and the file as served (id → row)."""
    manifest = client.get(f"/forms/{form_id}/manifest").text
    md5, url = re.search(r"<filename>libraries\.csv</filename><hash>md5:([0-9a-f]{32})</hash>"
                         r"<downloadUrl>([^<]+)</downloadUrl>", manifest).groups()  # type: ignore[union-attr]
    data = client.get(url).content
    assert hashlib.md5(data).hexdigest() == md5, "the manifest's hash is the served file's"
    return md5, {row["name"]: row for row in csv.DictReader(io.StringIO(data.decode("utf-8")))}


def k1(client: TestClient) -> dict:
    response = client.get("/v1/indicators", params={"scheme": "2025", "province": "08",
                                                    "as_of": today_local().isoformat()})
    assert response.status_code == 200, response.text
    return response.json()["indicators"]["K1"]


def test_a_library_registered_on_a_phone_can_report_visits_on_the_next_form_update(client: TestClient,
                                                                                 library: Library):
    today = today_local()
    day = today - timedelta(days=1)
    # A decomposed name (NFD, as some keyboards send it): served as the registry form gave it, in NFC.
    name = unicodedata.normalize("NFD", "Thư viện xã Thử Nghiệm Mới")
    hash_before, before = served_libraries(client)
    form_hash_before = re.search(r"<formID>visit_log</formID>.*?<hash>(md5:[0-9a-f]+)</hash>",
                                 client.get("/formList").text, re.S).group(1)  # type: ignore[union-attr]
    k1_before = k1(client)
    assert NEW_ID not in before
    refused_before = submit(client, "visit_log", visit_answers(_as_new(library), day, total=12), "uuid:rf-early")
    assert refused_before.status_code == 400 and "Get Blank Form" in refused_before.text

    registered = submit(client, "library_registry", registration(name, (today - timedelta(days=5)).isoformat()),
                        REGISTERED_UUID)
    assert registered.status_code == 201, registered.text

    # Collect's next form update: the manifest's md5 of libraries.csv changed, the form itself did not.
    hash_after, after = served_libraries(client)
    assert hash_after != hash_before
    assert after[NEW_ID] == {"name": NEW_ID, "label": unicodedata.normalize("NFC", name), "province": "08"}
    assert set(after) - set(before) == {NEW_ID}
    assert re.search(r"<formID>visit_log</formID>.*?<hash>(md5:[0-9a-f]+)</hash>", client.get("/formList").text,
                     re.S).group(1) == form_hash_before  # type: ignore[union-attr]
    assert NEW_ID in served_libraries(client, "library_registry")[1]  # its updates pick it from the list too

    # The next visit log for it (the same one that was refused before) is accepted and counts.
    visit = submit(client, "visit_log", visit_answers(_as_new(library), day, total=12), "uuid:rf-early")
    assert visit.status_code == 201, visit.text
    series = client.get("/v1/visits", params={"scheme": "2025", "library": NEW_ID, "start": day.isoformat(),
                                              "end": day.isoformat(), "granularity": "day"})
    assert series.status_code == 200, series.text
    assert [(p["visits_total"], p["reports"]) for p in series.json()["series"]] == [(12, 1)]

    # K1: registered is not yet in the model; once it joined (the registry form again, naming the
    # new library), its commune is covered.
    assert k1(client)["numerator"] == k1_before["numerator"]
    joined = submit(client, "library_registry", {"action": "model_joined", "province": "08", "library_id": NEW_ID,
                                                 "effective_date": day.isoformat()},
                    "uuid:5eed0002-0000-4000-8000-000000000002")
    assert joined.status_code == 201, joined.text
    assert k1(client)["numerator"] == k1_before["numerator"] + 1
    assert k1(client)["denominator"] == k1_before["denominator"]
    listed = client.get("/v1/libraries", params={"scheme": "2025", "province": "08"}).json()
    assert any(row["library_id"] == NEW_ID and row["name_vi"] == unicodedata.normalize("NFC", name)
               for row in listed["items"])


def _as_new(library: Library) -> Library:
    """A visit log's answers name the library and its 2025 province: the registered one's."""
    return replace(library, library_id=NEW_ID or "")


def test_a_registration_reusing_a_taken_id_is_refused_and_changes_nothing(client: TestClient):
    today = today_local().isoformat()
    assert submit(client, "library_registry", registration("Thư viện xã Thật", today), REGISTERED_UUID).status_code \
        == 201
    _, before = served_libraries(client)

    # Another instanceID whose first 8 hex digits are the same: the same LIB-NEW- id.
    crafted = submit(client, "library_registry", registration("Thư viện giả mạo", today),
                     "uuid:5eed0001-ffff-4fff-8fff-ffffffffffff")

    assert crafted.status_code == 400
    assert NEW_ID in crafted.text
    assert "đã có trong danh mục" in crafted.text and "already in the registry" in crafted.text
    assert served_libraries(client)[1] == before


def test_a_name_with_hidden_characters_or_too_long_is_refused(client: TestClient):
    today = today_local().isoformat()
    _, before = served_libraries(client)
    for n, (name, code) in enumerate((("Thư viện\u202exã Lạ", "U+202E"), ("Thư viện\nxã Lạ", "U+000A"),
                                      ("Thư viện xã " + "A" * 300, "at most 200"))):
        refused = submit(client, "library_registry", registration(name, today),
                         f"uuid:bad0000{n}-0000-4000-8000-000000000000")
        assert refused.status_code == 400, refused.text
        assert code in refused.text
    assert served_libraries(client)[1] == before
