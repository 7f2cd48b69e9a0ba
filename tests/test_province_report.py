"""``GET /v1/reports/province``, the provincial report as an XLSX workbook: it opens with openpyxl, each
figure in it equals what the API answers for the same area and period (asked here of the API's
routes, never computed by the test), figure cells carry number formats, labels switch to English,
a province key gets its provinces only, and a bad period is a problem naming it.

Data: every form's samples posted through the intake, with edits and retractions (``_post_all`` of
tests/test_store_vs_oracle.py), rotation batches included; keys from a file.
"""

from __future__ import annotations

import io
import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import openpyxl
import pytest
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack
from services.clock import today_local
from services.domain.periods import months_of, named_period, year_before
from services.query.access import add_key
from services.query.report_xlsx import FORMATS, HEADER_ROW, LABELS, XLSX_MEDIA_TYPE
from tests.compare import UNTIL
from tests.query_clients import as_, every, ok
from tests.test_store_vs_oracle import loaded_stack

PATH = "/v1/reports/province"
QUARTER = f"{UNTIL.year}-Q{(UNTIL.month - 1) // 3 + 1}"  # may still run: figures as of today
BEFORE = UNTIL.replace(day=1) - timedelta(days=100)
EARLIER_QUARTER = f"{BEFORE.year}-Q{(BEFORE.month - 1) // 3 + 1}"  # a whole quarter gone by
MONTH = f"{UNTIL:%Y-%m}"
APRIL = f"{UNTIL.year if UNTIL.month >= 4 else UNTIL.year - 1}-Q2"  # reading-promotion days (21 and 23 April)


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report-keys") / "api-keys.json"


@pytest.fixture(scope="module")
def keys(keys_file: Path) -> dict[str, str]:
    return {"all": add_key(keys_file, "bo-vh", ["read:all"]),
            "hg": add_key(keys_file, "so-vh-ha-giang", ["read:province:legacy:02"])}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, forms_dir: Path, keys_file: Path,
           keys: dict[str, str]) -> Iterator[EmbeddedStack]:
    with loaded_stack(tmp_path_factory.mktemp("province-report"), forms_dir, 17,
                      api_keys_file=str(keys_file)) as stack:
        yield stack


def workbook(client: TestClient, **params: str) -> openpyxl.Workbook:
    response = client.get(PATH, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX_MEDIA_TYPE
    return openpyxl.load_workbook(io.BytesIO(response.content))


class Sheet:
    """A sheet's table: rows by column key (the writer's header labels read back), and the cells."""

    def __init__(self, book: openpyxl.Workbook, name: str, lang: str = "vi"):
        labels = LABELS[lang]
        self.sheet = book[labels[name]]
        by_label = {text: key[4:] for key, text in labels.items() if key.startswith("col.")}
        header = [cell.value for cell in self.sheet[HEADER_ROW]]
        self.keys = [by_label[text] for text in header]
        self.rows: list[dict[str, Any]] = []
        self.cells: list[dict[str, Any]] = []
        for row in self.sheet.iter_rows(min_row=HEADER_ROW + 1):
            if all(cell.value is None for cell in row):
                break
            self.cells.append(dict(zip(self.keys, row, strict=True)))
            self.rows.append({key: cell.value for key, cell in zip(self.keys, row, strict=True)})
        self.total_label = labels["total"]

    def by_month(self) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
        """Rows by month (``2026-03``), and the totals rows."""
        months: dict[str, list[dict[str, Any]]] = {}
        totals = []
        for row in self.rows:
            if row["month"] == self.total_label:
                totals.append(row)
            else:
                months.setdefault(f"{row['month']:%Y-%m}", []).append(row)
        return months, totals


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9)


