"""The visit-log form: counts for one day or session at one library (ISO 2789 vocabulary).

The XLSForm (odk-forms/visit_log.xlsx) enforces the same rules on the phone; they are
checked again here because a submission may come from an old form version, from Central,
or from something that is not ODK Collect at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import Envelope, NonNegative
from services.domain.forms import ParsedForm, rules
from services.domain.forms.common import count, event_date, library_areas
from services.domain.forms.rules import FieldRule
from services.domain.reference import Reference
from services.domain.submission import Submission

FORM_ID = "visit_log"
EVENT_TYPE = "visit_logged"
MAX_VISITS = 100_000  # per count and report: the form's bound, README's table


class VisitCounts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    visits_total: int = NonNegative
    visits_children: int = NonNegative
    visits_adults: int = NonNegative
    visits_female: int = NonNegative
    visits_male: int = NonNegative
    visits_ethnic_minority: int = NonNegative
    visits_learning: int = NonNegative
    visits_information: int = NonNegative
    visits_reading: int = NonNegative
    visits_events: int = NonNegative
    virtual_visits: int = NonNegative
    loans: int = NonNegative
    renewals: int = NonNegative
    new_registrations: int = NonNegative


COUNT_FIELDS: tuple[str, ...] = tuple(VisitCounts.model_fields)


class VisitLogged(Envelope):
    event_type: Literal["visit_logged"] = "visit_logged"
    payload: VisitCounts  # type: ignore[assignment]


EVENT_MODEL = VisitLogged

# (parts, Vietnamese name of the breakdown, English name): each must add up to visits_total
_SUMS_EQUAL_TOTAL = (
    (("visits_children", "visits_adults"), "trẻ em + người lớn", "children + adults"),
    (("visits_female", "visits_male"), "nữ + nam", "female + male"),
    (("visits_learning", "visits_information", "visits_reading", "visits_events"),
     "tổng theo mục đích", "sum by purpose"),
)

_PARTS_OF_TOTAL = (*(p for parts, _, _ in _SUMS_EQUAL_TOTAL for p in parts), "visits_ethnic_minority")

# Every rule parse checks, as the form must say it too (tests/test_form_rules.py).
RULES: tuple[FieldRule, ...] = (
    FieldRule("library_id", "server_only", not_in_form=rules.REGISTRY),
    rules.event_date("report_date"),
    *rules.counts(tuple(f for f in COUNT_FIELDS if f not in _PARTS_OF_TOTAL), MAX_VISITS),
    *rules.counts(_PARTS_OF_TOTAL, MAX_VISITS, not_in_form=rules.BOUNDED_BY_TOTAL),
    *(FieldRule(parts[-1], "sum_equals", others=(*parts[:-1], "visits_total")) for parts, _, _ in _SUMS_EQUAL_TOTAL),
    FieldRule("visits_ethnic_minority", "at_most_field", others=("visits_total",)),
)


def breakdown_errors(values: Mapping[str, int]) -> list[Reason]:
    """How a version's breakdowns fail to add up to its total: the intake refuses such a version, and
    the data-quality rules (``services/domain/quality.py``) flag a chain whose current version is one
    (a version accepted before this check, still in the log)."""
    reasons = []
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
    return reasons


def parse(submission: Submission, today: date, reference: Reference) -> ParsedForm:
    reasons: list[Reason] = []
    library_id, areas = library_areas(submission, reference, reasons)
    occurred_on = event_date(submission, "report_date", today, reasons)
    values = {name: count(submission, name, reasons, maximum=MAX_VISITS) for name in COUNT_FIELDS}
    reasons += breakdown_errors(values)
    if reasons:
        raise SubmissionRejected(reasons)
    return ParsedForm(library_id, occurred_on, areas, VisitCounts(**values))
