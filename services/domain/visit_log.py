"""The visit-log form's answers → a validated ``VisitCounts`` and its event date.

The XLSForm (odk-forms/visit_log.xlsx) enforces the same rules on the phone; they are
checked again here because a submission may come from an old form version, from Central,
or from something that is not ODK Collect at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import COUNT_FIELDS, VisitCounts
from services.domain.submission import Submission

FORM_ID = "visit_log"
EARLIEST_REPORT_DATE = date(2020, 1, 1)

# (parts, whole, Vietnamese name of the breakdown, English name)
_SUMS_EQUAL_TOTAL = (
    (("visits_children", "visits_adults"), "trẻ em + người lớn", "children + adults"),
    (("visits_female", "visits_male"), "nữ + nam", "female + male"),
    (("visits_learning", "visits_information", "visits_reading", "visits_events"),
     "tổng theo mục đích", "sum by purpose"),
)


@dataclass(frozen=True)
class VisitReport:
    library_id: str
    occurred_on: date
    counts: VisitCounts


def _count(submission: Submission, name: str, reasons: list[Reason]) -> int:
    raw = submission.answer(name)
    if raw is None or raw == "":
        # Fields added in later form versions may be absent from older submissions.
        return 0
    try:
        value = int(raw)
    except ValueError:
        reasons.append(Reason("not_a_number", f"'{raw}' không phải số nguyên.", f"'{raw}' is not a whole number.",
                              name))
        return 0
    if value < 0:
        reasons.append(Reason("negative_count", "Số đếm không được âm.", "Counts cannot be negative.", name))
    return value


def parse_visit_report(submission: Submission, today: date) -> VisitReport:
    """Validate the answers; raise ``SubmissionRejected`` listing every problem found."""
    reasons: list[Reason] = []
    library_id = submission.answer("library_id") or ""
    if not library_id:
        reasons.append(Reason("library_missing", "Chưa chọn thư viện.", "No library was chosen.", "library_id"))

    occurred_on = today
    raw_date = submission.answer("report_date") or ""
    try:
        occurred_on = date.fromisoformat(raw_date[:10])
    except ValueError:
        reasons.append(Reason("date_invalid", f"Ngày báo cáo '{raw_date}' không hợp lệ.",
                              f"Report date '{raw_date}' is not a valid date.", "report_date"))
    else:
        if occurred_on > today:
            reasons.append(Reason("date_in_future", "Ngày báo cáo không được ở tương lai.",
                                  "The report date cannot be in the future.", "report_date"))
        if occurred_on < EARLIEST_REPORT_DATE:
            reasons.append(Reason("date_too_old", "Ngày báo cáo trước năm 2020.",
                                  "The report date is before 2020.", "report_date"))

    values = {name: _count(submission, name, reasons) for name in COUNT_FIELDS}
    total = values["visits_total"]
    for parts, name_vi, name_en in _SUMS_EQUAL_TOTAL:
        got = sum(values[p] for p in parts)
        if got != total:
            reasons.append(Reason("totals_inconsistent",
                                  f"Tổng {name_vi} ({got}) khác tổng lượt ({total}).",
                                  f"The {name_en} ({got}) differs from total visits ({total}).", parts[0]))
    if values["visits_ethnic_minority"] > total:
        reasons.append(Reason("totals_inconsistent", "Lượt người dân tộc thiểu số lớn hơn tổng lượt.",
                              "Ethnic-minority visits exceed total visits.", "visits_ethnic_minority"))
    if reasons:
        raise SubmissionRejected(reasons)
    return VisitReport(library_id=library_id, occurred_on=occurred_on, counts=VisitCounts(**values))
