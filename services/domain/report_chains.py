"""Fold a form's events into one state per report chain; the store sums chains into rollups.

The unit of state is a report chain (its first instanceID, ``root_id``): every version of a
chain and its retraction travel under that key, so one worker sees all of them, whichever
library or day an edit moves the report to. A chain's state is also its row in the store
(``visit_chain_rows`` for visit logs, ``activity_chain_rows`` for the activity forms), and every
total is the store's sum over current chains: no worker ever holds a library-day, so nothing
splits when a chain moves. What a chain carries of its current version (``values``) is the
form's: a visit log's counts, an activity's measures and dimensions (``ChainKind``).

The chain's current version is the one accepted last (``submitted_at``, then log position),
as ``current_facts`` and the oracle define it; a retraction counts as a version that withdraws
the chain. So the result depends on the set of versions seen, never on their arrival order
or on how many times each arrived. Each change bumps ``seq``, the row's version in the store
(``VersionedCollapsingMergeTree(sign, seq)``: the change is written as a cancel row of the chain
as loaded and its new row). Events folded again over the chains they already changed change
nothing, so a batch delivered twice, read against what the store holds, writes nothing the
second time.

Pure: the caller loads the chains a batch touches, folds, and writes the chains it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Literal

from services.domain.events import Envelope, SubmissionRetracted

Outcome = Literal["applied", "replaced", "duplicate", "stale", "conflict", "retracted"]


@dataclass(frozen=True)
class ChainKind:
    """The forms whose chains one processor folds, and what a chain keeps of its current version."""

    event_types: tuple[str, ...]
    columns: tuple[str, ...]  # the names of ``values``, as the store's columns
    measure: Callable[[Envelope], dict[str, Any]]  # a version's values (every column)
    empty: dict[str, Any]  # the values of a chain withdrawn before any version was seen

    def member(self, event: object) -> bool:
        if isinstance(event, SubmissionRetracted):
            return event.payload.retracts_event_type in self.event_types
        return isinstance(event, Envelope) and event.event_type in self.event_types


@dataclass(frozen=True)
class ChainChange:
    """A version or retraction the chain has seen, as a figure's lineage lists it: who sent it, through
    what, when it was accepted, and a retraction's reason."""

    event_id: str
    retraction: bool
    accepted_at: datetime
    submitter: str
    source: str
    reason_code: str = ""
    reason: str = ""

    @classmethod
    def of(cls, event: Envelope) -> ChainChange:
        if isinstance(event, SubmissionRetracted):
            return cls(event.event_id, True, event.submitted_at, event.submitter, event.source,
                       event.payload.reason_code, event.payload.reason)
        return cls(event.event_id, False, event.submitted_at, event.submitter, event.source)


@dataclass(frozen=True)
class ReportChain:
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
    values: dict[str, Any]  # the current version's (``ChainKind.measure``)
    event_type: str  # the form's event type (a withdrawn chain keeps its form's)
    first_reported_at: datetime | None  # the chain's first version's acceptance (reporting timeliness)
    versions: dict[str, str] = field(default_factory=dict)  # every version seen: event_id → content hash
    seq: int = 1  # bumped on every change: the row's version in the store
    # Every version and retraction seen, in acceptance order: a figure's lineage lists a chain's
    # history from its row, without reading the archive. (Empty on rows written before it was kept.)
    history: tuple[ChainChange, ...] = ()

    def seen(self, event: Envelope) -> ReportChain:
        """This chain with ``event`` in its history (in acceptance order, whatever order events arrive in)."""
        return replace(self, history=tuple(sorted((*self.history, ChainChange.of(event)),
                                                  key=lambda change: (change.accepted_at, change.event_id))))


@dataclass(frozen=True)
class Folded:
    """What a batch changed: the chains to write, and each event's outcome."""

    chains: dict[str, ReportChain]
    outcomes: list[tuple[object, Outcome, str]]  # (event, outcome, detail) in the order folded


