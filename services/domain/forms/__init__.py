"""Every programme form the intake accepts: its id, its event, and how its answers are read.

A form module provides ``FORM_ID``, ``EVENT_TYPE``, an event model (an ``Envelope`` with a
typed payload) and ``parse(submission, today, reference) -> ParsedForm``, which validates
the answers and raises ``SubmissionRejected`` with every problem found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from pydantic import BaseModel

from services.domain.events import AdminArea, Envelope
from services.domain.reference import Reference
from services.domain.submission import Submission

if TYPE_CHECKING:  # rules.py reads common.py, which is loaded through this package
    from services.domain.forms.rules import FieldRule


@dataclass(frozen=True)
class ParsedForm:
    library_id: str
    occurred_on: date
    areas: list[AdminArea]  # one per scheme
    payload: BaseModel


@dataclass(frozen=True)
class FormSpec:
    form_id: str
    event_type: str
    event_model: type[Envelope]
    parse: Callable[[Submission, date, Reference], ParsedForm]
    rules: tuple[FieldRule, ...]  # what ``parse`` checks, which the XLSForm repeats as constraints


def _specs() -> dict[str, FormSpec]:
    from services.domain.forms import (
        donation,
        library_registry,
        mobile_session,
        reading_promotion,
        rotation_movement,
        staff_training,
        visit_log,
    )

    modules = [visit_log, library_registry, rotation_movement, mobile_session, reading_promotion, staff_training,
               donation]
    return {m.FORM_ID: FormSpec(m.FORM_ID, m.EVENT_TYPE, m.EVENT_MODEL, m.parse, tuple(m.RULES)) for m in modules}


FORMS: dict[str, FormSpec] = _specs()
EVENT_MODELS: dict[str, type[Envelope]] = {spec.event_type: spec.event_model for spec in FORMS.values()}
