"""Events: what the rest of the pipeline knows of a field submission.

One event per ODK submission. ``Envelope`` holds what every event carries; each form's
module in ``services/domain/forms/`` defines its payload and event model. The models are
the source of the JSON Schemas in ``schemas/events/`` (``python -m services.tools.export_schemas``
writes them; a test checks the committed files match). Plain pydantic, no framework imports.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Scheme = Literal["legacy", "2025"]
SCHEMES: tuple[Scheme, ...] = ("legacy", "2025")
Source = Literal["openrosa", "central", "samples"]

SCHEMA_VERSION = 1


class AdminArea(BaseModel):
    """Where a library sits under one admin scheme. Codes are reused across schemes, so never bare."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Scheme
    province_code: str = Field(pattern=r"^\d{2}$")
    commune_code: str = Field(pattern=r"^\d{5}$")


class AttachmentRef(BaseModel):
    """A file sent with a submission, stored by content (sha256); the phone's name is only a label."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    media_type: str


class Envelope(BaseModel):
    """Fields every event carries, whatever its kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_type: str
    event_id: str = Field(min_length=1, description="ODK meta/instanceID of this version.")
    root_id: str = Field(min_length=1, description="instanceID of the first version of the edit chain.")
    deprecated_id: str | None = Field(default=None, description="ODK meta/deprecatedID: the version replaced.")
    form_id: str
    form_version: str
    submitted_at: AwareDatetime = Field(description=(
        "Acceptance (Asia/Ho_Chi_Minh): arrival at the intake, or for a submission pulled from ODK Central "
        "its arrival there (submissionDate). A re-published version (reinstated) is stamped when re-published."))
    occurred_on: date = Field(description="Event time, from the form (Asia/Ho_Chi_Minh calendar day).")
    library_id: str
    areas: list[AdminArea] = Field(min_length=2, max_length=2, description="One per scheme.")
    submitter: str
    source: Source
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the submission's answers.")
    attachments: list[AttachmentRef] = Field(default_factory=list)
    payload: dict[str, Any]

    def area(self, scheme: Scheme) -> AdminArea:
        for area in self.areas:  # two of them: a loop, not a generator, on the processors' hot path
            if area.scheme == scheme:
                return area
        raise LookupError(f"no {scheme} area")


NonNegative = Field(ge=0, le=1_000_000)


class Retraction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    retracts_event_type: str
    reason_code: str
    reason: str


class SubmissionRetracted(Envelope):
    """A submission chain withdrawn (e.g. rejected in ODK Central's review): its contribution goes."""

    event_type: Literal["submission_retracted"] = "submission_retracted"
    payload: Retraction  # type: ignore[assignment]
