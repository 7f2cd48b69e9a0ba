"""A dead letter: something accepted or received that could not be applied, with why.

Nothing accepted is dropped: it ends in the aggregates or here, with the raw submission,
so an operator can read the reason, fix the cause (an account's scope, the registry) and
re-drive it through the intake.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from services.domain.errors import Reason

Stage = Literal["intake", "processor"]


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: Literal["dead_letter"] = "dead_letter"
    dead_letter_id: str
    stage: Stage
    reason_code: str
    reason_vi: str
    reason_en: str
    instance_id: str
    form_id: str
    library_id: str
    submitter: str
    content_hash: str
    raw_xml: str
    event_json: str = ""
    recorded_at: AwareDatetime

    @classmethod
    def of(cls, *, stage: Stage, reason: Reason, instance_id: str, form_id: str, library_id: str, submitter: str,
           content_hash: str, raw: bytes, recorded_at, event_json: str = "") -> DeadLetter:
        # Same submission, same reason → same id: re-sending it does not pile up copies.
        ident = hashlib.sha256(f"{stage}|{reason.code}|{instance_id}|{content_hash}".encode()).hexdigest()[:32]
        return cls(dead_letter_id=ident, stage=stage, reason_code=reason.code, reason_vi=reason.message_vi,
                   reason_en=reason.message_en, instance_id=instance_id, form_id=form_id, library_id=library_id,
                   submitter=submitter, content_hash=content_hash, raw_xml=raw.decode("utf-8", "replace"),
                   event_json=event_json, recorded_at=recorded_at)


class Rejection(BaseModel):
    """A submission the intake turned away (4xx) and the reason the phone was given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: Literal["rejection"] = "rejection"
    rejection_id: str
    form_id: str
    instance_id: str
    status: int
    reason_code: str
    reason_vi: str
    reason_en: str
    submitter: str
    received_at: AwareDatetime

    @property
    def library_id(self) -> str:  # partition key: rejections have no library worth keying on
        return ""
