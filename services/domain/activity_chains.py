"""The activity forms' report chains: mobile library sessions, reading promotion, staff training
and donations. A chain keeps what its form's aggregates group by (``DIMENSIONS``) and sum
(``MEASURES``) of its current version; the columns another form has are empty (0 or "").

One processor, ``activities`` (``services/processors/pipeline.py``), folds the four forms into
``activity_chain_rows``; the store rolls them up as it does visits (``services/store/rollups.py``).
"""

from __future__ import annotations

from typing import Any

from services.domain.events import Envelope
from services.domain.forms import donation, mobile_session, reading_promotion, staff_training
from services.domain.report_chains import ChainKind

DIMENSIONS: tuple[str, ...] = ("occasion", "donor_kind", "donor_origin", "worker_id", "result")
MEASURES: tuple[str, ...] = ("visits_total", "visits_children", "visits_adults", "loans", "participants_total",
                             "participants_children", "participants_adults", "co_organised", "hours", "books",
                             "money_vnd")
# Which payload fields each form contributes (co_organised: the reading event's flag, as 0 or 1).
_FIELDS: dict[str, tuple[str, ...]] = {
    mobile_session.EVENT_TYPE: ("visits_total", "visits_children", "visits_adults", "loans"),
    reading_promotion.EVENT_TYPE: ("occasion", "participants_total", "participants_children",
                                   "participants_adults"),
    staff_training.EVENT_TYPE: ("worker_id", "result", "hours"),
    donation.EVENT_TYPE: ("donor_kind", "donor_origin", "books", "money_vnd"),
}
EMPTY: dict[str, Any] = {**dict.fromkeys(DIMENSIONS, ""), **dict.fromkeys(MEASURES, 0), "hours": 0.0}


def measure(event: Envelope) -> dict[str, Any]:
    values = dict(EMPTY)
    for name in _FIELDS[event.event_type]:
        values[name] = getattr(event.payload, name)
    if event.event_type == reading_promotion.EVENT_TYPE:
        values["co_organised"] = int(event.payload.co_organised_with_provincial_library)  # type: ignore[attr-defined]
    return values


ACTIVITY_CHAINS = ChainKind(event_types=tuple(_FIELDS), columns=(*DIMENSIONS, *MEASURES), measure=measure, empty=EMPTY)