def check_report(client: TestClient, scheme: str, province: str, period: str) -> dict[str, int]:
    """Every figure of the workbook equals the API's for the same parameters; returns what was seen
    (so that the test knows the comparison had data)."""
    book = workbook(client, scheme=scheme, province=province, period=period)
    days = named_period(period)
    as_of = min(days.end, today_local())
    area = {"scheme": scheme, "province": province}
    seen: Counter[str] = Counter()

    indicators = ok(client.get("/v1/indicators", params={**area, "year": days.end.year,
                                                         "as_of": as_of.isoformat()}))["indicators"]
    labels = LABELS["vi"]
    for sheet_name, names in (("sheet.summary", ["K1", "K2", "K3", "K4"]),
                              ("sheet.quality", ["completeness", "timeliness"])):
        sheet = Sheet(book, sheet_name)
        assert [row["indicator"] for row in sheet.rows] == [labels[f"indicator.{n}"] for n in names]
        for name, row, cells in zip(names, sheet.rows, sheet.cells, strict=True):
            api = indicators[name]
            for key in ("value", "numerator", "denominator", "target"):
                assert _close(row[key], api[key]), (period, name, key, row[key], api[key])
            status = "status.none" if api["on_track"] is None else f"status.{str(api['on_track']).lower()}"
            assert row["on_track"] == labels[status]
            assert cells["value"].number_format == FORMATS["pct"] or row["value"] is None
            assert cells["numerator"].number_format == FORMATS["int"]
            seen["indicators"] += api["value"] is not None

    # Visits: each month beside the same month a year earlier, and the totals (by year over the period).
    visits, totals = Sheet(book, "sheet.visits").by_month()
    before = year_before(days)

    def series(start: date, end: date, granularity: str) -> list[dict[str, Any]]:
        return ok(client.get("/v1/visits", params={**area, "start": start.isoformat(), "end": end.isoformat(),
                                                   "granularity": granularity}))["series"]
    now = {row["period"]: row for row in series(days.start, days.end, "month")}
    then = {row["period"]: row for row in series(before.start, before.end, "month")}
    assert list(visits) == [f"{m:%Y-%m}" for m in months_of(days)]
    for month, (row,) in visits.items():
        current, previous = now.get(month, {}), then.get(f"{int(month[:4]) - 1}{month[4:]}", {})
        assert row["visits_total"] == current.get("visits_total", 0) and row["loans"] == current.get("loans", 0)
        assert row["previous"] == previous.get("visits_total", 0) and row["reports"] == current.get("reports", 0)
        if row["previous"]:
            assert _close(row["growth"], round(row["visits_total"] / row["previous"] - 1, 6))
        seen["visits"] += row["visits_total"]
    whole_now, whole_then = series(days.start, days.end, "year"), series(before.start, before.end, "year")
    assert totals[0]["visits_total"] == (whole_now[0]["visits_total"] if whole_now else 0)
    assert totals[0]["previous"] == (whole_then[0]["visits_total"] if whole_then else 0)

    # Communes of the programme, and their libraries in the model on the day.
    communes = Sheet(book, "sheet.communes")
    listed = every(client, "/v1/areas", {"scheme": scheme, "level": "commune", "province": province,
                                         "in_programme": "true"})
    in_model = Counter(lib["areas"][scheme]["commune_code"] for lib in every(client, "/v1/libraries", {
        **area, "in_model": "true", "as_of": as_of.isoformat()}))
    assert [row["code"] for row in communes.rows] == [c["code"] for c in listed]
    for row, commune in zip(communes.rows, listed, strict=True):
        assert row["name"] == commune["name_vi"] and row["libraries"] == in_model[commune["code"]]
        assert row["with_model"] == labels["yes" if in_model[commune["code"]] else "no"]
    seen["libraries_in_model"] = sum(row["libraries"] for row in communes.rows)

    # Rotation, as /v1/rotation/provinces answers on the day.
    rotation = {row["figure"]: row for row in Sheet(book, "sheet.rotation").rows}
    items = ok(client.get("/v1/rotation/provinces", params={**area, "as_of": as_of.isoformat()}))["items"]
    api_rotation = items[0] if items else {}
    for key in ("batches_dispatched", "copies_dispatched", "batches_in_circulation", "copies_in_circulation",
                "batches_overdue", "copies_lost", "copies_damaged"):
        assert rotation[labels[f"rotation.{key}"]]["value"] == api_rotation.get(key, 0), key
    assert _close(rotation[labels["rotation.loss_rate"]]["share"], api_rotation.get("loss_rate"))
    seen["rotation"] = api_rotation.get("batches_dispatched", 0)

    # Activities: by month, and the period's figure (by year over the period).
    for sheet_name, path, keys in (
            ("sheet.mobile", "/v1/mobile-sessions", ("sessions", "visits_total", "loans")),
            ("sheet.reading", "/v1/reading-promotion", ("events", "participants_total", "co_organised")),
            ("sheet.training", "/v1/training", ("records", "hours", "workers", "workers_passed")),
            ("sheet.donations", "/v1/donations", ("donations", "books", "money_vnd"))):
        months, sums = Sheet(book, sheet_name).by_month()
        for granularity, rows in (("month", [r for rs in months.values() for r in rs]), ("year", sums)):
            api = ok(client.get(path, params={**area, "start": days.start.isoformat(), "end": days.end.isoformat(),
                                              "granularity": granularity}))["series"]
            assert len(rows) == len(api), (sheet_name, granularity)
            for row, expected in zip(rows, api, strict=True):
                if granularity == "month":
                    assert f"{row['month']:%Y-%m}" == expected["period"]
                assert all(_close(row[key], expected[key]) for key in keys), (sheet_name, row, expected)
            seen[sheet_name] += len(rows)

    # Approval: each month as /v1/visits marks it (approved or provisional), on both sheets.
    approval = Sheet(book, "sheet.approval")
    states = [labels[f"approval.{now.get(f'{m:%Y-%m}', {}).get('status', 'provisional')}"] for m in months_of(days)]
    assert [row["state"] for row in approval.rows] == states
    assert [rows[0]["state"] for rows in visits.values()] == states
    return seen


