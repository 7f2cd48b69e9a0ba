"""Events on the wire: UTF-8 JSON of the pydantic models, the same in both modes."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel

from services.domain.approvals import ApprovalAction
from services.domain.dead_letters import DeadLetter, Rejection
from services.domain.events import Envelope, SubmissionRetracted
from services.domain.flag_checks import FlagCheck
from services.domain.forms import EVENT_MODELS
from services.domain.quality import QualityCheck
from services.domain.rotation import BatchChange

Message = Envelope | DeadLetter | Rejection | BatchChange | ApprovalAction | FlagCheck | QualityCheck
_MODELS: dict[str, type[BaseModel]] = {
    **EVENT_MODELS, "submission_retracted": SubmissionRetracted, "dead_letter": DeadLetter, "rejection": Rejection,
    "rotation_batch_change": BatchChange, "approval_action": ApprovalAction, "flag_check": FlagCheck,
    "quality_check": QualityCheck}


def encode(event: Message) -> bytes:
    return event.model_dump_json().encode("utf-8")


# encode() writes event_type among the first fields; reading it there lets pydantic parse the JSON
# once, in Rust (model_validate_json), instead of json.loads and then validating the dicts.
_EVENT_TYPE = re.compile(rb'"event_type":\s*"([a-z_]+)"')


def decode(data: bytes) -> Message:
    found = _EVENT_TYPE.search(data, 0, 200)
    event_type = found.group(1).decode() if found else json.loads(data).get("event_type", "")
    model = _MODELS.get(event_type)
    if model is None:
        raise ValueError(f"unknown event_type {event_type!r}")
    return model.model_validate_json(data)  # type: ignore[return-value]
