"""Events on the wire: UTF-8 JSON of the pydantic models, the same in both modes."""

from __future__ import annotations

import json

from pydantic import BaseModel

from services.domain.dead_letters import DeadLetter, Rejection
from services.domain.events import Envelope, SubmissionRetracted
from services.domain.forms import EVENT_MODELS

Message = Envelope | DeadLetter | Rejection
_MODELS: dict[str, type[BaseModel]] = {
    **EVENT_MODELS, "submission_retracted": SubmissionRetracted, "dead_letter": DeadLetter, "rejection": Rejection}


def encode(event: Message) -> bytes:
    return event.model_dump_json().encode("utf-8")


def decode(data: bytes) -> Message:
    raw = json.loads(data)
    model = _MODELS.get(raw.get("event_type", ""))
    if model is None:
        raise ValueError(f"unknown event_type {raw.get('event_type')!r}")
    return model.model_validate(raw)  # type: ignore[return-value]
