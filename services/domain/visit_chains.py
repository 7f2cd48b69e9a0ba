"""The visit log's report chains: a chain keeps its current version's counts.

Folded by ``services/domain/report_chains.py``; the ``daily_visits`` processor
(``services/processors/pipeline.py``) writes the chains to ``visit_chain_rows``, whose inserts the
store rolls up per library-month and per area-day and area-month (``services/store/rollups.py``).
"""

from __future__ import annotations

from services.domain.events import Envelope
from services.domain.forms.visit_log import COUNT_FIELDS, EVENT_TYPE
from services.domain.report_chains import ChainKind


def _counts(event: Envelope) -> dict[str, int]:
    return {name: getattr(event.payload, name) for name in COUNT_FIELDS}


VISIT_CHAINS = ChainKind(event_types=(EVENT_TYPE,), columns=COUNT_FIELDS, measure=_counts,
                         empty=dict.fromkeys(COUNT_FIELDS, 0))
