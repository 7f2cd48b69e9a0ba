"""The intake speaks OpenRosa as ODK Collect expects (embedded stack, real forms)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import timedelta

from fastapi.testclient import TestClient

from services.clock import today_local
from services.domain.reference import Library, default_reference
from services.tools.submissions import fill_instance, multipart
from tests.conftest import visit_answers

XFORMS_LIST = "http://openrosa.org/xforms/xformsList"


def test_form_list_hash_is_the_md5_of_the_served_form(client: TestClient):
    listing = client.get("/formList")
    assert listing.status_code == 200
    assert listing.headers["X-OpenRosa-Version"] == "1.0"
    assert listing.headers["content-type"].startswith("text/xml")
    assert f'xmlns="{XFORMS_LIST}"' in listing.text
    download = re.search(r"<formID>visit_log</formID>.*?<downloadUrl>([^<]+)</downloadUrl>", listing.text,
                         re.S).group(1)
    served = client.get(download)
    assert served.status_code == 200
    assert f"<hash>md5:{hashlib.md5(served.content).hexdigest()}</hash>" in listing.text
    assert b'id="visit_log"' in served.content


def test_manifest_lists_the_picker_csvs_generated_from_the_registry(client: TestClient):
    listing = client.get("/formList").text
    manifest_url = re.search(r"<formID>visit_log</formID>.*?<manifestUrl>([^<]+)</manifestUrl>", listing,
                             re.S).group(1)
    manifest = client.get(manifest_url).text
    files = dict(re.findall(r"<filename>([^<]+)</filename><hash>md5:([0-9a-f]+)</hash>", manifest))
    assert set(files) == {"libraries.csv", "provinces.csv"}
    for url in re.findall(r"<downloadUrl>([^<]+)</downloadUrl>", manifest):
        body = client.get(url).content
        assert hashlib.md5(body).hexdigest() in files.values()
    libraries_url = next(u for u in re.findall(r"<downloadUrl>([^<]+)</downloadUrl>", manifest) if "libraries" in u)
    rows = list(csv.DictReader(io.StringIO(client.get(libraries_url).text)))
    assert {r["name"] for r in rows} == set(default_reference().libraries)
    assert {r["province"] for r in rows} <= {p.code for p in default_reference().provinces_in("2025")}


def test_head_submission_announces_the_size_limit(client: TestClient, settings):
    response = client.head("/submission")
    assert response.status_code == 204
    assert response.headers["X-OpenRosa-Accept-Content-Length"] == str(settings.max_submission_bytes)
    assert response.headers["X-OpenRosa-Version"] == "1.0"


def test_a_body_over_the_limit_gets_413(client: TestClient, settings):
    too_big = b"x" * (settings.max_submission_bytes + 1)
    response = client.post("/submission", files={"xml_submission_file": ("s.xml", too_big, "text/xml")})
    assert response.status_code == 413
    assert "OpenRosaResponse" in response.text


def test_a_post_without_the_submission_part_says_which_part_is_missing(client: TestClient):
    response = client.post("/submission", files={"photo.jpg": ("photo.jpg", b"\xff\xd8", "image/jpeg")})
    assert response.status_code == 400
    assert "xml_submission_file" in response.text


def test_an_unknown_library_is_refused_in_both_languages(client: TestClient, library: Library):
    answers = visit_answers(library, today_local() - timedelta(days=1))
    answers["library_id"] = "LIB-XX-9999"
    xml = fill_instance(client.get("/forms/visit_log.xml").content, answers, "uuid:unknown-lib")
    response = client.post("/submission", files=multipart(xml))
    assert response.status_code == 400
    assert "không có trong danh mục" in response.text and "not in the registry" in response.text


def test_an_xml_bomb_is_refused_without_expansion(client: TestClient):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b'<visit_log id="visit_log">&lol2;</visit_log>')
    response = client.post("/submission", files={"xml_submission_file": ("s.xml", bomb, "text/xml")})
    assert response.status_code == 400
    assert "DTD" in response.text or "forbidden" in response.text
