"""The mobile-library form: one session of the mobile service at one stop (a village or a school).

The event is attributed to the serving library (its areas are the envelope's); the stop's
commune is in the payload under both schemes (``stop_areas``), because the visits and loans
count at the stop's commune. The photo is an attachment: the payload keeps only its file name.

The XLSForm (odk-forms/mobile_session.xlsx) enforces the same rules on the phone.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import AdminArea, Envelope, NonNegative
from services.domain.forms import ParsedForm, rules
from services.domain.forms.common import (
    choice,
    choices,
    commune_pair,
    count,
    event_date,
    geopoint,
    library_areas,
    text,
)
from services.domain.forms.rules import FieldRule
from services.domain.reference import Reference
from services.domain.submission import Submission

FORM_ID = "mobile_session"
EVENT_TYPE = "mobile_session_held"

Vehicle = Literal["library_van", "car", "motorbike", "boat", "other"]
VEHICLES: tuple[str, ...] = ("library_van", "car", "motorbike", "boat", "other")
Activity = Literal["book_lending", "reading_space", "storytelling", "book_introduction", "digital_services",
                   "film_screening", "contest", "other"]
ACTIVITIES: tuple[str, ...] = ("book_lending", "reading_space", "storytelling", "book_introduction",
                               "digital_services", "film_screening", "contest", "other")
MAX_VISITS = 100_000
MAX_TEAM = 100
MAX_PLACE = 200


class MobileSession(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    team: str = Field(min_length=1, max_length=100)
    vehicle: Vehicle
    stop_areas: list[AdminArea] = Field(min_length=2, max_length=2,
                                        description="The stop's commune, one per scheme (legacy, 2025).")
    village_or_school: str = Field(min_length=1, max_length=200)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    location_accuracy_m: float | None = Field(default=None, ge=0)
    visits_total: int = NonNegative
    visits_children: int = NonNegative
    visits_adults: int = NonNegative
    loans: int = NonNegative
    activities: list[Activity] = Field(min_length=1)
    photo: str | None = Field(default=None, description="File name of the photo attachment, if one was taken.")


class MobileSessionHeld(Envelope):
    event_type: Literal["mobile_session_held"] = "mobile_session_held"
    payload: MobileSession  # type: ignore[assignment]


EVENT_MODEL = MobileSessionHeld

# Every rule parse checks, as the form must say it too (tests/test_form_rules.py).
RULES: tuple[FieldRule, ...] = (
    FieldRule("library_id", "server_only", not_in_form=rules.REGISTRY),
    rules.event_date("session_date"),
    FieldRule("team", "max_length", high=MAX_TEAM),
    rules.choice("vehicle", VEHICLES),
    FieldRule("stop_commune_legacy", "server_only", not_in_form=rules.REGISTRY),
    FieldRule("village_or_school", "max_length", high=MAX_PLACE),
    rules.geo_box("location"),
    *rules.counts(("visits_total", "loans"), MAX_VISITS),
    *rules.counts(("visits_children", "visits_adults"), MAX_VISITS, not_in_form=rules.BOUNDED_BY_TOTAL),
    FieldRule("visits_adults", "sum_equals", others=("visits_children", "visits_total")),
    rules.choice("activities", ACTIVITIES),
)


def parse(submission: Submission, today: date, reference: Reference) -> ParsedForm:
    reasons: list[Reason] = []
    library_id, areas = library_areas(submission, reference, reasons)
    occurred_on = event_date(submission, "session_date", today, reasons)
    team = text(submission, "team", reasons, max_length=MAX_TEAM)
    vehicle = choice(submission, "vehicle", VEHICLES, reasons)
    stop_areas = commune_pair(submission, reference, reasons, province_field="province",
                              field_2025="stop_commune_2025", field_legacy="stop_commune_legacy")
    village = text(submission, "village_or_school", reasons, max_length=MAX_PLACE)
    point = geopoint(submission, "location", reasons)
    total = count(submission, "visits_total", reasons, required=True, maximum=MAX_VISITS)
    children = count(submission, "visits_children", reasons, required=True, maximum=MAX_VISITS)
    adults = count(submission, "visits_adults", reasons, required=True, maximum=MAX_VISITS)
    loans = count(submission, "loans", reasons, required=True, maximum=MAX_VISITS)
    if children + adults != total:
        reasons.append(Reason("totals_inconsistent",
                              f"Tổng trẻ em + người lớn ({children + adults}) khác tổng lượt ({total}).",
                              f"The children + adults ({children + adults}) differs from total visits ({total}).",
                              "visits_children"))
    activities = choices(submission, "activities", ACTIVITIES, reasons)
    photo = (submission.answer("photo") or "").strip() or None
    if reasons or point is None:
        raise SubmissionRejected(reasons)
    return ParsedForm(library_id, occurred_on, areas, MobileSession(
        team=team, vehicle=vehicle, stop_areas=stop_areas, village_or_school=village,  # type: ignore[arg-type]
        latitude=point.latitude, longitude=point.longitude, location_accuracy_m=point.accuracy_m,
        visits_total=total, visits_children=children, visits_adults=adults, loans=loans,
        activities=list(activities), photo=photo))  # type: ignore[arg-type]
