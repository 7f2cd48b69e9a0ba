"""Approval of periods by area, end to end in the embedded stack (real intake, SQLite log, chDB):
an approved month does not move when a late edit, a new report or a retraction arrives; the queue
holds each with its delta; applying moves the figure exactly as the oracle says; un-approving
re-opens; a 2025 province approves for its legacy provinces; scopes are enforced; approvals survive
a replay of the log into a new store."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack, embedded_stack
from services.clock import today_local
from services.config import Settings
from services.domain.reference import Library, default_reference
from services.intake.accounts import ANONYMOUS
from services.query.access import add_key
from services.tools.submissions import fill_instance, multipart
from tests.conftest import OPENROSA, library_of, sample_answers, visit_answers
from tests.oracle import Area, Oracle
from tests.published import from_embedded_log
from tests.query_clients import as_

REFERENCE = default_reference()


HG, TQ, CB = library_of("02"), library_of("08"), library_of("04")  # HG and TQ make 2025 Tuyên Quang (08)
_first = today_local().replace(day=1)
MONTH = (_first - timedelta(days=1)).replace(day=1)  # last month: begun, and the intake takes its reports
PERIOD = f"{MONTH:%Y-%m}"
SPAN = {"start": MONTH.isoformat(), "end": (_first - timedelta(days=1)).isoformat(), "granularity": "month"}


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "keys.json"
    return path, {
        "hg": add_key(path, "so-ha-giang", ["read:province:legacy:02", "approve:province:legacy:02"]),
        "tq": add_key(path, "so-tuyen-quang", ["read:province:2025:08", "approve:province:2025:08"]),
        "cb": add_key(path, "so-cao-bang", ["read:province:legacy:04", "approve:province:legacy:04"]),
        "region": add_key(path, "bo-vh", ["read:all", "approve:region"]),
    }


def _settings(root: Path, forms_dir: Path, keys_file: Path) -> Settings:
    if not (root / "forms").exists():
        shutil.copytree(forms_dir, root / "forms")
    return Settings.from_env(bus="embedded", store_dsn=f"chdb://{root / 'store'}", state_dir=root / "state",
                             forms_dir=root / "forms", api_keys_file=str(keys_file))


@pytest.fixture
def app(tmp_path: Path, forms_dir: Path, keys) -> Iterator[EmbeddedStack]:
    stack = embedded_stack(_settings(tmp_path, forms_dir, keys[0]))
    try:
        yield stack
    finally:
        stack.close()


class Phone:
    def __init__(self, stack: EmbeddedStack):
        self.client = TestClient(stack.app, headers=OPENROSA)
        self.xform = self.client.get("/forms/visit_log.xml").content

    def send(self, library: Library, day: date, total: int, instance: str, edits: str | None = None) -> None:
        xml = fill_instance(self.xform, visit_answers(library, day, total=total), instance, deprecated_id=edits)
        assert self.client.post("/submission", files=multipart(xml)).status_code == 201


def visits(client: TestClient, scheme: str, province: str) -> dict[str, Any]:
    response = client.get("/v1/visits", params={"scheme": scheme, "province": province, **SPAN})
    assert response.status_code == 200, response.text
    return response.json()


def point(body: dict[str, Any]) -> dict[str, Any]:
    (only,) = [p for p in body["series"] if p["period"] == PERIOD]
    return only


def approve(client: TestClient, scheme: str, province: str, period: str = PERIOD) -> str:
    response = client.post("/v1/approvals", json={"scheme": scheme, "province": province, "period": period})
    assert response.status_code == 202, response.text
    return response.json()["approval_id"]


def oracle_total(stack: EmbeddedStack, scheme: str, province: str) -> int:
    oracle = Oracle(from_embedded_log(stack.bus.path), REFERENCE)
    rows = oracle.visits(Area(scheme, province), MONTH, _first - timedelta(days=1), "month")  # type: ignore[arg-type]
    return sum(r["visits_total"] for r in rows)


def queue(client: TestClient, approval: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/approvals/{approval}/queue")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_an_approved_month_holds_a_late_edit_until_applied_and_unapproving_reopens(app: EmbeddedStack, keys):
    phone, officer = Phone(app), as_(app, keys[1]["hg"])
    phone.send(HG, MONTH + timedelta(days=2), 10, "uuid:a1")
    phone.send(HG, MONTH + timedelta(days=3), 20, "uuid:a2")
    assert point(visits(officer, "legacy", "02"))["status"] == "provisional"
    approval = approve(officer, "legacy", "02")
    approved = point(visits(officer, "legacy", "02"))
    assert (approved["visits_total"], approved["status"]) == (30, "approved")

    phone.send(HG, MONTH + timedelta(days=2), 14, "uuid:a1-edit", edits="uuid:a1")  # late edit
    phone.send(HG, MONTH + timedelta(days=4), 5, "uuid:a3")  # late new report
    assert app.service.retract("uuid:a2", ANONYMOUS, "central_rejected", "rejected in review")  # late retraction
    body = visits(officer, "legacy", "02")
    assert (point(body)["visits_total"], point(body)["status"]) == (30, "approved")  # not changed
    assert body["approvals"][0]["approved_by"] == "so-ha-giang"
    held = {item["root_id"]: item for item in queue(officer, approval)}
    assert {root: (item["change"], item["delta"]["visits_total"]) for root, item in held.items()} == {
        "uuid:a1": ("edited", 4), "uuid:a3": ("new", 5), "uuid:a2": ("withdrawn", -20)}

    live = oracle_total(app, "legacy", "02")  # 14 + 5: what the oracle counts from the log
    for item in held.values():
        assert officer.post(f"/v1/approvals/{approval}/queue/{item['item_id']}/apply").status_code == 202
    assert point(visits(officer, "legacy", "02"))["visits_total"] == live == 19
    assert queue(officer, approval) == []

    phone.send(HG, MONTH + timedelta(days=2), 16, "uuid:a1-edit2", edits="uuid:a1-edit")
    (again,) = queue(officer, approval)
    assert officer.post(f"/v1/approvals/{approval}/queue/{again['item_id']}/decline").status_code == 202
    assert queue(officer, approval) == [] and point(visits(officer, "legacy", "02"))["visits_total"] == 19

    assert officer.delete(f"/v1/approvals/{approval}").status_code == 202
    reopened = point(visits(officer, "legacy", "02"))
    assert (reopened["visits_total"], reopened["status"]) == (oracle_total(app, "legacy", "02"), "provisional")
    (summary,) = officer.get("/v1/approvals", params={"province": "02"}).json()["approvals"]
    assert summary["status"] == "unapproved" and summary["figures"][PERIOD]["visits_total"] == 30
    assert [h["action"] for h in summary["history"]] == ["approve", "apply", "apply", "apply", "decline", "unapprove"]


def test_scopes_a_province_officer_cannot_approve_another_province_or_accept_at_the_region(app: EmbeddedStack, keys):
    Phone(app).send(CB, MONTH + timedelta(days=1), 9, "uuid:c1")
    hg, cb, region = as_(app, keys[1]["hg"]), as_(app, keys[1]["cb"]), as_(app, keys[1]["region"])
    for scheme, province in (("legacy", "04"), ("2025", "08"), ("legacy", "08")):
        response = hg.post("/v1/approvals", json={"scheme": scheme, "province": province, "period": PERIOD})
        assert response.status_code == 403 and response.headers["content-type"] == "application/problem+json"
        assert "Khoá" in response.json()["detail_vi"]
    assert region.post("/v1/approvals", json={"scheme": "legacy", "province": "04", "period": PERIOD}
                       ).status_code == 403  # approve:region accepts; it does not approve
    approval = approve(cb, "legacy", "04")
    assert hg.delete(f"/v1/approvals/{approval}").status_code == 403
    assert hg.get(f"/v1/approvals/{approval}/queue").status_code == 403
    assert cb.post(f"/v1/approvals/{approval}/region-acceptance").status_code == 403
    assert region.post(f"/v1/approvals/{approval}/region-acceptance").status_code == 202
    assert region.post(f"/v1/approvals/{approval}/region-acceptance").status_code == 409  # once
    twice = cb.post("/v1/approvals", json={"scheme": "legacy", "province": "04", "period": PERIOD})
    assert twice.status_code == 409  # approved already, and it says so in both languages
    assert twice.json()["detail_vi"] == (f"Kỳ {PERIOD} của tỉnh 04 (legacy) đã được phê duyệt ({approval}): "
                                         "hãy bỏ phê duyệt kỳ đó trước.")
    bad = cb.post("/v1/approvals", json={"scheme": "legacy", "province": "04", "period": "2026-Q7"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    (summary,) = region.get("/v1/approvals", params={"province": "04"}).json()["approvals"]
    assert summary["region_accepted_by"] == "bo-vh"
    assert hg.get("/v1/approvals").json()["approvals"] == []  # not its province


@pytest.mark.parametrize("period", ["٢٠٢٦-03", "0000-01", "0000-Q1", "2026-13", "2026-Q5"])
def test_a_period_that_is_not_a_month_or_quarter_is_a_problem_not_a_server_error(app: EmbeddedStack, keys, period):
    response = as_(app, keys[1]["hg"]).post("/v1/approvals", json={"scheme": "legacy", "province": "02",
                                                                    "period": period})
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    assert "period" in response.text


def test_a_2025_province_approval_covers_its_legacy_provinces(app: EmbeddedStack, keys):
    phone, tq = Phone(app), as_(app, keys[1]["tq"])
    phone.send(HG, MONTH + timedelta(days=1), 11, "uuid:h1")
    phone.send(TQ, MONTH + timedelta(days=1), 7, "uuid:t1")
    quarter = f"{MONTH.year}-Q{(MONTH.month - 1) // 3 + 1}"
    approval = approve(tq, "2025", "08", quarter)
    phone.send(HG, MONTH + timedelta(days=1), 12, "uuid:h1-edit", edits="uuid:h1")
    region = as_(app, keys[1]["region"])
    for scheme, province, total in (("2025", "08", 18), ("legacy", "02", 11), ("legacy", "08", 7)):
        shown = point(visits(region, scheme, province))
        assert (shown["visits_total"], shown["status"]) == (total, "approved"), (scheme, province)
    hg = as_(app, keys[1]["hg"])  # legacy 02 lies inside: its officer may not approve 02 now (approved already)
    assert hg.post("/v1/approvals", json={"scheme": "legacy", "province": "02", "period": PERIOD}).status_code == 409
    (item,) = queue(tq, approval)
    assert item["delta"]["visits_total"] == 1


def test_approvals_and_their_queue_survive_a_replay_of_the_log(tmp_path: Path, forms_dir: Path, keys):
    first = embedded_stack(_settings(tmp_path / "a", forms_dir, keys[0]))
    try:
        phone, officer = Phone(first), as_(first, keys[1]["hg"])
        phone.send(HG, MONTH + timedelta(days=2), 10, "uuid:r1")
        approval = approve(officer, "legacy", "02")
        phone.send(HG, MONTH + timedelta(days=2), 13, "uuid:r1-edit", edits="uuid:r1")
        phone.send(HG, MONTH + timedelta(days=5), 4, "uuid:r2")
        (new,) = [i for i in queue(officer, approval) if i["root_id"] == "uuid:r2"]
        assert officer.post(f"/v1/approvals/{approval}/queue/{new['item_id']}/apply").status_code == 202
        before = (visits(officer, "legacy", "02")["series"], queue(officer, approval))
    finally:
        first.close()
    # A new store, filled again from the same log only.
    (tmp_path / "b" / "state").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "state" / "bus.sqlite", tmp_path / "b" / "state" / "bus.sqlite")
    again = embedded_stack(_settings(tmp_path / "b", forms_dir, keys[0]))
    try:
        officer = as_(again, keys[1]["hg"])
        assert (visits(officer, "legacy", "02")["series"], queue(officer, approval)) == before
        assert point(visits(officer, "legacy", "02"))["visits_total"] == 14  # 10 approved + 4 applied
    finally:
        again.close()


def test_an_approval_racing_a_late_edit_loses_nothing(app: EmbeddedStack, keys):
    phone, officer = Phone(app), as_(app, keys[1]["hg"])
    phone.send(HG, MONTH + timedelta(days=2), 10, "uuid:x1")
    approvals: list[str] = []
    racer = threading.Thread(target=lambda: approvals.append(approve(officer, "legacy", "02")))
    racer.start()
    phone.send(HG, MONTH + timedelta(days=2), 15, "uuid:x1-edit", edits="uuid:x1")
    racer.join()
    shown = point(visits(officer, "legacy", "02"))["visits_total"]
    held = sum(item["delta"]["visits_total"] for item in queue(officer, approvals[0]))
    # The edit is either in what the approver saw (approved) or held: never lost, never twice.
    assert (shown, held) in ((15, 0), (10, 5))
    assert shown + held == oracle_total(app, "legacy", "02")


def _quarters(first: date, last: date) -> list[str]:
    """The quarters (``2025-Q1``…) from ``first``'s to ``last``'s."""
    quarters = []
    year, quarter = first.year, (first.month - 1) // 3 + 1
    while (year, quarter) <= (last.year, (last.month - 1) // 3 + 1):
        quarters.append(f"{year}-Q{quarter}")
        year, quarter = (year, quarter + 1) if quarter < 4 else (year + 1, 1)
    return quarters


def test_growth_and_k4_are_approved_when_both_years_are_and_hold_a_late_edit(app: EmbeddedStack, keys):
    """Growth (and K4, its like-for-like rate) counts approved months as approved: a late edit in an
    approved month moves neither until it is applied, and then exactly as the oracle says."""
    phone, officer = Phone(app), as_(app, keys[1]["hg"])
    year, last_year = MONTH.year, MONTH.replace(year=MONTH.year - 1)
    phone.send(HG, MONTH + timedelta(days=2), 10, "uuid:g1")
    phone.send(HG, last_year + timedelta(days=2), 8, "uuid:g0")  # the same library a year before: like for like
    area = {"scheme": "legacy", "province": "02", "year": year}

    def figures() -> tuple[dict[str, Any], dict[str, Any]]:
        growth = officer.get("/v1/growth", params=area)
        indicators = officer.get("/v1/indicators", params=area)
        assert growth.status_code == indicators.status_code == 200, (growth.text, indicators.text)
        return growth.json(), indicators.json()["indicators"]

    growth, indicators = figures()
    assert (growth["all"]["visits"], growth["all"]["previous"], growth["status"]) == (10, 8, "provisional")
    assert indicators["K4"]["status"] == "provisional" and growth["approvals"] == []

    # Every quarter but the last: the two years are not all approved yet.
    quarters = _quarters(date(year - 1, 1, 1), today_local())
    approvals = [approve(officer, "legacy", "02", quarter) for quarter in quarters[:-1]]
    growth, indicators = figures()
    assert growth["status"] == indicators["K4"]["status"] == "provisional"
    approvals.append(approve(officer, "legacy", "02", quarters[-1]))
    growth, indicators = figures()
    assert (growth["status"], growth["cagr"]["status"], indicators["K4"]["status"]) == ("approved",) * 3
    assert len(growth["approvals"]) == len(quarters)
    assert {name for name, value in indicators.items() if value["status"] == "approved"} == {"K4"}
    assert (indicators["K4"]["numerator"], indicators["K4"]["denominator"]) == (10, 8)

    phone.send(HG, MONTH + timedelta(days=2), 13, "uuid:g1-edit", edits="uuid:g1")  # late edit
    growth, indicators = figures()
    assert (growth["all"]["visits"], growth["like_for_like"]["visits"], growth["status"]) == (10, 10, "approved")
    assert indicators["K4"]["numerator"] == 10
    lineage = officer.get("/v1/lineage/growth", params=area).json()
    assert lineage["status"] == "approved"
    assert sorted((c["instance_id"], c["contribution"]["visits_total"]) for c in lineage["items"]) == [
        ("uuid:g0", 8), ("uuid:g1", 10)]  # the approved versions, not the late edit

    holding = next(a for a in approvals if queue(officer, a))
    (held,) = queue(officer, holding)
    assert officer.post(f"/v1/approvals/{holding}/queue/{held['item_id']}/apply").status_code == 202
    oracle = Oracle(from_embedded_log(app.bus.path), REFERENCE)
    expected = oracle.growth(Area("legacy", "02"), year)
    growth, indicators = figures()
    assert growth["all"] == expected["all"] and growth["like_for_like"] == expected["like_for_like"]
    assert (growth["all"]["visits"], indicators["K4"]["numerator"], growth["status"]) == (13, 13, "approved")

    # Un-approving a quarter of the year before: provisional again, the live figures.
    assert officer.delete(f"/v1/approvals/{approvals[0]}").status_code == 202
    growth, indicators = figures()
    assert (growth["status"], indicators["K4"]["status"], growth["all"]["visits"]) == ("provisional", "provisional", 13)


ACTIVITIES = {  # form → (its route, the counts an edit raises)
    "mobile_session": ("/v1/mobile-sessions", ("visits_total", "visits_adults")),
    "reading_promotion": ("/v1/reading-promotion", ("participants_adults",)),
    "staff_training": ("/v1/training", ("hours",)),
    "donation": ("/v1/donations", ("books",)),
}


def test_activity_figures_are_approved_with_the_period_and_hold_late_reports(app: EmbeddedStack, keys):
    """An approval holds the province's mobile sessions, reading promotion, training and donations of
    its months as it holds visits: a late edit or a new report is queued with its form and delta, the
    served figures stay as approved until it is applied, and then equal the oracle's."""
    officer, client = as_(app, keys[1]["hg"]), TestClient(app.app, headers=OPENROSA)
    xforms = {form: client.get(f"/forms/{form}.xml").content for form in ACTIVITIES}

    def send(form_id: str, instance: str, day: date, edits: str | None = None, **changes: str) -> None:
        answers = sample_answers(form_id, "02", day, **changes)
        xml = fill_instance(xforms[form_id], answers, instance, deprecated_id=edits)
        response = client.post("/submission", files=multipart(xml))
        assert response.status_code == 201, response.text

    def served(form_id: str) -> dict[str, Any]:
        response = officer.get(ACTIVITIES[form_id][0], params={"scheme": "legacy", "province": "02", **SPAN})
        assert response.status_code == 200, response.text
        return response.json()

    for form_id in ACTIVITIES:
        send(form_id, f"uuid:{form_id}-1", MONTH + timedelta(days=3))
    before = {form_id: served(form_id) for form_id in ACTIVITIES}
    assert all(row["status"] == "provisional" for body in before.values() for row in body["series"])
    assert all(body["series"] for body in before.values())

    approval = approve(officer, "legacy", "02")
    approved = {form_id: served(form_id) for form_id in ACTIVITIES}
    for form_id, body in approved.items():
        assert [{**row, "status": "provisional"} for row in body["series"]] == before[form_id]["series"], form_id
        assert {row["status"] for row in body["series"]} == {"approved"}, form_id
        assert [a["approval_id"] for a in body["approvals"]] == [approval]

    # Late: each activity report edited (a count raised), and a second report of each form.
    for form_id, (_, raised) in ACTIVITIES.items():
        original = sample_answers(form_id, "02", MONTH + timedelta(days=3))
        bigger = {name: str(int(float(original[name])) + 4) for name in raised}
        send(form_id, f"uuid:{form_id}-1-edit", MONTH + timedelta(days=3), edits=f"uuid:{form_id}-1", **bigger)
        send(form_id, f"uuid:{form_id}-2", MONTH + timedelta(days=5),
             **({"worker_id": "HG-9901"} if form_id == "staff_training" else {}))
    assert {form_id: served(form_id)["series"] for form_id in ACTIVITIES} == {
        form_id: body["series"] for form_id, body in approved.items()}  # not changed

    held = queue(officer, approval)
    forms = {f"{item['form']}:{item['change']}" for item in held}
    assert forms == {f"{form}:{change}" for form in ACTIVITIES for change in ("edited", "new")}
    edit = next(i for i in held if i["form"] == "mobile_session" and i["change"] == "edited")
    assert (edit["delta"]["visits_total"], edit["delta"]["reports"]) == (4, 0)
    for item in held:
        assert officer.post(f"/v1/approvals/{approval}/queue/{item['item_id']}/apply").status_code == 202
    assert queue(officer, approval) == []

    oracle = Oracle(from_embedded_log(app.bus.path), REFERENCE)
    area, end = Area("legacy", "02"), _first - timedelta(days=1)
    expected = {"mobile_session": oracle.mobile_sessions(area, MONTH, end, "month"),
                "reading_promotion": oracle.reading_promotion(area, MONTH, end, "month"),
                "staff_training": oracle.training(area, MONTH, end, "month"),
                "donation": oracle.donations(area, MONTH, end, "month")}
    for form_id in ACTIVITIES:
        series = served(form_id)["series"]
        assert {row["status"] for row in series} == {"approved"}, form_id
        assert [{k: v for k, v in row.items() if k != "status"} for row in series] == expected[form_id], form_id
    assert served("staff_training")["series"][0]["workers"] == 2  # the late worker, once applied
