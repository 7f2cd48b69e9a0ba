"""Reading answers the way every form needs: counts, dates, the library and its areas."""

from __future__ import annotations

from datetime import date

from services.domain.errors import Reason
from services.domain.events import AdminArea
from services.domain.reference import Reference
from services.domain.submission import Submission

EARLIEST_DATE = date(2020, 1, 1)  # before the programme: surely a mistyped year


def count(submission: Submission, name: str, reasons: list[Reason], required: bool = False) -> int:
    raw = submission.answer(name)
    if raw is None or raw == "":
        if required:
            reasons.append(Reason("answer_missing", "Thiếu câu trả lời bắt buộc.", "A required answer is missing.",
                                  name))
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


def event_date(submission: Submission, name: str, today: date, reasons: list[Reason]) -> date:
    raw = submission.answer(name) or ""
    try:
        value = date.fromisoformat(raw[:10])
    except ValueError:
        reasons.append(Reason("date_invalid", f"Ngày '{raw}' không hợp lệ.", f"Date '{raw}' is not a valid date.",
                              name))
        return today
    if value > today:
        reasons.append(Reason("date_in_future", "Ngày không được ở tương lai.", "The date cannot be in the future.",
                              name))
    if value < EARLIEST_DATE:
        reasons.append(Reason("date_too_old", "Ngày trước năm 2020 (trước chương trình).",
                              "The date is before 2020, before the programme.", name))
    return value


def library_areas(submission: Submission, reference: Reference, reasons: list[Reason],
                  field: str = "library_id") -> tuple[str, list[AdminArea]]:
    library_id = submission.answer(field) or ""
    if not library_id:
        reasons.append(Reason("library_missing", "Chưa chọn thư viện.", "No library was chosen.", field))
        return library_id, []
    library = reference.libraries.get(library_id)
    if library is None:
        reasons.append(Reason("library_unknown", f"Thư viện '{library_id}' không có trong danh mục.",
                              f"Library '{library_id}' is not in the registry.", field))
        return library_id, []
    return library_id, list(library.areas)
