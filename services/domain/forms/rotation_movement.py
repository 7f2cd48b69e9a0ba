"""The book-rotation form: one movement of a batch (``batch_id``) of books between the provincial
library, or another grassroots library, and a grassroots library: dispatched, received or
returned. Rotation batches are interlibrary deposits, not user loans.

Only the submission itself is checked here (counts that fit together, known libraries). The
batch's life (dispatched → received → returned, once each) is a state machine across
submissions; a processor checks it, not the intake.

The XLSForm (odk-forms/rotation_movement.xlsx) enforces the same rules on the phone.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import Envelope, NonNegative
from services.domain.forms import ParsedForm, rules
from services.domain.forms.common import choice, count, event_date, library_areas, text
from services.domain.forms.rules import FieldRule
from services.domain.reference import Reference
from services.domain.submission import Submission

FORM_ID = "rotation_movement"
EVENT_TYPE = "rotation_moved"

Movement = Literal["dispatched", "received", "returned"]
MOVEMENTS: tuple[str, ...] = ("dispatched", "received", "returned")
Origin = Literal["provincial_library", "grassroots_library"]
ORIGINS: tuple[str, ...] = ("provincial_library", "grassroots_library")
# LC (luân chuyển) - 2025 province code of the sending library - year - sequence: LC-08-2025-014
# [0-9], not \d: the form's regex() reads the same text, and \d would take other scripts' digits here
BATCH_ID_PATTERN = r"LC-[0-9]{2}-20[0-9]{2}-[0-9]{3}"
MAX_BATCH_ID = 20
MAX_TITLES = 10_000
MAX_COPIES = 100_000


class RotationMovement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_id: str = Field(pattern=f"^{BATCH_ID_PATTERN}$")
    movement: Movement
    origin: Origin = Field(description="Where the batch comes from.")
    origin_province: str = Field(pattern=r"^\d{2}$", description="2025-scheme province of the sending library.")
    origin_library_id: str | None = Field(default=None, description="The sending grassroots library, if one.")
    titles: int = Field(ge=1, le=MAX_TITLES)
    copies: int = Field(ge=1, le=MAX_COPIES)
    ethnic_language_copies: int = NonNegative
    copies_lost: int = NonNegative
    copies_damaged: int = NonNegative


class RotationMoved(Envelope):
    event_type: Literal["rotation_moved"] = "rotation_moved"
    payload: RotationMovement  # type: ignore[assignment]


EVENT_MODEL = RotationMoved

# Every rule parse checks, as the form must say it too (tests/test_form_rules.py).
RULES: tuple[FieldRule, ...] = (
    FieldRule("batch_id", "pattern", pattern=BATCH_ID_PATTERN),
    FieldRule("batch_id", "max_length", high=MAX_BATCH_ID, not_in_form=rules.IMPLIED_BY_PATTERN),
    rules.choice("movement", MOVEMENTS),
    FieldRule("library_id", "server_only", not_in_form=rules.REGISTRY),
    rules.choice("origin", ORIGINS),
    FieldRule("origin_province", "server_only", not_in_form=rules.REGISTRY),
    FieldRule("origin_library_id", "not_field", others=("library_id",)),
    FieldRule("origin_library_id", "server_only", not_in_form=rules.REGISTRY + " The phone lists only the "
              "chosen province's libraries, so it keeps the sending library in its province."),
    FieldRule("titles", "range", low=1, high=MAX_TITLES),
    FieldRule("copies", "range", high=MAX_COPIES),  # at least the titles (>= 1): the next rule
    FieldRule("copies", "at_least_field", others=("titles",)),
    *rules.counts(("ethnic_language_copies", "copies_lost", "copies_damaged"), MAX_COPIES,
                  not_in_form=rules.BOUNDED_BY_TOTAL),
    FieldRule("ethnic_language_copies", "at_most_field", others=("copies",)),
    FieldRule("copies_damaged", "sum_at_most", others=("copies_lost", "copies")),
    FieldRule("copies_lost", "server_only", not_in_form="The form does not ask for losses on dispatch (the "
              "condition group's relevant: ${movement} != 'dispatched'), so the phone cannot send one."),
    rules.event_date("movement_date"),
)


def parse(submission: Submission, today: date, reference: Reference) -> ParsedForm:
    reasons: list[Reason] = []
    batch_id = text(submission, "batch_id", reasons, max_length=MAX_BATCH_ID, pattern=BATCH_ID_PATTERN,
                    pattern_vi="LC-<mã tỉnh 2 số>-<năm>-<số thứ tự 3 số>, ví dụ LC-08-2025-014.",
                    pattern_en="LC-<2-digit province code>-<year>-<3-digit number>, e.g. LC-08-2025-014.")
    movement = choice(submission, "movement", MOVEMENTS, reasons)
    library_id, areas = library_areas(submission, reference, reasons)
    origin = choice(submission, "origin", ORIGINS, reasons)
    origin_province = submission.answer("origin_province") or ""
    if not origin_province:
        reasons.append(Reason("province_missing", "Chưa chọn tỉnh của nơi gửi sách.",
                              "The province the batch comes from was not chosen.", "origin_province"))
    elif reference.province("2025", origin_province) is None:
        reasons.append(Reason("province_unknown", f"Mã tỉnh '{origin_province}' không có trong danh mục tỉnh.",
                              f"Province code '{origin_province}' is not a current (2025) province.",
                              "origin_province"))
    origin_library_id = None
    if origin == "grassroots_library":
        origin_library_id, origin_areas = library_areas(submission, reference, reasons, field="origin_library_id")
        if origin_library_id and origin_library_id == library_id:
            reasons.append(Reason("origin_is_library", "Thư viện gửi và thư viện nhận là một.",
                                  "The sending library and the library concerned are the same.", "origin_library_id"))
        elif origin_areas and origin_province and origin_areas[1].province_code != origin_province:
            reasons.append(Reason("library_not_in_province",
                                  f"Thư viện {origin_library_id} không thuộc tỉnh {origin_province}.",
                                  f"Library {origin_library_id} is not in province {origin_province}.",
                                  "origin_library_id"))
    titles = count(submission, "titles", reasons, required=True, maximum=MAX_TITLES)
    copies = count(submission, "copies", reasons, required=True, maximum=MAX_COPIES)
    ethnic = count(submission, "ethnic_language_copies", reasons, required=True, maximum=MAX_COPIES)
    lost = count(submission, "copies_lost", reasons, maximum=MAX_COPIES)
    damaged = count(submission, "copies_damaged", reasons, maximum=MAX_COPIES)
    if titles < 1:
        reasons.append(Reason("count_zero", "Lô sách phải có ít nhất 1 đầu sách.",
                              "A batch has at least 1 title.", "titles"))
    if copies < titles:
        reasons.append(Reason("totals_inconsistent", f"Số bản ({copies}) ít hơn số đầu sách ({titles}).",
                              f"Copies ({copies}) are fewer than titles ({titles}).", "copies"))
    if ethnic > copies:
        reasons.append(Reason("totals_inconsistent",
                              f"Số bản tiếng dân tộc thiểu số ({ethnic}) lớn hơn tổng số bản ({copies}).",
                              f"Ethnic-language copies ({ethnic}) exceed the copies in the batch ({copies}).",
                              "ethnic_language_copies"))
    if lost + damaged > copies:
        reasons.append(Reason("totals_inconsistent",
                              f"Số bản mất ({lost}) + hư hỏng ({damaged}) lớn hơn tổng số bản ({copies}).",
                              f"Lost ({lost}) + damaged ({damaged}) copies exceed the copies in the batch ({copies}).",
                              "copies_lost"))
    if movement == "dispatched" and lost + damaged > 0:
        reasons.append(Reason("loss_on_dispatch",
                              "Khi gửi đi chưa thể có sách mất hoặc hư hỏng; ghi khi nhận hoặc khi trả lô sách.",
                              "Lost or damaged copies are recorded on receipt or return, not on dispatch.",
                              "copies_lost"))
    occurred_on = event_date(submission, "movement_date", today, reasons)
    if reasons:
        raise SubmissionRejected(reasons)
    return ParsedForm(library_id, occurred_on, areas, RotationMovement(
        batch_id=batch_id, movement=movement, origin=origin, origin_province=origin_province,  # type: ignore[arg-type]
        origin_library_id=origin_library_id, titles=titles, copies=copies, ethnic_language_copies=ethnic,
        copies_lost=lost, copies_damaged=damaged))
