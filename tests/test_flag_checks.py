"""Data-quality flags marked "checked, correct" by an officer, end to end in the embedded stack (real
intake, SQLite log, chDB): the mark is listed with who, when and the note; only the approve scope
of the flag's province may give or withdraw it (a 2025 province's covers its legacy provinces); a
flag that changes after the mark is unchecked again; the marks survive a replay of the log into a
new store. Rules: services/domain/flag_checks.py.

The flags are late reports: a report sent today for a month whose deadline has passed.
"""

from __future__ import annotations

import shutil
import unicodedata
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack, embedded_stack
from services.clock import today_local
from services.config import Settings
from services.domain.periods import add_months
from services.domain.reference import Library, default_reference
from services.query.access import add_key
from services.tools.submissions import fill_instance, multipart
from tests.conftest import OPENROSA, library_of, visit_answers
from tests.query_clients import as_

REFERENCE = default_reference()
CLOSED: list[EmbeddedStack] = []  # closed by the replay test (one chDB engine per process: one store open)


HG, CB = library_of("02"), library_of("04")  # Hà Giang (now in 2025 Tuyên Quang, 08), Cao Bằng
THIS_MONTH = today_local().replace(day=1)
MARKED, CHANGED = add_months(THIS_MONTH, -3), add_months(THIS_MONTH, -4)  # both long past their deadline
PERIOD = {"start": add_months(THIS_MONTH, -6).isoformat(), "end": today_local().isoformat()}


def flag_id(library: Library, month: date) -> str:
    return f"{library.library_id}/{month:%Y-%m}/late_report"


def check_path(library: Library, month: date) -> str:
    return f"/v1/data-quality/{flag_id(library, month)}/check"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flag-checks")


@pytest.fixture(scope="module")
def keys(root: Path) -> dict[str, str]:
    path = root / "keys.json"
    return {
        "hg": add_key(path, "so-ha-giang", ["read:province:legacy:02", "approve:province:legacy:02"]),
        "tq": add_key(path, "so-tuyen-quang", ["read:province:2025:08", "approve:province:2025:08"]),
        "cb": add_key(path, "so-cao-bang", ["read:province:legacy:04", "approve:province:legacy:04"]),
        "reader": add_key(path, "bo-vh-doc", ["read:all"]),
    }


def _settings(root: Path, forms_dir: Path) -> Settings:
    if not (root / "forms").exists():
        shutil.copytree(forms_dir, root / "forms")
    return Settings.from_env(bus="embedded", store_dsn=f"chdb://{root / 'store'}", state_dir=root / "state",
                             forms_dir=root / "forms", api_keys_file=str(root.parent / "keys.json"))


@pytest.fixture(scope="module")
def stack(root: Path, forms_dir: Path, keys: dict[str, str]) -> Iterator[EmbeddedStack]:
    running = embedded_stack(_settings(root / "live", forms_dir))
    try:
        phone = TestClient(running.app, headers=OPENROSA)
        xform = phone.get("/forms/visit_log.xml").content
        for library, day, instance in ((HG, MARKED + timedelta(days=4), "uuid:check-hg"),
                                       (HG, CHANGED + timedelta(days=6), "uuid:check-hg-changed"),
                                       (CB, MARKED + timedelta(days=5), "uuid:check-cb")):
            xml = fill_instance(xform, visit_answers(library, day), instance)
            assert phone.post("/submission", files=multipart(xml)).status_code == 201
        running.phone = phone  # type: ignore[attr-defined]
        running.xform = xform  # type: ignore[attr-defined]
        yield running
    finally:
        if running not in CLOSED:
            running.close()


def listed(client: TestClient, province: str = "02", **params: Any) -> dict[str, dict[str, Any]]:
    """The late-report flags of a legacy province."""
    response = client.get("/v1/data-quality", params={**PERIOD, "scheme": "legacy", "province": province,
                                                      "rule": "late_report", **params})
    assert response.status_code == 200, response.text
    return {item["flag_id"]: item for item in response.json()["items"]}


def refused(response, status: int, name: str | None = None) -> bool:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    if name is not None:
        assert response.json()["invalid_params"][0]["name"] == name, response.text
    return True