def busiest(client: TestClient, scheme: str, period: str) -> str:
    """The province with the most reading-promotion events and donations in the period (the samples
    put them in a few libraries drawn at random), as the API counts them."""
    days = named_period(period)
    span = {"start": days.start.isoformat(), "end": days.end.isoformat(), "granularity": "year"}

    def activity(code: str) -> int:
        return sum(row["events"] for row in ok(client.get("/v1/reading-promotion", params={
            "scheme": scheme, "province": code, **span}))["series"]) + sum(
            row["donations"] for row in ok(client.get("/v1/donations", params={
                "scheme": scheme, "province": code, **span}))["series"])
    return max((p["code"] for p in every(client, "/v1/areas", {"scheme": scheme})), key=activity)


@pytest.mark.parametrize(("scheme", "province", "period"), [
    ("legacy", "02", QUARTER), ("legacy", "02", MONTH), ("2025", "08", EARLIER_QUARTER), ("legacy", None, APRIL)])
def test_each_figure_equals_the_apis_for_the_same_period(loaded: EmbeddedStack, keys: dict[str, str], scheme: str,
                                                         province: str | None, period: str):
    client = as_(loaded, keys["all"])
    seen = check_report(client, scheme, province or busiest(client, scheme, period), period)
    # The comparison had something to compare: visits, indicators, libraries in the model.
    assert seen["visits"] > 0 and seen["indicators"] > 0 and seen["libraries_in_model"] > 0, seen
    if period == APRIL:
        assert seen["sheet.reading"] + seen["sheet.donations"] > 0, seen
    if period == QUARTER:
        assert seen["rotation"] > 0, seen


def test_title_block_filename_and_layout(loaded: EmbeddedStack, keys: dict[str, str]):
    response = as_(loaded, keys["hg"]).get(PATH, params={"scheme": "legacy", "province": "02", "period": QUARTER})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    disposition = response.headers["content-disposition"]
    assert f'filename="bao-cao-ha-giang-02-legacy-{QUARTER}.xlsx"' in disposition
    utf8 = unquote(disposition.split("filename*=UTF-8''")[1])
    assert utf8 == unicodedata.normalize("NFC", f"bao-cao-hà-giang-02-legacy-{QUARTER}.xlsx")
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames[:2] == [LABELS["vi"]["sheet.summary"], LABELS["vi"]["sheet.visits"]]
    for sheet in book.worksheets:
        assert sheet.freeze_panes == f"A{HEADER_ROW + 1}"
        title = [sheet.cell(row=n, column=1).value for n in range(1, 5)]
        assert "Hà Giang" in title[1] and "02" in title[1] and "trước 1/7/2025" in title[1]
        assert f"quý {QUARTER[-1]}/{QUARTER[:4]}" in title[2] and "so-vh-ha-giang" in title[3]
        # Columns as wide as their header at least, so that no header is cut.
        for cell in sheet[HEADER_ROW]:
            assert sheet.column_dimensions[cell.column_letter].width >= min(len(cell.value), 58)
    visits = Sheet(book, "sheet.visits")
    month_cell = visits.cells[0]["month"]
    assert month_cell.number_format == FORMATS["month"] and visits.cells[0]["growth"].number_format == "0.0%"
    assert visits.cells[0]["visits_total"].number_format == "#,##0"


