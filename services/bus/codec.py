"""Events on the wire: UTF-8 JSON of the pydantic models, the same in both modes."""

from __future__ import annotations

import json

from services.domain.events import Envelope
from services.domain.forms import EVENT_MODELS


def encode(event: Envelope) -> bytes:
    return event.model_dump_json().encode("utf-8")


def decode(data: bytes) -> Envelope:
    raw = json.loads(data)
    model = EVENT_MODELS.get(raw.get("event_type", ""))
    if model is None:
        raise ValueError(f"unknown event_type {raw.get('event_type')!r}")
    return model.model_validate(raw)
