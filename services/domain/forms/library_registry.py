"""The library-registry form: a grassroots library registered, updated, joined to the model, or
coordination agreed with the provincial library. One event type, ``library_registered``; the
payload's ``action`` says which.

A new library (``action = register``) is not in the registry yet, so it has no id. Its id is
``LIB-NEW-`` followed by the first 8 hexadecimal digits of the submission's ``meta/instanceID``
uuid, upper case (``uuid:3f2a9c1b-...`` → ``LIB-NEW-3F2A9C1B``): stable for that submission, and
unique in practice (a clash needs two registrations whose uuids share 32 bits). Its areas are
the communes answered on the form, under both schemes (2025 commune + the former commune it
lies in), checked against the reference data. Every other action names a library that must
already be in the registry, and takes the registry's areas.

A hostile or broken phone is checked here as well: a registration whose id is already in the
registry (a crafted instanceID; ``reference`` is the registry as the intake knows it now,
``services/domain/directory.py``) is refused, never allowed to replace another library; a
name must be one line of visible text (no control, format or line-separator characters, which
would corrupt the served ``libraries.csv`` or disguise a name) of at most ``MAX_NAME`` characters;
the province must be in the account's scope (the intake's scope check on the form's areas).

Caveat: an edited registration (``deprecatedID``) has a new instanceID, hence a new
``LIB-NEW-`` id; whatever maintains the registry from these events must key a new library on
the edit chain's ``root_id`` (which only the intake's ledger knows, after ``parse``).

The XLSForm (odk-forms/library_registry.xlsx) enforces the same rules on the phone; they are
checked again here (see visit_log.py for why).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import Envelope
from services.domain.forms import ParsedForm, rules
from services.domain.forms.common import choice, commune_pair, event_date, geopoint, library_areas, past_date, text
from services.domain.forms.rules import FieldRule
from services.domain.reference import Reference
from services.domain.submission import Submission

FORM_ID = "library_registry"
EVENT_TYPE = "library_registered"

Action = Literal["register", "update", "model_joined", "coordination_agreed"]
ACTIONS: tuple[str, ...] = ("register", "update", "model_joined", "coordination_agreed")
LibraryType = Literal["commune_public_library", "community_learning_centre", "culture_centre",
                      "post_office_culture_point", "law_bookcase", "other"]
LIBRARY_TYPES: tuple[str, ...] = ("commune_public_library", "community_learning_centre", "culture_centre",
                                  "post_office_culture_point", "law_bookcase", "other")
Status = Literal["operating", "suspended", "closed"]
STATUSES: tuple[str, ...] = ("operating", "suspended", "closed")
NEW_LIBRARY_PREFIX = "LIB-NEW-"
EARLIEST_OPENING = date(1950, 1, 1)
MAX_NAME = 200
_UUID_HEX = re.compile(r"^(?:uuid:)?([0-9a-fA-F]{8})-?[0-9a-fA-F]{4}")


class LibraryRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    name_vi: str | None = Field(default=None, max_length=200, description="register: required; update: if changed.")
    library_type: LibraryType | None = None
    status: Status | None = Field(default=None, description="update only.")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    location_accuracy_m: float | None = Field(default=None, ge=0)
    opened_on: date | None = Field(default=None, description="register only.")


class LibraryRegistered(Envelope):
    event_type: Literal["library_registered"] = "library_registered"
    payload: LibraryRegistration  # type: ignore[assignment]


EVENT_MODEL = LibraryRegistered


def new_library_id(instance_id: str) -> str | None:
    """``LIB-NEW-`` + the first 8 hex digits of the instanceID's uuid (upper case); None if not a uuid."""
    match = _UUID_HEX.match(instance_id.strip())
    return f"{NEW_LIBRARY_PREFIX}{match.group(1).upper()}" if match else None

# Every rule parse checks, as the form must say it too (tests/test_form_rules.py).
RULES: tuple[FieldRule, ...] = (
    rules.choice("action", ACTIONS),
    rules.event_date("effective_date"),
    FieldRule("library_id", "server_only", not_in_form=rules.REGISTRY),
    FieldRule("meta/instanceID", "server_only",
              not_in_form="ODK Collect makes the instanceID (a uuid); nobody answers it."),
    FieldRule("commune_legacy", "server_only", not_in_form=rules.REGISTRY),
    FieldRule("name_vi", "max_length", high=MAX_NAME),
    rules.choice("library_type", LIBRARY_TYPES),
    rules.choice("status", STATUSES),
    FieldRule("opened_on", "date_window", earliest=EARLIEST_OPENING),
    rules.geo_box("location"),
)


def parse(submission: Submission, today: date, reference: Reference) -> ParsedForm:
    reasons: list[Reason] = []
    action = choice(submission, "action", ACTIONS, reasons)
    occurred_on = event_date(submission, "effective_date", today, reasons)
    fields: dict[str, object] = {}
    library_id, areas = "", []
    if action == "register":
        library_id = new_library_id(submission.instance_id) or ""
        if not library_id:
            reasons.append(Reason("instance_id_not_uuid",
                                  "Mã bản ghi (instanceID) không phải uuid nên không tạo được mã thư viện mới.",
                                  "The instanceID is not a uuid, so no id can be made for the new library.",
                                  "meta/instanceID"))
        areas = commune_pair(submission, reference, reasons, province_field="province",
                             field_2025="commune_2025", field_legacy="commune_legacy")
        if library_id and library_id in reference.libraries and not submission.deprecated_id:
            reasons.append(Reason("library_id_taken",
                                  f"Mã thư viện {library_id} (từ instanceID) đã có trong danh mục; không đăng ký lại.",
                                  f"Library id {library_id} (from the instanceID) is already in the registry; "
                                  "it is not registered again.", "meta/instanceID"))
        fields["name_vi"] = _name(submission, reasons, required=True)
        fields["library_type"] = choice(submission, "library_type", LIBRARY_TYPES, reasons)
        fields["opened_on"] = past_date(submission, "opened_on", today, reasons, EARLIEST_OPENING)
        point = geopoint(submission, "location", reasons)
    elif action is not None:
        library_id, areas = library_areas(submission, reference, reasons)
        point = None
        if action == "update":
            fields["name_vi"] = _name(submission, reasons, required=False) or None
            fields["library_type"] = choice(submission, "library_type", LIBRARY_TYPES, reasons, required=False)
            fields["status"] = choice(submission, "status", STATUSES, reasons)
            point = geopoint(submission, "location", reasons, required=False)
    else:
        point = None
    if point is not None:
        fields |= {"latitude": point.latitude, "longitude": point.longitude, "location_accuracy_m": point.accuracy_m}
    if reasons:
        raise SubmissionRejected(reasons)
    return ParsedForm(library_id, occurred_on, areas, LibraryRegistration(action=action, **fields))  # type: ignore[arg-type]


def _name(submission: Submission, reasons: list[Reason], required: bool) -> str:
    """The library's name: one line of visible text, at most ``MAX_NAME`` characters."""
    value = text(submission, "name_vi", reasons, required=required, max_length=MAX_NAME)
    hidden = sorted({f"U+{ord(ch):04X}" for ch in value if unicodedata.category(ch)[0] == "C"
                     or unicodedata.category(ch) in ("Zl", "Zp")})
    if hidden:
        reasons.append(Reason("text_control_characters",
                              f"Tên có ký tự điều khiển hoặc ký tự ẩn ({', '.join(hidden[:5])}); hãy gõ lại tên.",
                              f"The name has control or invisible characters ({', '.join(hidden[:5])}); "
                              "type it again.", "name_vi"))
    return value
