"""The provincial report (``report.py``'s ``ProvinceReport``) written as an XLSX workbook with openpyxl:
one sheet per table, in Vietnamese or English, laid out so that a clerk has nothing to fix: a
title block (province and its scheme, period, the day the figures are for, when and with which
key it was made), a frozen header row, thousands separators, shares as percentages with one
decimal, dates dd/mm/yyyy, columns as wide as their content.

The answers' choice labels (occasions, donors) are the forms' own, read from the built XForms
(``FORMS_DIR``), so that they are written once, in the XLSForms.
"""

from __future__ import annotations

import functools
import io
import re
import unicodedata
from datetime import date, datetime
from pathlib import Path
from typing import Any

from defusedxml import ElementTree
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from services.query.report import Column, ProvinceReport, Table

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
INT_FORMAT = "#,##0"
PCT_FORMAT = "0.0%"
DECIMAL_FORMAT = "#,##0.0"
DATE_FORMAT = "dd/mm/yyyy"
MONTH_FORMAT = "mm/yyyy"
DATETIME_FORMAT = "dd/mm/yyyy hh:mm"
FORMATS = {"int": INT_FORMAT, "pct": PCT_FORMAT, "decimal": DECIMAL_FORMAT, "date": DATE_FORMAT,
           "month": MONTH_FORMAT, "datetime": DATETIME_FORMAT}
HEADER_ROW = 7  # rows 1–5: the title block; 7: the header, frozen with what is above it
_BOLD, _TITLE = Font(bold=True), Font(bold=True, size=14)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_CHOICE_LISTS = {"occasion": "reading_promotion", "donor_kind": "donation", "donor_origin": "donation"}
_XF = "{http://www.w3.org/2002/xforms}"

