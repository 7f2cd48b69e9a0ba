"""Fold visit events into one state per report chain; the store sums chains into library-days.

The unit of state is a report chain (its first instanceID, ``root_id``): every version of a
chain and its retraction travel under that key, so one worker sees all of them, whichever
library or day an edit moves the report to. A chain's state is also its row in the store
(``visit_chains``), and visits per library per day are the store's sum over current chains:
no worker ever holds a library-day, so nothing splits when a chain moves.

The chain's current version is the one accepted last (``submitted_at``, then log position),
as ``current_facts`` and the oracle define it; a retraction counts as a version that withdraws
the chain. So the result depends on the set of versions seen, never on their arrival order
or on how many times each arrived. Each change bumps ``seq``, the row's version in the store
(``ReplacingMergeTree(seq)``): the same events folded again from the same state give the same
rows, so a batch written twice (a crash before its offsets were committed) changes nothing.

Pure: the caller loads the chains a batch touches, folds, and writes the chains it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Literal

from services.domain.events import SubmissionRetracted
from services.domain.forms.visit_log import COUNT_FIELDS, EVENT_TYPE, VisitLogged

Outcome = Literal["applied", "replaced", "duplicate", "stale", "conflict", "retracted"]
_NO_COUNTS = {name: 0 for name in COUNT_FIELDS}


@dataclass(frozen=True)
class VisitChain:
    """One report chain as it stands: what counts now (``counted``) and what it has seen."""

    root_id: str
    event_id: str  # the current version (or the retraction that withdrew the chain)
    submitted_at: datetime  # when the current version was accepted
    position: int  # its log position (the tie-break after submitted_at)
    counted: bool  # False once the current version is a retraction
    library_id: str
    day: date
    province_legacy: str
    commune_legacy: str
    province_2025: str
    commune_2025: str
    counts: dict[str, int]
    first_reported_at: datetime | None  # the chain's first version's acceptance (reporting timeliness)
    versions: dict[str, str] = field(default_factory=dict)  # every version seen: event_id → content hash
    seq: int = 1  # bumped on every change: the row's version in the store


@dataclass(frozen=True)
class Folded:
    """What a batch changed: the chains to write, and each event's outcome."""

    chains: dict[str, VisitChain]
    outcomes: list[tuple[object, Outcome, str]]  # (event, outcome, detail) in the order folded


def is_visit_event(event: object) -> bool:
    return isinstance(event, VisitLogged) or (
        isinstance(event, SubmissionRetracted) and event.payload.retracts_event_type == EVENT_TYPE)


def is_first_version(event: object) -> bool:
    """A chain's first version: a visit log that replaces nothing (not an edit, not a retraction)."""
    return isinstance(event, VisitLogged) and event.deprecated_id is None and event.event_id == event.root_id


def _areas(event: VisitLogged | SubmissionRetracted) -> dict[str, str]:
    legacy, current = event.area("legacy"), event.area("2025")
    return {"province_legacy": legacy.province_code, "commune_legacy": legacy.commune_code,
            "province_2025": current.province_code, "commune_2025": current.commune_code}


def _earliest(*times: datetime | None) -> datetime | None:
    return min((t for t in times if t is not None), default=None)


def _new_version(chain: VisitChain | None, event: VisitLogged, position: int) -> VisitChain:
    versions = {**(chain.versions if chain else {}), event.event_id: event.content_hash}
    first = _earliest(chain.first_reported_at if chain else None, event.submitted_at)
    return VisitChain(root_id=event.root_id, event_id=event.event_id, submitted_at=event.submitted_at,
                      position=position, counted=True, library_id=event.library_id, day=event.occurred_on,
                      counts=event.payload.model_dump(), first_reported_at=first, versions=versions,
                      seq=chain.seq + 1 if chain else 1, **_areas(event))


def _later(event: object, position: int, chain: VisitChain) -> bool:
    return (event.submitted_at, position) > (chain.submitted_at, chain.position)  # type: ignore[attr-defined]


def fold_event(chain: VisitChain | None, event: VisitLogged | SubmissionRetracted, position: int
               ) -> tuple[VisitChain | None, Outcome, str]:
    """The chain after one event at log ``position``; ``None`` only while nothing was ever seen."""
    if isinstance(event, SubmissionRetracted):
        if chain is not None and chain.event_id == event.event_id and not chain.counted:
            return chain, "duplicate", ""
        if chain is not None and not _later(event, position, chain):
            return chain, "stale", f"{event.event_id} is older than {chain.event_id}"
        # Kept even with nothing to withdraw yet: a version accepted before it, arriving late, stays out.
        base = chain or VisitChain(root_id=event.root_id, event_id=event.event_id, submitted_at=event.submitted_at,
                                   position=position, counted=False, library_id=event.library_id,
                                   day=event.occurred_on, counts=dict(_NO_COUNTS), first_reported_at=None,
                                   seq=0, **_areas(event))
        withdrawn = replace(base, event_id=event.event_id, submitted_at=event.submitted_at, position=position,
                            counted=False, seq=base.seq + 1)
        return withdrawn, ("retracted" if chain is not None and chain.counted else "stale"), (
            "" if chain is not None else f"nothing to retract yet for {event.root_id}")
    seen = chain.versions.get(event.event_id) if chain else None
    if chain is not None and seen is not None:
        if seen != event.content_hash:
            return chain, "conflict", f"instanceID {event.event_id} was seen with other answers"
        if chain.event_id == event.event_id and chain.counted:
            return chain, "duplicate", ""
        return chain, "stale", f"{event.event_id} was already replaced or retracted"
    if chain is not None and not _later(event, position, chain):
        # An older version arriving late: remembered (its first acceptance may be the chain's), not counted.
        older = replace(chain, versions={**chain.versions, event.event_id: event.content_hash},
                        first_reported_at=_earliest(chain.first_reported_at, event.submitted_at), seq=chain.seq + 1)
        return older, "stale", f"{event.event_id} is older than {chain.event_id}"
    outcome: Outcome = "replaced" if chain is not None and chain.counted else "applied"
    return _new_version(chain, event, position), outcome, ""


def fold_batch(chains: Mapping[str, VisitChain], batch: Iterable[tuple[int, object]]) -> Folded:
    """Fold a batch of events over the chains it touches (as loaded); return those it changed."""
    current = dict(chains)
    changed: dict[str, VisitChain] = {}
    outcomes: list[tuple[object, Outcome, str]] = []
    for position, event in batch:
        if not is_visit_event(event):
            continue
        before = current.get(event.root_id)  # type: ignore[attr-defined]
        after, outcome, detail = fold_event(before, event, position)  # type: ignore[arg-type]
        if after is not None and after is not before:
            current[after.root_id] = changed[after.root_id] = after
        outcomes.append((event, outcome, detail))
    return Folded(changed, outcomes)
