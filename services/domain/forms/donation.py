"""The donation form: books and/or money received for one library, by kind and origin of donor.

Donors are not named (individuals' names are personal data). ``money_vnd`` is asked as digits in
a text question (appearance ``numbers``): ODK Collect's integer widget stops at 9 digits
(under 1 billion VND), which a sponsorship can exceed. The XLSForm (odk-forms/donation.xlsx)
enforces the same rules on the phone.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import Envelope, NonNegative
from services.domain.forms import ParsedForm, rules
from services.domain.forms.common import choice, count, event_date, library_areas
from services.domain.forms.rules import FieldRule
from services.domain.reference import Reference
from services.domain.submission import Submission

FORM_ID = "donation"
EVENT_TYPE = "donation_received"

DonorKind = Literal["enterprise", "organisation", "individual"]
DONOR_KINDS: tuple[str, ...] = ("enterprise", "organisation", "individual")
DonorOrigin = Literal["domestic", "foreign"]
DONOR_ORIGINS: tuple[str, ...] = ("domestic", "foreign")
MAX_BOOKS = 1_000_000
MAX_MONEY_VND = 999_999_999_999  # 12 digits, as the form allows
# digits only, as the form's regex(): int() alone would also take '+5', '1_000' or other scripts' digits
MONEY_PATTERN = f"[0-9]{{1,{len(str(MAX_MONEY_VND))}}}"


class Donation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    donor_kind: DonorKind
    donor_origin: DonorOrigin
    books: int = NonNegative
    money_vnd: int = Field(ge=0, le=MAX_MONEY_VND)


class DonationReceived(Envelope):
    event_type: Literal["donation_received"] = "donation_received"
    payload: Donation  # type: ignore[assignment]


EVENT_MODEL = DonationReceived

# Every rule parse checks, as the form must say it too (tests/test_form_rules.py).
RULES: tuple[FieldRule, ...] = (
    FieldRule("library_id", "server_only", not_in_form=rules.REGISTRY),
    rules.choice("donor_kind", DONOR_KINDS),
    rules.choice("donor_origin", DONOR_ORIGINS),
    *rules.counts(("books",), MAX_BOOKS),
    FieldRule("money_vnd", "pattern", pattern=MONEY_PATTERN),
    FieldRule("money_vnd", "range", low=0, high=MAX_MONEY_VND,
              not_in_form="A text question (numeric keyboard): its pattern's 12 digits at most are this bound."),
    FieldRule("money_vnd", "some_positive", others=("books",)),
    rules.event_date("received_on"),
)


def parse(submission: Submission, today: date, reference: Reference) -> ParsedForm:
    reasons: list[Reason] = []
    library_id, areas = library_areas(submission, reference, reasons)
    donor_kind = choice(submission, "donor_kind", DONOR_KINDS, reasons)
    donor_origin = choice(submission, "donor_origin", DONOR_ORIGINS, reasons)
    books = count(submission, "books", reasons, required=True, maximum=MAX_BOOKS)
    raw_money = (submission.answer("money_vnd") or "").strip()
    if raw_money and re.fullmatch(MONEY_PATTERN, raw_money) is None:
        money = 0
        shown = raw_money[:40]
        reasons.append(Reason("not_a_number", f"'{shown}' không phải số nguyên (chỉ chữ số, tối đa 12 chữ số).",
                              f"'{shown}' is not a whole number (digits only, 12 at most).", "money_vnd"))
    else:
        money = count(submission, "money_vnd", reasons, required=True, maximum=MAX_MONEY_VND)
    if books <= 0 and money <= 0:
        reasons.append(Reason("donation_empty", "Phải có sách hoặc tiền (ít nhất một trong hai lớn hơn 0).",
                              "A donation has books or money: at least one must be more than 0.", "books"))
    occurred_on = event_date(submission, "received_on", today, reasons)
    if reasons:
        raise SubmissionRejected(reasons)
    return ParsedForm(library_id, occurred_on, areas, Donation(
        donor_kind=donor_kind, donor_origin=donor_origin, books=books, money_vnd=money))  # type: ignore[arg-type]