LABELS: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Báo cáo chương trình Mô hình thư viện cơ sở",
        "province": "Tỉnh: {name} (mã {code}, {scheme})",
        "scheme.legacy": "địa giới trước 1/7/2025", "scheme.2025": "địa giới từ 1/7/2025",
        "period": "Kỳ báo cáo: {period} ({start} – {end}); số liệu tích lũy đến ngày {as_of}",
        "period.month": "tháng {month}/{year}", "period.quarter": "quý {quarter}/{year}",
        "made": "Lập lúc {at} (giờ Việt Nam) · khóa API: {key}",
        "total": "Cả kỳ",
        "sheet.summary": "Tổng hợp", "sheet.visits": "Lượt đọc theo tháng", "sheet.communes": "Mô hình theo xã",
        "sheet.rotation": "Luân chuyển sách", "sheet.mobile": "Thư viện lưu động",
        "sheet.reading": "Khuyến đọc", "sheet.training": "Đào tạo", "sheet.donations": "Tài trợ",
        "sheet.quality": "Chất lượng báo cáo", "sheet.approval": "Phê duyệt",
        "col.indicator": "Chỉ số", "col.value": "Giá trị", "col.numerator": "Tử số", "col.denominator": "Mẫu số",
        "col.target": "Mục tiêu năm", "col.on_track": "Đánh giá",
        "col.month": "Tháng", "col.visits_total": "Lượt người sử dụng", "col.previous": "Cùng tháng năm trước",
        "col.growth": "Tăng so với năm trước", "col.visits_children": "Lượt thiếu nhi", "col.loans": "Lượt mượn",
        "col.reports": "Số báo cáo", "col.code": "Mã xã", "col.name": "Xã", "col.district": "Huyện (cũ)",
        "col.with_model": "Có mô hình", "col.libraries": "Số thư viện trong mô hình",
        "col.library_names": "Thư viện trong mô hình", "col.figure": "Nội dung", "col.share": "Tỷ lệ",
        "col.sessions": "Số buổi", "col.visits_adults": "Lượt người lớn", "col.occasion": "Dịp",
        "col.events": "Số hoạt động", "col.participants_total": "Người tham gia",
        "col.participants_children": "Thiếu nhi", "col.participants_adults": "Người lớn",
        "col.co_organised": "Phối hợp với thư viện tỉnh", "col.records": "Lượt đào tạo", "col.hours": "Số giờ",
        "col.workers": "Người được đào tạo", "col.workers_passed": "Người đạt", "col.donor_kind": "Nhà tài trợ",
        "col.donor_origin": "Nguồn", "col.donations": "Số lần tài trợ", "col.books": "Số sách",
        "col.money_vnd": "Số tiền (đồng)", "col.state": "Trạng thái", "col.approved_by": "Người phê duyệt",
        "col.approved_at": "Thời điểm phê duyệt",
        "indicator.K1": "K1 · Xã có mô hình thư viện cơ sở",
        "indicator.K2": "K2 · Thư viện phối hợp hiệu quả với thư viện tỉnh",
        "indicator.K3": "K3 · Người làm công tác thư viện đã được đào tạo",
        "indicator.K4": "K4 · Tăng lượt người sử dụng so với năm trước (cùng thư viện)",
        "indicator.completeness": "Báo cáo tháng đầy đủ", "indicator.timeliness": "Báo cáo tháng đúng hạn",
        "rotation.batches_dispatched": "Lô sách đã gửi", "rotation.copies_dispatched": "Bản sách đã gửi",
        "rotation.batches_in_circulation": "Lô đang luân chuyển",
        "rotation.copies_in_circulation": "Bản sách đang luân chuyển", "rotation.batches_overdue": "Lô quá hạn",
        "rotation.copies_lost": "Bản sách bị mất", "rotation.copies_damaged": "Bản sách bị hỏng",
        "rotation.loss_rate": "Tỷ lệ mất", "status.true": "Đạt", "status.false": "Chưa đạt",
        "status.none": "Chưa có số liệu", "yes": "Có", "no": "Không",
        "approval.approved": "Đã phê duyệt", "approval.provisional": "Tạm tính",
        "note.summary": "Chỉ số của năm, tính đến ngày số liệu; mục tiêu theo lộ trình của chương trình. K4 được "
                        "phê duyệt khi mọi tháng của năm và năm trước đã phê duyệt; K1–K3 đếm sổ đăng ký và luôn "
                        "tạm tính.",
        "note.visits": "Dòng «Cả kỳ»: tổng của kỳ và của cùng kỳ năm trước.",
        "note.communes": "Các xã thuộc chương trình và thư viện trong mô hình tại ngày số liệu.",
        "note.rotation": "Sách luân chuyển của tỉnh tại ngày số liệu.",
        "note.activities": "Theo tháng; dòng «Cả kỳ» là số của cả kỳ (người được đào tạo đếm một lần).",
        "note.quality": "Báo cáo tháng của năm, tính đến ngày số liệu (hạn: ngày 10 tháng sau).",
        "note.approval": "Tạm tính: số liệu chưa được phê duyệt, có thể thay đổi khi có báo cáo muộn.",
    },
    "en": {
        "title": "Grassroots library model programme report",
        "province": "Province: {name} (code {code}, {scheme})",
        "scheme.legacy": "boundaries before 1 July 2025", "scheme.2025": "boundaries from 1 July 2025",
        "period": "Period: {period} ({start} – {end}); cumulative figures as of {as_of}",
        "period.month": "month {month}/{year}", "period.quarter": "Q{quarter} {year}",
        "made": "Made {at} (Vietnam time) · API key: {key}",
        "total": "Whole period",
        "sheet.summary": "Summary", "sheet.visits": "Visits by month", "sheet.communes": "Model by commune",
        "sheet.rotation": "Book rotation", "sheet.mobile": "Mobile library", "sheet.reading": "Reading promotion",
        "sheet.training": "Training", "sheet.donations": "Donations", "sheet.quality": "Reporting quality",
        "sheet.approval": "Approval",
        "col.indicator": "Indicator", "col.value": "Value", "col.numerator": "Numerator",
        "col.denominator": "Denominator", "col.target": "Target for the year", "col.on_track": "Status",
        "col.month": "Month", "col.visits_total": "Visits", "col.previous": "Same month last year",
        "col.growth": "Change on last year", "col.visits_children": "Children's visits", "col.loans": "Loans",
        "col.reports": "Reports", "col.code": "Commune code", "col.name": "Commune",
        "col.district": "District (former)",
        "col.with_model": "In the model", "col.libraries": "Libraries in the model",
        "col.library_names": "Libraries in the model (names)", "col.figure": "Figure", "col.share": "Rate",
        "col.sessions": "Sessions", "col.visits_adults": "Adults' visits", "col.occasion": "Occasion",
        "col.events": "Events", "col.participants_total": "Participants", "col.participants_children": "Children",
        "col.participants_adults": "Adults", "col.co_organised": "Co-organised with the provincial library",
        "col.records": "Training records", "col.hours": "Hours", "col.workers": "Workers trained",
        "col.workers_passed": "Workers passed", "col.donor_kind": "Donor", "col.donor_origin": "Origin",
        "col.donations": "Donations", "col.books": "Books", "col.money_vnd": "Amount (VND)", "col.state": "State",
        "col.approved_by": "Approved by", "col.approved_at": "Approved at",
        "indicator.K1": "K1 · Communes with a grassroots library model",
        "indicator.K2": "K2 · Libraries coordinating with the provincial library",
        "indicator.K3": "K3 · Library workers trained",
        "indicator.K4": "K4 · Growth in visits on last year (same libraries)",
        "indicator.completeness": "Monthly reports complete", "indicator.timeliness": "Monthly reports on time",
        "rotation.batches_dispatched": "Batches dispatched", "rotation.copies_dispatched": "Copies dispatched",
        "rotation.batches_in_circulation": "Batches in circulation",
        "rotation.copies_in_circulation": "Copies in circulation", "rotation.batches_overdue": "Batches overdue",
        "rotation.copies_lost": "Copies lost", "rotation.copies_damaged": "Copies damaged",
        "rotation.loss_rate": "Loss rate", "status.true": "On track", "status.false": "Behind",
        "status.none": "No data yet", "yes": "Yes", "no": "No",
        "approval.approved": "Approved", "approval.provisional": "Provisional",
        "note.summary": "The year's indicators as of the figures' date; targets from the programme's milestones. "
                        "K4 is approved when every month of the year and the year before is; K1–K3 count the "
                        "registry and stay provisional.",
        "note.visits": "Row “Whole period”: the period's total and the same period a year earlier.",
        "note.communes": "The programme's communes and the libraries in the model on the figures' date.",
        "note.rotation": "The province's rotation books on the figures' date.",
        "note.activities": "By month; “Whole period” is the period's figure (a worker trained counts once).",
        "note.quality": "The year's monthly reports as of the figures' date (due by the 10th of the next month).",
        "note.approval": "Provisional: not approved yet; late reports may still change the figures.",
    },
}


