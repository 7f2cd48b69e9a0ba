"""Data-quality flags marked "checked, correct" (Đã kiểm tra, đúng) by an officer (issue #17 item 2).

Plain domain code. A mark is an officer action like an approval: a ``FlagCheck`` event the query
service publishes on the ``approvals`` topic, archived with its log position beside the approval
actions and folded in log order when read, so it survives a replay and keeps who marked what when
(``schemas/AGGREGATES.md``, "Data quality").

A mark applies to the flag as it stood: it carries the flag's ``fingerprint`` (what the rule saw and
the versions of the chains it names). When the flag changes afterwards (an edit makes a different
outlier, a late report joins the month), the fingerprint no longer matches and the flag is shown
unchecked again; the mark is kept, and applies again if the flag returns to what was marked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

CheckAction = Literal["check", "uncheck"]
NOTE_MAX = 500  # characters of an officer's note


class FlagCheck(BaseModel):
    """An officer marks a flag checked and correct, or withdraws the mark, as published on the bus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: Literal["flag_check"] = "flag_check"  # first: the codec reads it there
    action_id: str
    action: CheckAction
    flag_id: str  # library_id/YYYY-MM/rule
    province: str  # the flag's legacy province: the approve scope that covers it may mark it
    fingerprint: str  # the flag as it stood when marked ("" for a withdrawal)
    note: str = ""
    by: str  # the API key's name
    at: datetime


@dataclass(frozen=True)
class Mark:
    """The standing mark of a flag: who, when, why, and which state of the flag it was given to."""

    fingerprint: str
    by: str
    at: datetime
    note: str

    def as_dict(self) -> dict[str, str]:
        return {"by": self.by, "at": self.at.isoformat(), "note": self.note}


def fingerprint(figures: Mapping[str, Any], instance_ids: Sequence[str]) -> str:
    """A flag's state: the figures its rule saw and the current versions of its chains."""
    text = json.dumps([figures, list(instance_ids)], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def fold(actions: Iterable[FlagCheck]) -> dict[str, Mark]:
    """flag_id → its standing mark, from the actions in log order: the last one wins."""
    marks: dict[str, Mark] = {}
    for action in actions:
        if action.action == "check":
            marks[action.flag_id] = Mark(action.fingerprint, action.by, action.at, action.note)
        else:
            marks.pop(action.flag_id, None)
    return marks


def applying(marks: Mapping[str, Mark], flag_id: str, current: str) -> Mark | None:
    """The mark that applies to a flag whose fingerprint is now ``current`` (None: unchecked)."""
    mark = marks.get(flag_id)
    return mark if mark is not None and mark.fingerprint == current else None
