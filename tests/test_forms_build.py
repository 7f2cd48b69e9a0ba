"""Form build: odk-forms/*.xlsx -> XForms, checked by ODK Validate (Java)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import import_module
from pathlib import Path

import pytest
from openpyxl import Workbook
from pyxform.validators.odk_validate import ODKValidateError
from pyxform.xls2xform import convert

from services.domain.forms import FORMS
from services.intake.forms import BuiltForm, FormBuildError, build_all, build_form

REPO = Path(__file__).resolve().parents[1]
VISIT_LOG = REPO / "odk-forms" / "visit_log.xlsx"

XF = "{http://www.w3.org/2002/xforms}"
H = "{http://www.w3.org/1999/xhtml}"
VI = "Tiếng Việt (vi)"
EN = "English (en)"

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="ODK Validate needs Java on PATH")


def java(fn):
    return pytest.mark.java(needs_java(fn))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> BuiltForm:
    if shutil.which("java") is None:
        pytest.skip("ODK Validate needs Java on PATH")
    return build_form(VISIT_LOG, tmp_path_factory.mktemp("forms"), validate=True)


def _binds(xml_path: Path) -> dict[str, dict[str, str]]:
    root = ET.parse(xml_path).getroot()
    return {b.get("nodeset"): dict(b.attrib) for b in root.iter(f"{XF}bind")}


# --- (a) the real form builds and carries what the pipeline relies on ---------------------------


@java
def test_visit_log_builds_with_validate(built: BuiltForm):
    assert built.form_id == "visit_log"
    assert built.version == "2026112501"
    assert built.title == "Sổ ghi lượt phục vụ thư viện / Library visit log"
    assert built.xml_path.name == "visit_log.xml"
    assert built.media_files == ["libraries.csv", "provinces.csv"]

    root = ET.parse(built.xml_path).getroot()
    data = root.find(f"{H}head/{XF}model/{XF}instance/{XF}visit_log")
    assert data is not None, "primary instance root should be <visit_log>"
    assert data.get("id") == "visit_log"
    assert data.get("version") == "2026112501"
    assert data.find(f"{XF}meta/{XF}instanceID") is not None


@java
def test_visit_log_fields_and_paths(built: BuiltForm):
    binds = _binds(built.xml_path)
    expected = {
        "/visit_log/start": "dateTime",
        "/visit_log/end": "dateTime",
        "/visit_log/province": "string",
        "/visit_log/library_id": "string",
        "/visit_log/report_date": "date",
        "/visit_log/virtual_visits": "int",
        "/visit_log/notes": "string",
        "/visit_log/meta/instanceID": "string",
    }
    for f in ("total", "children", "adults", "female", "male", "ethnic_minority"):
        expected[f"/visit_log/visits/visits_{f}"] = "int"
    for f in ("learning", "information", "reading", "events"):
        expected[f"/visit_log/by_purpose/visits_{f}"] = "int"
    for f in ("loans", "renewals", "new_registrations"):
        expected[f"/visit_log/circulation/{f}"] = "int"
    for nodeset, typ in expected.items():
        assert nodeset in binds, nodeset
        assert binds[nodeset]["type"] == typ, nodeset
    # every count is required and bounded below
    for nodeset, typ in expected.items():
        if typ == "int":
            assert binds[nodeset].get("required") == "true()", nodeset
            assert ". >= 0" in binds[nodeset]["constraint"], nodeset
    assert binds["/visit_log/library_id"]["required"] == "true()"
    assert "required" not in binds["/visit_log/notes"]


@java
def test_visit_log_constraints(built: BuiltForm):
    binds = _binds(built.xml_path)

    def c(path: str) -> str:
        return " ".join(binds[path]["constraint"].split())

    assert c("/visit_log/report_date") == ". <= today() and . >= date('2020-01-01')"
    assert c("/visit_log/visits/visits_total") == ". >= 0 and . <= 100000"
    assert c("/visit_log/visits/visits_adults") == (
        ". >= 0 and /visit_log/visits/visits_children + . = /visit_log/visits/visits_total"
    )
    assert c("/visit_log/visits/visits_male") == (
        ". >= 0 and /visit_log/visits/visits_female + . = /visit_log/visits/visits_total"
    )
    assert c("/visit_log/visits/visits_ethnic_minority") == ". >= 0 and . <= /visit_log/visits/visits_total"
    assert c("/visit_log/by_purpose/visits_events") == (
        ". >= 0 and /visit_log/by_purpose/visits_learning + /visit_log/by_purpose/visits_information"
        " + /visit_log/by_purpose/visits_reading + . = /visit_log/visits/visits_total"
    )
    assert c("/visit_log/virtual_visits") == ". >= 0 and . <= 100000"

    root = ET.parse(built.xml_path).getroot()
    itemset = next(
        s.find(f"{XF}itemset") for s in root.iter(f"{XF}select1") if s.get("ref") == "/visit_log/library_id"
    )
    assert " ".join(itemset.get("nodeset").split()) == (
        "instance('libraries')/root/item[province= /visit_log/province ]"
    )


@java
def test_visit_log_two_languages(built: BuiltForm):
    root = ET.parse(built.xml_path).getroot()
    translations = {t.get("lang"): t for t in root.iter(f"{XF}translation")}
    assert set(translations) == {VI, EN}
    assert translations[VI].get("default") == "true()"

    def text(lang: str, text_id: str) -> str:
        for t in translations[lang].iter(f"{XF}text"):
            if t.get("id") == text_id:
                return "".join(t.find(f"{XF}value").itertext())
        raise AssertionError(f"{lang}: no itext {text_id}")

    msg = "/visit_log/report_date:jr:constraintMsg"
    assert "Ngày báo cáo không được ở tương lai" in text(VI, msg)
    assert "Report date cannot be in the future" in text(EN, msg)
    assert text(VI, "/visit_log/visits/visits_total:label").startswith("Tổng số lượt")
    assert text(EN, "/visit_log/visits/visits_total:label").startswith("Total visits")
    # every constraint has a message in both languages
    for nodeset, bind in _binds(built.xml_path).items():
        if "constraint" in bind:
            for lang in (VI, EN):
                assert text(lang, f"{nodeset}:jr:constraintMsg").strip(), (lang, nodeset)


# --- (c) md5 --------------------------------------------------------------------------------------


@java
def test_md5_matches_written_file(built: BuiltForm):
    assert built.md5 == hashlib.md5(built.xml_path.read_bytes()).hexdigest()


def test_build_without_validate_needs_no_java(tmp_path: Path):
    form = build_form(VISIT_LOG, tmp_path, validate=False)
    assert form.form_id == "visit_log"
    assert form.md5 == hashlib.md5((tmp_path / "visit_log.xml").read_bytes()).hexdigest()


# --- (b) a form pyxform accepts but ODK Validate rejects ------------------------------------------


def _write_broken_form(path: Path) -> Path:
    """A calculate calling a function JavaRosa does not have.

    pyxform does not check XPath function names; ODK Validate evaluates calculations
    when it loads the form and rejects it. (An unknown function in a *constraint*
    would not do: Validate does not evaluate constraints.)
    """
    wb = Workbook()
    ws = wb.active
    ws.title = "survey"
    ws.append(["type", "name", "label", "calculation"])
    ws.append(["integer", "visits_total", "Visits", None])
    ws.append(["calculate", "doubled", None, "no_such_function(${visits_total})"])
    settings = wb.create_sheet("settings")
    settings.append(["form_id", "version"])
    settings.append(["broken_form", "2026112501"])
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def test_broken_form_passes_pyxform_itself(tmp_path: Path):
    xlsx = _write_broken_form(tmp_path / "broken.xlsx")
    result = convert(xlsform=str(xlsx), validate=False)
    assert "no_such_function" in result.xform


@java
def test_broken_form_raises_form_build_error_from_validate(tmp_path: Path):
    xlsx = _write_broken_form(tmp_path / "broken.xlsx")
    out = tmp_path / "out"
    with pytest.raises(FormBuildError) as info:
        build_form(xlsx, out, validate=True)
    err = info.value
    assert err.stage == "odk_validate"
    assert isinstance(err.__cause__, ODKValidateError)
    assert "ODK Validate Errors" in err.message
    assert "no_such_function" in err.message
    assert "broken.xlsx" in str(err)
    assert not (out / "broken_form.xml").exists()


@java
def test_build_all_names_the_failing_file(tmp_path: Path):
    forms = tmp_path / "forms"
    forms.mkdir()
    shutil.copy(VISIT_LOG, forms / "visit_log.xlsx")
    _write_broken_form(forms / "zz_broken.xlsx")
    (forms / "~$visit_log.xlsx").write_bytes(b"excel lock file, not a workbook")
    with pytest.raises(FormBuildError) as info:
        build_all(forms, tmp_path / "out")
    assert info.value.path == forms / "zz_broken.xlsx"
    assert "zz_broken.xlsx" in str(info.value)


@java
def test_cli_exits_non_zero_on_broken_form(tmp_path: Path):
    forms = tmp_path / "forms"
    _write_broken_form(forms / "broken.xlsx")
    proc = subprocess.run(
        [sys.executable, "-m", "services.intake.forms", str(forms), str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "broken.xlsx" in proc.stderr
    assert "ODK Validate" in proc.stderr
    assert "no_such_function" in proc.stderr


@java
def test_cli_builds_the_repo_forms(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "services.intake.forms", "odk-forms", str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line.split("\t")[0]: line for line in proc.stdout.splitlines()}
    assert set(lines) == set(FORMS), "one line per form, and every registered form has an XLSForm"
    assert lines["visit_log"].startswith("visit_log\t2026112501\tmd5:")
    for form_id in FORMS:
        assert (tmp_path / "out" / f"{form_id}.xml").is_file()


# --- (d) every programme form: built with Validate, two languages, ids and media as the intake needs ----


@pytest.fixture(scope="module")
def all_built(tmp_path_factory) -> dict[str, BuiltForm]:
    if shutil.which("java") is None:
        pytest.skip("ODK Validate needs Java on PATH")
    return {form.form_id: form for form in build_all(REPO / "odk-forms", tmp_path_factory.mktemp("all_forms"))}


_COMMUNE_MEDIA = ["communes_2025.csv", "communes_legacy.csv", "libraries.csv", "provinces.csv"]
_MEDIA = {"library_registry": _COMMUNE_MEDIA, "mobile_session": _COMMUNE_MEDIA}


@java
@pytest.mark.parametrize("form_id", sorted(FORMS))
def test_every_form_builds_with_validate_in_two_languages(all_built: dict[str, BuiltForm], form_id: str):
    built = all_built[form_id]
    assert built.xml_path.name == f"{form_id}.xml"
    assert re.fullmatch(r"20\d{6}\d{2}", built.version), built.version
    assert " / " in built.title, "title: Vietnamese / English"
    assert built.media_files == _MEDIA.get(form_id, ["libraries.csv", "provinces.csv"])
    root = ET.parse(built.xml_path).getroot()
    data = root.find(f"{H}head/{XF}model/{XF}instance/{XF}{form_id}")
    assert data is not None, f"primary instance root should be <{form_id}> (settings: name = form_id)"
    assert data.get("id") == form_id and data.get("version") == built.version

    translations = {t.get("lang"): t for t in root.iter(f"{XF}translation")}
    assert set(translations) == {VI, EN}
    assert translations[VI].get("default") == "true()"
    texts = {lang: {t.get("id"): "".join(t.find(f"{XF}value").itertext()).strip()
                    for t in translation.iter(f"{XF}text")} for lang, translation in translations.items()}
    binds = _binds(built.xml_path)
    for nodeset, bind in binds.items():
        for attribute, suffix in (("constraint", "constraintMsg"), ("required", "requiredMsg")):
            if attribute in bind and bind[attribute] != "false()":
                for lang in (VI, EN):
                    assert texts[lang].get(f"{nodeset}:jr:{suffix}"), (lang, nodeset, suffix)
    for text_id, vi in texts[VI].items():  # every label and hint exists in both languages
        if text_id.endswith((":label", ":hint")):
            assert vi and texts[EN].get(text_id), text_id


@java
def test_commune_pickers_record_both_schemes(all_built: dict[str, BuiltForm]):
    for form_id, prefix in (("library_registry", "/library_registry/library/"), ("mobile_session",
                                                                                    "/mobile_session/stop/stop_")):
        root = ET.parse(all_built[form_id].xml_path).getroot()
        itemsets = {s.get("ref"): " ".join(s.find(f"{XF}itemset").get("nodeset").split())
                    for s in root.iter(f"{XF}select1") if s.find(f"{XF}itemset") is not None}
        assert itemsets[f"{prefix}commune_2025"] == (
            f"instance('communes_2025')/root/item[province= /{form_id}/province ]")
        assert itemsets[f"{prefix}commune_legacy"] == (
            f"instance('communes_legacy')/root/item[code_2025= {prefix}commune_2025 ]")


@java
@pytest.mark.parametrize("form_id", sorted(FORMS))
def test_built_form_carries_the_server_rules(all_built: dict[str, BuiltForm], form_id: str):
    """The XForm the phones get (not only the .xlsx) holds each rule of the form module's RULES
    (tests/test_form_rules.py checks the .xlsx, the messages and the refusals)."""
    binds = _binds(all_built[form_id].xml_path)
    paths = {nodeset.rsplit("/", 1)[-1]: nodeset for nodeset in binds}
    for rule in import_module(f"services.domain.forms.{form_id}").RULES:
        if rule.not_in_form or rule.kind == "choice":
            continue
        constraint = " ".join(binds[paths[rule.field]].get("constraint", "").split())
        for term in rule.xpath_terms():
            expected = " ".join(re.sub(r"\$\{(\w+)\}", lambda m: f" {paths[m.group(1)]} ", term).split())
            assert expected in constraint, (form_id, rule.field, expected, constraint)