def filenames(report: ProvinceReport) -> tuple[str, str]:
    """``bao-cao-<province>-<period>.xlsx``: the province's name, code and scheme (codes are reused),
    in ASCII (the plain ``filename``) and in Vietnamese (``filename*``, RFC 5987)."""
    area, tail = report.area, f"{report.area['code']}-{report.area['scheme']}-{report.period}.xlsx"
    ascii_name = re.sub(r"[^a-z0-9]+", "-", (area["name_en"] or "").lower()).strip("-")
    vietnamese = unicodedata.normalize("NFC", re.sub(r"\s+", "-", (area["name_vi"] or "").strip().lower()))
    return (f"bao-cao-{ascii_name}-{tail}".replace("--", "-"), f"bao-cao-{vietnamese}-{tail}".replace("--", "-"))


def write_xlsx(report: ProvinceReport, lang: str, forms_dir: Path) -> bytes:
    labels = LABELS[lang]
    choices = choice_labels(forms_dir.resolve(), lang)
    book = Workbook()
    book.remove(book.active)
    for table in report.tables:
        _sheet(book.create_sheet(labels[table.name][:31]), report, table, labels, choices)
    book.properties.title = f"{labels['title']} — {_area_name(report, lang)} — {report.period}"
    book.properties.creator = report.key_name
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _area_name(report: ProvinceReport, lang: str) -> str:
    return report.area["name_vi"] if lang == "vi" else report.area["name_en"]


def _period_label(report: ProvinceReport, labels: dict[str, str]) -> str:
    year, rest = report.period.split("-")
    if rest.startswith("Q"):
        return labels["period.quarter"].format(quarter=rest[1:], year=year)
    return labels["period.month"].format(month=rest, year=year)


