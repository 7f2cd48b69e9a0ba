"""The reading-promotion form: one event (book fair, storytelling, contest, ...) at or by one library,
and the yearly occasion it belongs to (21 April, 23 April, Lifelong Learning Week, 2 October, ...).

``co_organised_with_provincial_library`` feeds K2 (effective coordination). The XLSForm
(odk-forms/reading_promotion.xlsx) enforces the same rules on the phone.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import Envelope, NonNegative
from services.domain.forms import ParsedForm, rules
from services.domain.forms.common import choice, count, event_date, library_areas, text, yes_no
from services.domain.forms.rules import FieldRule
from services.domain.reference import Reference
from services.domain.submission import Submission

FORM_ID = "reading_promotion"
EVENT_TYPE = "reading_promotion_held"

ActivityType = Literal["book_fair", "reading_festival", "storytelling", "book_introduction", "contest",
                       "exhibition", "reading_club", "other"]
ACTIVITY_TYPES: tuple[str, ...] = ("book_fair", "reading_festival", "storytelling", "book_introduction", "contest",
                                   "exhibition", "reading_club", "other")
Occasion = Literal["book_day_21_04", "world_book_day_23_04", "lifelong_learning_week", "study_promotion_day_02_10",
                   "national_holiday", "local_holiday", "other"]
OCCASIONS: tuple[str, ...] = ("book_day_21_04", "world_book_day_23_04", "lifelong_learning_week",
                              "study_promotion_day_02_10", "national_holiday", "local_holiday", "other")
MAX_PARTICIPANTS = 100_000
MAX_DETAIL = 200
MAX_PARTNERS = 500


class ReadingPromotion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    activity_type: ActivityType
    occasion: Occasion
    occasion_detail: str | None = Field(default=None, max_length=MAX_DETAIL,
                                        description="Which holiday or occasion, for national/local/other.")
    participants_total: int = Field(ge=1, le=2 * MAX_PARTICIPANTS)
    participants_children: int = NonNegative
    participants_adults: int = NonNegative
    partners: str | None = Field(default=None, max_length=MAX_PARTNERS)
    co_organised_with_provincial_library: bool


class ReadingPromotionHeld(Envelope):
    event_type: Literal["reading_promotion_held"] = "reading_promotion_held"
    payload: ReadingPromotion  # type: ignore[assignment]


EVENT_MODEL = ReadingPromotionHeld

# Every rule parse checks, as the form must say it too (tests/test_form_rules.py).
RULES: tuple[FieldRule, ...] = (
    FieldRule("library_id", "server_only", not_in_form=rules.REGISTRY),
    rules.event_date("event_date"),
    rules.choice("activity_type", ACTIVITY_TYPES),
    rules.choice("occasion", OCCASIONS),
    FieldRule("occasion_detail", "max_length", high=MAX_DETAIL),
    *rules.counts(("participants_children", "participants_adults"), MAX_PARTICIPANTS),
    FieldRule("participants_adults", "sum_at_least", low=1, others=("participants_children",)),
    FieldRule("partners", "max_length", high=MAX_PARTNERS),
    rules.choice("co_organised_with_provincial_library", ("yes", "no")),
)


def parse(submission: Submission, today: date, reference: Reference) -> ParsedForm:
    reasons: list[Reason] = []
    library_id, areas = library_areas(submission, reference, reasons)
    occurred_on = event_date(submission, "event_date", today, reasons)
    activity_type = choice(submission, "activity_type", ACTIVITY_TYPES, reasons)
    occasion = choice(submission, "occasion", OCCASIONS, reasons)
    detail = text(submission, "occasion_detail", reasons, required=False, max_length=MAX_DETAIL) or None
    children = count(submission, "participants_children", reasons, required=True, maximum=MAX_PARTICIPANTS)
    adults = count(submission, "participants_adults", reasons, required=True, maximum=MAX_PARTICIPANTS)
    if children + adults < 1:
        reasons.append(Reason("count_zero", "Sự kiện phải có ít nhất 1 người tham gia.",
                              "An event has at least 1 participant.", "participants_adults"))
    partners = text(submission, "partners", reasons, required=False, max_length=MAX_PARTNERS) or None
    co_organised = yes_no(submission, "co_organised_with_provincial_library", reasons)
    if reasons:
        raise SubmissionRejected(reasons)
    return ParsedForm(library_id, occurred_on, areas, ReadingPromotion(
        activity_type=activity_type, occasion=occasion, occasion_detail=detail,  # type: ignore[arg-type]
        participants_total=children + adults, participants_children=children, participants_adults=adults,
        partners=partners, co_organised_with_provincial_library=co_organised))