def is_first_version(event: object) -> bool:
    """A chain's first version: a submission that replaces nothing (not an edit, not a retraction)."""
    return (isinstance(event, Envelope) and not isinstance(event, SubmissionRetracted)
            and event.deprecated_id is None and event.event_id == event.root_id)


def _areas(event: Envelope) -> dict[str, str]:
    legacy, current = event.area("legacy"), event.area("2025")
    return {"province_legacy": legacy.province_code, "commune_legacy": legacy.commune_code,
            "province_2025": current.province_code, "commune_2025": current.commune_code}


def _earliest(*times: datetime | None) -> datetime | None:
    return min((t for t in times if t is not None), default=None)


def _new_version(chain: ReportChain | None, event: Envelope, position: int, kind: ChainKind) -> ReportChain:
    versions = {**(chain.versions if chain else {}), event.event_id: event.content_hash}
    first = _earliest(chain.first_reported_at if chain else None, event.submitted_at)
    return ReportChain(root_id=event.root_id, event_id=event.event_id, submitted_at=event.submitted_at,
                       position=position, counted=True, library_id=event.library_id, day=event.occurred_on,
                       values=kind.measure(event), event_type=event.event_type, first_reported_at=first,
                       versions=versions, seq=chain.seq + 1 if chain else 1,
                       history=chain.history if chain else (), **_areas(event)).seen(event)


def _later(event: object, position: int, chain: ReportChain) -> bool:
    return (event.submitted_at, position) > (chain.submitted_at, chain.position)  # type: ignore[attr-defined]


def fold_event(chain: ReportChain | None, event: Envelope, position: int, kind: ChainKind
               ) -> tuple[ReportChain | None, Outcome, str]:
    """The chain after one event at log ``position``; ``None`` only while nothing was ever seen."""
    if isinstance(event, SubmissionRetracted):
        if chain is not None and chain.event_id == event.event_id and not chain.counted:
            return chain, "duplicate", ""
        if chain is not None and not _later(event, position, chain):
            # Withdraws nothing, but the chain's history names it (once), as the archive does.
            known = any(change.event_id == event.event_id for change in chain.history)
            return (chain if known else replace(chain, seq=chain.seq + 1).seen(event)), "stale", (
                f"{event.event_id} is older than {chain.event_id}")
        # Kept even with nothing to withdraw yet: a version accepted before it, arriving late, stays out.
        base = chain or ReportChain(root_id=event.root_id, event_id=event.event_id, submitted_at=event.submitted_at,
                                    position=position, counted=False, library_id=event.library_id,
                                    day=event.occurred_on, values=dict(kind.empty),
                                    event_type=event.payload.retracts_event_type, first_reported_at=None,
                                    seq=0, **_areas(event))
        withdrawn = replace(base, event_id=event.event_id, submitted_at=event.submitted_at, position=position,
                            counted=False, seq=base.seq + 1).seen(event)
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
                        first_reported_at=_earliest(chain.first_reported_at, event.submitted_at),
                        seq=chain.seq + 1).seen(event)
        return older, "stale", f"{event.event_id} is older than {chain.event_id}"
    outcome: Outcome = "replaced" if chain is not None and chain.counted else "applied"
    return _new_version(chain, event, position, kind), outcome, ""


def fold_batch(chains: Mapping[str, ReportChain], batch: Iterable[tuple[int, object]], kind: ChainKind) -> Folded:
    """Fold a batch's events of ``kind`` over the chains they touch (as loaded); return those it changed."""
    current = dict(chains)
    changed: dict[str, ReportChain] = {}
    outcomes: list[tuple[object, Outcome, str]] = []
    for position, event in batch:
        if not kind.member(event):
            continue
        before = current.get(event.root_id)  # type: ignore[attr-defined]
        after, outcome, detail = fold_event(before, event, position, kind)  # type: ignore[arg-type]
        if after is not None and after is not before:
            current[after.root_id] = changed[after.root_id] = after
        outcomes.append((event, outcome, detail))
    return Folded(changed, outcomes)