def test_an_officer_marks_a_flag_checked_and_it_is_listed_with_who_when_and_the_note(
        stack: EmbeddedStack, keys: dict[str, str]):
    hg, tq = as_(stack, keys["hg"]), as_(stack, keys["tq"])
    marked = flag_id(HG, MARKED)
    before = listed(hg)[marked]
    assert before["checked"] is False and before["checked_by"] is None and before["root_ids"] == ["uuid:check-hg"]

    # the officer of 2025 Tuyên Quang, which holds legacy Hà Giang, marks it; the note is stored as NFC
    note = unicodedata.normalize("NFD", "Đã gọi thư viện: báo cáo gửi muộn vì mất điện")
    response = tq.post(check_path(HG, MARKED), json={"note": f"  {note} "})
    assert response.status_code == 202, response.text
    taken = response.json()
    assert (taken["flag_id"], taken["action"], taken["by"]) == (marked, "check", "so-tuyen-quang")

    after = listed(hg)[marked]
    assert after["checked"] is True and after["checked_by"] == "so-tuyen-quang"
    assert after["checked_at"] == taken["at"]
    assert after["check_note"] == unicodedata.normalize("NFC", note.strip())
    assert set(listed(hg, checked="true")) == {marked}
    assert marked not in listed(hg, checked="false") and flag_id(HG, CHANGED) in listed(hg, checked="false")
    csv = hg.get("/v1/data-quality", params={**PERIOD, "province": "02", "format": "csv",
                                             "checked": "true"}).text
    assert "so-tuyen-quang" in csv and marked in csv


def test_only_the_approve_scope_of_the_flags_province_marks_it(stack: EmbeddedStack, keys: dict[str, str]):
    cb, hg, reader = as_(stack, keys["cb"]), as_(stack, keys["hg"]), as_(stack, keys["reader"])
    # Cao Bằng's officer may neither mark nor withdraw a Hà Giang flag; a read key marks nothing
    assert refused(cb.post(check_path(HG, CHANGED)), 403, "Authorization")
    assert refused(cb.delete(check_path(HG, MARKED)), 403, "Authorization")
    assert refused(reader.post(check_path(CB, MARKED)), 403, "Authorization")
    # Hà Giang's officer may not mark Cao Bằng's
    assert refused(hg.post(check_path(CB, MARKED)), 403, "Authorization")
    assert listed(as_(stack, keys["cb"]), "04")[flag_id(CB, MARKED)]["checked"] is False
    assert listed(hg)[flag_id(HG, CHANGED)]["checked"] is False
    # no such flag; a note that is not text
    assert refused(hg.post(f"/v1/data-quality/{HG.library_id}/{MARKED:%Y-%m}/outlier/check"), 404, "flag_id")
    assert refused(hg.post(check_path(HG, MARKED), json={"note": "bad\x00note"}), 400)
    assert refused(hg.post(check_path(HG, MARKED), json={"note": "x" * 501}), 400)
    # a month in another script's digits, or of year 0000: a problem naming it, not a server error
    for month in ("٢٠٢٦-03", "0000-01"):
        assert refused(hg.post(f"/v1/data-quality/{HG.library_id}/{month}/late_report/check"), 400,
                       "month" if month.startswith("0") else None)


def test_a_flag_that_changes_after_the_mark_is_unchecked_and_a_mark_can_be_withdrawn(
        stack: EmbeddedStack, keys: dict[str, str]):
    hg = as_(stack, keys["hg"])
    changed = flag_id(HG, CHANGED)
    assert hg.post(check_path(HG, CHANGED), json={"note": "đúng"}).status_code == 202
    assert listed(hg)[changed]["checked"] is True

    # another late report of that month: the flag now names two reports; the mark was not given to that
    xml = fill_instance(stack.xform, visit_answers(HG, CHANGED + timedelta(days=7)),  # type: ignore[attr-defined]
                        "uuid:check-hg-changed-2")
    assert stack.phone.post("/submission", files=multipart(xml)).status_code == 201  # type: ignore[attr-defined]
    now = listed(hg)[changed]
    assert now["reports"] == 2 and now["checked"] is False and now["checked_by"] is None
    assert changed in listed(hg, checked="false")

    # withdrawn: unchecked; withdrawing again is refused (nothing to withdraw)
    assert hg.delete(check_path(HG, CHANGED)).status_code == 202
    assert refused(hg.delete(check_path(HG, CHANGED)), 409, "flag_id")
    assert listed(hg)[flag_id(HG, MARKED)]["checked"] is True  # the other mark stands


def test_marks_survive_a_replay_of_the_log_into_a_new_store(stack: EmbeddedStack, keys: dict[str, str], root: Path,
                                                          forms_dir: Path):
    live = listed(as_(stack, keys["hg"]))
    assert [f for f, item in live.items() if item["checked"]] == [flag_id(HG, MARKED)]
    stack.close()
    CLOSED.append(stack)
    replayed = _settings(root / "replay", forms_dir)
    replayed.state_dir.mkdir(parents=True)
    shutil.copy(root / "live" / "state" / "bus.sqlite", replayed.state_dir / "bus.sqlite")
    again = embedded_stack(replayed)  # drains the log at start-up
    try:
        assert listed(as_(again, keys["hg"])) == live
    finally:
        again.close()