def test_the_english_switch(loaded: EmbeddedStack, keys: dict[str, str]):
    client = as_(loaded, keys["all"])
    english = workbook(client, scheme="2025", province="08", period=MONTH, lang="en")
    assert english.sheetnames == [LABELS["en"][f"sheet.{n}"] for n in (
        "summary", "visits", "communes", "rotation", "mobile", "reading", "training", "donations", "quality",
        "approval")]
    summary = Sheet(english, "sheet.summary", "en")
    assert summary.rows[0]["indicator"] == LABELS["en"]["indicator.K1"]
    assert "Tuyen Quang" in english[LABELS["en"]["sheet.summary"]]["A2"].value
    assert Sheet(english, "sheet.approval", "en").rows[0]["state"] == "Provisional"
    vietnamese = Sheet(workbook(client, scheme="2025", province="08", period=MONTH), "sheet.summary")
    assert [r["value"] for r in vietnamese.rows] == [r["value"] for r in summary.rows]


def test_a_province_key_gets_its_provinces_only(loaded: EmbeddedStack, keys: dict[str, str]):
    hg, everyone = as_(loaded, keys["hg"]), as_(loaded, keys["all"])
    for client, params, status in ((hg, {"scheme": "legacy", "province": "04"}, 403),
                                   (hg, {"scheme": "2025", "province": "08"}, 403),
                                   (hg, {"scheme": "legacy"}, 403),  # the whole region
                                   (everyone, {"scheme": "legacy"}, 400),  # no province: a report is of one
                                   (everyone, {"scheme": "legacy", "province": "99"}, 404)):
        response = client.get(PATH, params={**params, "period": MONTH})
        assert response.status_code == status and response.headers["content-type"] == "application/problem+json"
        assert response.json()["invalid_params"][0]["name"] == "province"
        assert response.json()["detail_vi"]


@pytest.mark.parametrize("period", ["2026-13", "2026-Q5", "2026-Q0", "26-Q1", "2026-1", "2026-03-01", "Q1-2026",
                                    "", "0000-01", "0001-01", "٢٠٢٦-01", "2026-Q1 ", f"{today_local().year + 1}-01"])
def test_a_bad_period_is_a_problem_naming_it(loaded: EmbeddedStack, keys: dict[str, str], period: str):
    response = as_(loaded, keys["all"]).get(PATH, params={"scheme": "legacy", "province": "02", "period": period})
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    assert response.json()["invalid_params"][0]["name"] == "period"


def test_a_missing_period_or_an_unknown_parameter_is_a_problem(loaded: EmbeddedStack, keys: dict[str, str]):
    client = as_(loaded, keys["all"])
    for params, name in (({}, "period"), ({"period": MONTH, "format": "csv"}, "format"),
                         ({"period": MONTH, "lang": "fr"}, "lang")):
        response = client.get(PATH, params={"scheme": "legacy", "province": "02", **params})
        assert response.status_code == 400 and response.json()["invalid_params"][0]["name"] == name


def test_an_approved_month_is_marked_with_who_approved_it(loaded: EmbeddedStack, keys: dict[str, str],
                                                         keys_file: Path):
    """Last in the module: it approves a month of the shared stack, and un-approves it after."""
    officer = as_(loaded, add_key(keys_file, "so-vh-ha-giang-duyet",
                                  ["read:province:legacy:02", "approve:province:legacy:02"]))
    month = (today_local().replace(day=1) - timedelta(days=1)).replace(day=1)
    period = f"{month:%Y-%m}"
    response = officer.post("/v1/approvals", json={"scheme": "legacy", "province": "02", "period": period})
    assert response.status_code == 202, response.text
    approval_id = response.json()["approval_id"]
    try:
        labels = LABELS["vi"]
        book = workbook(officer, scheme="legacy", province="02", period=period)
        [row] = Sheet(book, "sheet.approval").rows
        assert row["state"] == labels["approval.approved"] and row["approved_by"] == "so-vh-ha-giang-duyet"
        assert isinstance(row["approved_at"], datetime)
        months, _ = Sheet(book, "sheet.visits").by_month()
        assert [r["state"] for r in months[period]] == [labels["approval.approved"]]
        assert check_report(as_(loaded, keys["all"]), "legacy", "02", period)  # the approved figures = the API's
    finally:
        assert officer.delete(f"/v1/approvals/{approval_id}").status_code == 202
    [row] = Sheet(workbook(officer, scheme="legacy", province="02", period=period), "sheet.approval").rows
    assert row["state"] == LABELS["vi"]["approval.provisional"]
