"""The staff-training form: one library worker's completion of one course (for K3, trained workers).

Workers are recorded by a pseudonymous id issued by the provincial library (``HG-0042``), never
by name: the pattern admits no spaces or lower-case letters, so a name cannot be typed in.
The XLSForm (odk-forms/staff_training.xlsx) enforces the same rules on the phone.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import Envelope
from services.domain.forms import ParsedForm, rules
from services.domain.forms.common import choice, decimal, event_date, library_areas, text
from services.domain.forms.rules import FieldRule
from services.domain.reference import Reference
from services.domain.submission import Submission

FORM_ID = "staff_training"
EVENT_TYPE = "staff_trained"

# 2–4 capital letters (the provincial library's prefix), a hyphen, 3–6 digits: HG-0042
WORKER_ID_PATTERN = r"[A-Z]{2,4}-[0-9]{3,6}"  # [0-9]: as the form's regex() reads it
MAX_WORKER_ID = 11
Course = Literal["library_basics", "reading_promotion", "digital_skills", "cataloguing", "children_services",
                 "rotation_mobile_service", "library_management", "other"]
COURSES: tuple[str, ...] = ("library_basics", "reading_promotion", "digital_skills", "cataloguing",
                            "children_services", "rotation_mobile_service", "library_management", "other")
Result = Literal["passed", "failed", "attended"]
RESULTS: tuple[str, ...] = ("passed", "failed", "attended")
MAX_HOURS = 500.0


class StaffTraining(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    worker_id: str = Field(pattern=f"^{WORKER_ID_PATTERN}$", description="Pseudonymous; never a name.")
    course: Course
    hours: float = Field(gt=0, le=MAX_HOURS)
    result: Result


class StaffTrained(Envelope):
    event_type: Literal["staff_trained"] = "staff_trained"
    payload: StaffTraining  # type: ignore[assignment]


EVENT_MODEL = StaffTrained

# Every rule parse checks, as the form must say it too (tests/test_form_rules.py).
RULES: tuple[FieldRule, ...] = (
    FieldRule("library_id", "server_only", not_in_form=rules.REGISTRY),
    FieldRule("worker_id", "pattern", pattern=WORKER_ID_PATTERN),
    FieldRule("worker_id", "max_length", high=MAX_WORKER_ID, not_in_form=rules.IMPLIED_BY_PATTERN),
    rules.choice("course", COURSES),
    FieldRule("hours", "range", low=0, above=True, high=MAX_HOURS),
    rules.event_date("completed_on"),
    rules.choice("result", RESULTS),
)


def parse(submission: Submission, today: date, reference: Reference) -> ParsedForm:
    reasons: list[Reason] = []
    library_id, areas = library_areas(submission, reference, reasons)
    worker_id = text(submission, "worker_id", reasons, max_length=MAX_WORKER_ID, pattern=WORKER_ID_PATTERN,
                     pattern_vi="mã ẩn danh do thư viện tỉnh cấp, ví dụ HG-0042 (không ghi họ tên).",
                     pattern_en="the pseudonymous id from the provincial library, e.g. HG-0042 (never a name).")
    course = choice(submission, "course", COURSES, reasons)
    hours = decimal(submission, "hours", reasons, above=0, maximum=MAX_HOURS)
    occurred_on = event_date(submission, "completed_on", today, reasons)
    result = choice(submission, "result", RESULTS, reasons)
    if reasons:
        raise SubmissionRejected(reasons)
    return ParsedForm(library_id, occurred_on, areas, StaffTraining(
        worker_id=worker_id, course=course, hours=hours, result=result))  # type: ignore[arg-type]
