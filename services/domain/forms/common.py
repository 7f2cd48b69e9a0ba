"""Reading answers the way every form needs: counts, dates, choices, places, the library and its areas.

Each helper appends a ``Reason`` (Vietnamese and English, with the field) to ``reasons`` for
every problem and returns a harmless placeholder, so a form's ``parse`` can report every
problem of a submission at once and raise ``SubmissionRejected`` at the end.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from services.domain.errors import Reason
from services.domain.events import AdminArea
from services.domain.reference import Reference
from services.domain.submission import Submission

EARLIEST_DATE = date(2020, 1, 1)  # before the programme: surely a mistyped year
MAX_COUNT = 1_000_000  # the payload models' bound (events.NonNegative)

# A rough box around Vietnam, with a margin: a point outside it is a GPS or typing error.
_VIETNAM_LATITUDE = (8.0, 24.0)
_VIETNAM_LONGITUDE = (102.0, 110.0)


def _missing(name: str) -> Reason:
    return Reason("answer_missing", "Thiếu câu trả lời bắt buộc.", "A required answer is missing.", name)


def _given(submission: Submission, name: str, reasons: list[Reason], required: bool, strip: bool = False) -> str:
    """The answer as sent; "" when absent or blank, a reason appended if it was required. Fields added
    in later form versions may be absent from older submissions, so not every field is required."""
    raw = submission.answer(name) or ""
    if strip:
        raw = raw.strip()
    if not raw and required:
        reasons.append(_missing(name))
    return raw


def count(submission: Submission, name: str, reasons: list[Reason], required: bool = False,
          maximum: int = MAX_COUNT) -> int:
    raw = _given(submission, name, reasons, required)
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        reasons.append(Reason("not_a_number", f"'{raw}' không phải số nguyên.", f"'{raw}' is not a whole number.",
                              name))
        return 0
    if value < 0:
        reasons.append(Reason("negative_count", "Số đếm không được âm.", "Counts cannot be negative.", name))
    elif value > maximum:
        reasons.append(Reason("number_too_large", f"Số {value} quá lớn (tối đa {maximum}).",
                              f"{value} is too large (at most {maximum}).", name))
        return 0
    return value


def decimal(submission: Submission, name: str, reasons: list[Reason], *, above: float, maximum: float,
            required: bool = True) -> float:
    """A decimal answer with ``above < value <= maximum``; 0.0 when missing or wrong."""
    raw = _given(submission, name, reasons, required)
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):  # NaN or infinite
        reasons.append(Reason("not_a_number", f"'{raw}' không phải số.", f"'{raw}' is not a number.", name))
        return 0.0
    if not above < value <= maximum:
        reasons.append(Reason("number_out_of_range", f"{raw} phải lớn hơn {above:g} và không quá {maximum:g}.",
                              f"{raw} must be more than {above:g} and at most {maximum:g}.", name))
        return 0.0
    return value


def _check_date(raw: str, name: str, today: date, earliest: date, reasons: list[Reason],
                too_old_vi: str, too_old_en: str) -> date | None:
    try:
        value = date.fromisoformat(raw[:10])
    except ValueError:
        reasons.append(Reason("date_invalid", f"Ngày '{raw}' không hợp lệ.", f"Date '{raw}' is not a valid date.",
                              name))
        return None
    if value > today:
        reasons.append(Reason("date_in_future", "Ngày không được ở tương lai.", "The date cannot be in the future.",
                              name))
    if value < earliest:
        reasons.append(Reason("date_too_old", too_old_vi, too_old_en, name))
    return value


def event_date(submission: Submission, name: str, today: date, reasons: list[Reason]) -> date:
    """The date the event happened: not in the future, not before 2020. ``today`` when wrong."""
    value = _check_date(submission.answer(name) or "", name, today, EARLIEST_DATE, reasons,
                        "Ngày trước năm 2020 (trước chương trình).", "The date is before 2020, before the programme.")
    return today if value is None else value


def past_date(submission: Submission, name: str, today: date, reasons: list[Reason], earliest: date,
              required: bool = True) -> date | None:
    """A date in the past that may precede the programme (e.g. when a library opened)."""
    raw = _given(submission, name, reasons, required)
    if not raw:
        return None
    return _check_date(raw, name, today, earliest, reasons,
                       f"Ngày trước {earliest:%d/%m/%Y}: hãy kiểm tra năm.",
                       f"The date is before {earliest.isoformat()}: check the year.")


def choice(submission: Submission, name: str, allowed: Collection[str], reasons: list[Reason],
           required: bool = True) -> str | None:
    """A select_one answer that must be one of ``allowed``; None when missing or not allowed."""
    raw = _given(submission, name, reasons, required)
    if not raw:
        return None
    if raw not in allowed:
        options = ", ".join(sorted(allowed))
        reasons.append(Reason("choice_unknown", f"Lựa chọn '{raw}' không hợp lệ (được chọn: {options}).",
                              f"'{raw}' is not one of the choices ({options}).", name))
        return None
    return raw


def choices(submission: Submission, name: str, allowed: Collection[str], reasons: list[Reason],
            required: bool = True) -> tuple[str, ...]:
    """A select_multiple answer (space-separated names), each one of ``allowed``; sorted, no repeats."""
    picked = (submission.answer(name) or "").split()
    if not picked:
        if required:
            reasons.append(Reason("answer_missing", "Chọn ít nhất một mục.", "Choose at least one.", name))
        return ()
    unknown = sorted(set(picked) - set(allowed))
    if unknown:
        options = ", ".join(sorted(allowed))
        reasons.append(Reason("choice_unknown", f"Lựa chọn không hợp lệ: {' '.join(unknown)} (được chọn: {options}).",
                              f"Not among the choices: {' '.join(unknown)} ({options}).", name))
    return tuple(sorted(set(picked) & set(allowed)))


def yes_no(submission: Submission, name: str, reasons: list[Reason]) -> bool:
    return choice(submission, name, ("yes", "no"), reasons) == "yes"


def text(submission: Submission, name: str, reasons: list[Reason], *, required: bool = True,
         max_length: int = 200, pattern: str | None = None, pattern_vi: str = "", pattern_en: str = "") -> str:
    """A free-text answer, stripped; ``pattern`` (a full-match regex) with its explanation in both languages."""
    value = _given(submission, name, reasons, required, strip=True)
    if not value:
        return ""
    if pattern is not None and (len(value) > max_length or re.fullmatch(pattern, value) is None):
        shown = value if len(value) <= 40 else value[:40] + "…"
        reasons.append(Reason("text_pattern", f"'{shown}' không đúng mẫu: {pattern_vi}",
                              f"'{shown}' does not have the expected form: {pattern_en}", name))
    elif len(value) > max_length:
        reasons.append(Reason("text_too_long", f"Quá dài ({len(value)} ký tự, tối đa {max_length}).",
                              f"Too long ({len(value)} characters, at most {max_length}).", name))
        return value[:max_length]
    return value


@dataclass(frozen=True)
class GeoPoint:
    latitude: float
    longitude: float
    accuracy_m: float | None


def geopoint(submission: Submission, name: str, reasons: list[Reason], required: bool = True) -> GeoPoint | None:
    """An ODK geopoint, ``"lat lon [altitude [accuracy]]"``, that lies in Vietnam (roughly)."""
    raw = _given(submission, name, reasons, required, strip=True)
    if not raw:
        return None
    parts = raw.split()
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if not 2 <= len(numbers) <= 4 or any(n != n for n in numbers):
        reasons.append(Reason("geopoint_invalid", f"Tọa độ '{raw}' không hợp lệ.",
                              f"'{raw}' is not a valid geopoint (latitude longitude altitude accuracy).", name))
        return None
    latitude, longitude = numbers[0], numbers[1]
    if not (_VIETNAM_LATITUDE[0] <= latitude <= _VIETNAM_LATITUDE[1]
            and _VIETNAM_LONGITUDE[0] <= longitude <= _VIETNAM_LONGITUDE[1]):
        reasons.append(Reason("geopoint_outside_vietnam",
                              f"Tọa độ ({latitude}, {longitude}) nằm ngoài Việt Nam; hãy lấy lại vị trí GPS.",
                              f"The point ({latitude}, {longitude}) is outside Vietnam; take the GPS position again.",
                              name))
        return None
    accuracy = numbers[3] if len(numbers) == 4 and numbers[3] >= 0 else None
    return GeoPoint(round(latitude, 6), round(longitude, 6), accuracy)


def commune_pair(submission: Submission, reference: Reference, reasons: list[Reason], *, province_field: str,
                 field_2025: str, field_legacy: str) -> list[AdminArea]:
    """A place answered as a 2025 commune (in the answered 2025 province) and the legacy commune it lies in.

    Codes are reused across schemes, so the form asks for both and each is checked under its own
    scheme: both must exist, the 2025 commune must lie in the province, and the legacy commune
    must map to the 2025 one (``commune_mapping.csv``). Returns ``[legacy, 2025]`` areas, or
    ``[]`` with reasons.
    """
    province = submission.answer(province_field) or ""
    code_2025 = submission.answer(field_2025) or ""
    code_legacy = submission.answer(field_legacy) or ""
    problems = len(reasons)
    if not province:
        reasons.append(Reason("province_missing", "Chưa chọn tỉnh.", "No province was chosen.", province_field))
    elif reference.province("2025", province) is None:
        reasons.append(Reason("province_unknown", f"Mã tỉnh '{province}' không có trong danh mục tỉnh (từ 01/07/2025).",
                              f"Province code '{province}' is not a current (2025) province.", province_field))
    new = reference.commune("2025", code_2025) if code_2025 else None
    if not code_2025:
        reasons.append(Reason("commune_missing", "Chưa chọn xã (đơn vị hành chính hiện hành).",
                              "No commune (current, 2025 scheme) was chosen.", field_2025))
    elif new is None:
        reasons.append(Reason("commune_unknown", f"Mã xã '{code_2025}' không có trong danh mục xã từ 01/07/2025.",
                              f"Commune code '{code_2025}' is not a commune of the 2025 scheme.", field_2025))
    elif province and new.province_code != province:
        reasons.append(Reason("commune_not_in_province",
                              f"Xã {new.name_vi} ({code_2025}) không thuộc tỉnh đã chọn ({province}).",
                              f"Commune {new.name_en} ({code_2025}) is not in the chosen province ({province}).",
                              field_2025))
    old = reference.commune("legacy", code_legacy) if code_legacy else None
    if not code_legacy:
        reasons.append(Reason("commune_missing", "Chưa chọn xã cũ (trước 01/07/2025).",
                              "No former commune (before 1 July 2025) was chosen.", field_legacy))
    elif old is None:
        reasons.append(Reason("commune_unknown",
                              f"Mã xã cũ '{code_legacy}' không có trong danh mục xã trước 01/07/2025.",
                              f"Commune code '{code_legacy}' is not a commune of the legacy (pre-2025) scheme.",
                              field_legacy))
    elif new is not None and not reference.maps_to(code_legacy, code_2025):
        reasons.append(Reason("commune_mapping_mismatch",
                              f"Xã cũ {old.name_vi} ({code_legacy}) không thuộc xã mới {new.name_vi} ({code_2025}) "
                              "theo danh mục sắp xếp đơn vị hành chính.",
                              f"Former commune {old.name_en} ({code_legacy}) did not go into the 2025 commune "
                              f"{new.name_en} ({code_2025}) according to the commune mapping.", field_legacy))
    if len(reasons) > problems or new is None or old is None:
        return []
    return [AdminArea(scheme="legacy", province_code=old.province_code, commune_code=old.code),
            AdminArea(scheme="2025", province_code=new.province_code, commune_code=new.code)]


def library_areas(submission: Submission, reference: Reference, reasons: list[Reason],
                  field: str = "library_id") -> tuple[str, list[AdminArea]]:
    library_id = submission.answer(field) or ""
    if not library_id:
        reasons.append(Reason("library_missing", "Chưa chọn thư viện.", "No library was chosen.", field))
        return library_id, []
    library = reference.libraries.get(library_id)
    if library is None:
        reasons.append(Reason("library_unknown",
                              f"Thư viện '{library_id}' không có trong danh mục. Nếu thư viện vừa được đăng ký, "
                              "hãy cập nhật biểu mẫu (Get Blank Form) rồi gửi lại.",
                              f"Library '{library_id}' is not in the registry. If it was registered just now, "
                              "update the forms (Get Blank Form) and send again.", field))
        return library_id, []
    return library_id, list(library.areas)