def _title_block(sheet: Worksheet, report: ProvinceReport, table: Table, labels: dict[str, str], lang: str) -> None:
    day = "{:%d/%m/%Y}".format
    lines = [
        (f"{labels['title']} — {labels[table.name]}", _TITLE),
        (labels["province"].format(name=_area_name(report, lang), code=report.area["code"],
                                   scheme=labels[f"scheme.{report.area['scheme']}"]), _BOLD),
        (labels["period"].format(period=_period_label(report, labels), start=day(report.start),
                                 end=day(report.end), as_of=day(report.as_of)), None),
        (labels["made"].format(at=f"{report.generated_at:%d/%m/%Y %H:%M}", key=report.key_name), None),
        (labels[table.note] if table.note else "", None),
    ]
    for row, (text, font) in enumerate(lines, start=1):
        cell = sheet.cell(row=row, column=1, value=text)
        if font:
            cell.font = font


def _sheet(sheet: Worksheet, report: ProvinceReport, table: Table, labels: dict[str, str],
           choices: dict[str, dict[str, str]]) -> None:
    lang = "vi" if labels is LABELS["vi"] else "en"
    _title_block(sheet, report, table, labels, lang)
    widths = [len(labels[f"col.{c.key}"]) for c in table.columns]
    for n, column in enumerate(table.columns, start=1):
        cell = sheet.cell(row=HEADER_ROW, column=n, value=labels[f"col.{column.key}"])
        cell.font, cell.fill = _BOLD, _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    row_number = HEADER_ROW
    for rows, total in ((table.rows, False), (table.totals, True)):
        for row in rows:
            row_number += 1
            for n, column in enumerate(table.columns, start=1):
                value = row.get(column.key)
                if total and column.kind == "month":
                    value = labels["total"]
                shown = _cell_value(column, value, labels, choices, lang)
                cell = sheet.cell(row=row_number, column=n, value=shown)
                if column.kind in FORMATS and not isinstance(shown, str):
                    cell.number_format = FORMATS[column.kind]
                if total:
                    cell.font = _BOLD
                widths[n - 1] = max(widths[n - 1], _shown_width(column, shown))
    sheet.freeze_panes = sheet.cell(row=HEADER_ROW + 1, column=1)
    for n, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(n)].width = min(max(width, 8) + 2, 60)


def _cell_value(column: Column, value: Any, labels: dict[str, str], choices: dict[str, dict[str, str]],
                lang: str) -> Any:
    """What the cell holds: numbers and dates as themselves (formatted by the cell), words in ``lang``."""
    kind = column.kind
    if kind == "status":
        return labels["status.none" if value is None else f"status.{str(bool(value)).lower()}"]
    if value is None:
        return None
    if kind == "label":
        return labels.get(f"{column.labels}.{value}") or choices.get(column.labels, {}).get(value, value)
    if kind == "name":
        return value[0] if lang == "vi" else value[1]
    if kind == "yes_no":
        return labels["yes" if value else "no"]
    if kind == "approval":
        return labels[f"approval.{value}"]
    if kind == "datetime" and isinstance(value, datetime):
        return value.replace(tzinfo=None)  # Asia/Ho_Chi_Minh already; Excel has no time zones
    return value


def _shown_width(column: Column, shown: Any) -> int:
    """About how many characters the cell shows once formatted."""
    if shown is None:
        return 0
    if isinstance(shown, str):
        return len(shown)
    if isinstance(shown, datetime):
        return 16
    if isinstance(shown, date):
        return 10
    if column.kind == "pct":
        return len(f"{shown * 100:,.1f}%")
    if column.kind == "decimal":
        return len(f"{shown:,.1f}")
    return len(f"{shown:,}")


@functools.cache
def choice_labels(forms_dir: Path, lang: str) -> dict[str, dict[str, str]]:
    """List name → choice → label in ``lang``, from the built XForms (their itext translations)."""
    found: dict[str, dict[str, str]] = {}
    for list_name, form in _CHOICE_LISTS.items():
        path = forms_dir / f"{form}.xml"
        if not path.is_file():
            continue  # the codes stand in for the labels
        root = ElementTree.parse(path).getroot()
        texts: dict[str, str] = {}
        for translation in root.iter(f"{_XF}translation"):
            if translation.get("lang", "").endswith(f"({lang})"):
                for text in translation.iter(f"{_XF}text"):
                    value = text.find(f"{_XF}value")
                    if value is not None and value.text:
                        texts[text.get("id", "")] = value.text
        for instance in root.iter(f"{_XF}instance"):
            if instance.get("id") == list_name:
                found[list_name] = {item.findtext(f"{_XF}name", ""): texts.get(item.findtext(f"{_XF}itextId", ""), "")
                                    for item in instance.iter(f"{_XF}item")}
    return found
