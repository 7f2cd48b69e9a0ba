"""The processing pipeline, declared once: the only place a processor is described.

Each ``Processor`` says what it reads, what one unit of its state is about (the key its
input is partitioned by), where that state lives, how a batch folds and how the result is
written. In the spirit of arroyo's strategy chain (decode → fold → write → commit, one
declaration, any backend), the runners in ``services/processors/`` execute these
declarations and own everything around them, once: decoding a batch, retrying writes until
the store takes them, emitting to the next topic, committing offsets, metrics and logs.

- ``runner.py``: what every runner does with a batch (fold, write with retries, metrics, logs).
- ``embedded.py``: the one-process stack and the replay of the embedded log.
- ``worker.py``: the distributed worker (faust-streaming over Kafka); the Kafka replay runs it
  under a new consumer group.

Order matters only in the embedded runner: a processor that reads another's output comes after it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.bus.codec import Message
from services.bus.topics import (
    APPROVALS,
    DEAD_LETTERS,
    EVENT_TOPICS,
    QUALITY_CHECKS,
    REJECTIONS,
    ROTATION_BATCHES,
    Topic,
)
from services.config import Settings
from services.domain import quality as quality_domain
from services.domain import report_chains as chain_domain
from services.domain import rotation as rotation_domain
from services.domain.activity_chains import ACTIVITY_CHAINS
from services.domain.approvals import ApprovalAction
from services.domain.dead_letters import DeadLetter, Rejection
from services.domain.errors import Reason
from services.domain.events import Envelope, SubmissionRetracted
from services.domain.flag_checks import FlagCheck
from services.domain.periods import add_months
from services.domain.reference import Reference, default_reference
from services.domain.registry import registry_change
from services.domain.report_chains import ChainKind
from services.domain.state import State
from services.domain.visit_chains import VISIT_CHAINS
from services.store import approvals as approval_store
from services.store import quality as quality_store
from services.store import rotation as rotation_store
from services.store.clickhouse import Store

Batch = Sequence[tuple[int, Message]]  # (log position / offset, decoded message)


@dataclass
class Folded:
    """What a processor's fold made of one batch; its ``write`` takes it, the runner does the rest."""

    rows: Any = None  # what the processor's write takes
    outcomes: Counter[str] = field(default_factory=Counter)  # processor_events_processed_total{outcome}
    event_ids: list[str] = field(default_factory=list)  # for the batch's log line
    new_dead_letters: list[DeadLetter] = field(default_factory=list)  # opened now: counted and logged once
    emit: list[Message] = field(default_factory=list)  # published to their topics once the write succeeded


@dataclass(frozen=True)
class Processor:
    """One processor. Its state is in the store, read once per batch and written once, never in a
    worker: a partition that moves to another worker finds its state there at once."""

    name: str
    reads: tuple[Topic, ...]
    keyed_by: str  # what one unit of state is about: the key its input topics are partitioned by
    fold: Callable[[Batch, State | None, Any, datetime], Folded]  # (batch, keyed state, loaded, now)
    write: Callable[[Store, Folded], dict[str, int]]  # rows written per table; raises if the store refuses
    # State that is its own fact rows (report chains): read by ``load`` and handed to ``fold``. Its
    # flag says the batch may have been folded before (the runner knows: a crash after its write).
    load: Callable[[Store, Batch, bool], Any] | None = None
    # State as key → JSON (``processor_state``): the keys a batch touches, read before ``fold`` and
    # handed to it as a ``State``; the keys it changed are written after the rows.
    state_keys: Callable[[Batch], set[str]] | None = None


# --- report chains (visit logs; the activity forms): state per chain, kept in the store --------------


def _conflict_letter(event: Envelope, detail: str, now: datetime) -> DeadLetter:
    reason = Reason("instance_id_conflict", f"Mã bản ghi trùng với nội dung khác: {detail}",
                    f"Same instanceID with other answers: {detail}")
    return DeadLetter.of(stage="processor", reason=reason, instance_id=event.event_id, form_id=event.form_id,
                         library_id=event.library_id, submitter=event.submitter, content_hash=event.content_hash,
                         raw=b"", recorded_at=now, event_json=event.model_dump_json())


def report_chains(name: str, kind: ChainKind, table: str, checks_quality: bool = False) -> Processor:
    """A processor folding the report chains of ``kind``'s forms into ``table`` (a chain's row is its
    state; the store's views roll the rows up: ``schemas/AGGREGATES.md``, "Rollups"). With
    ``checks_quality``, it tells the quality stage which library-months its batch may have changed."""

    def load(store: Store, batch: Batch, redelivered: bool) -> dict[str, chain_domain.ReportChain]:
        """The chains the batch touches, as the store holds them: the fold cancels exactly these rows.

        A chain's first version usually has no row yet, but not always: the log can hold the same
        submission twice (published, then the intake's ledger failed and the phone sent it again),
        and a batch may have been folded before (``redelivered``: a crash between its write and its
        offsets). So the chains of first versions are looked up by key first (the sort key only, a
        narrow read), and only those found are read whole, with every edited or retracted chain; a
        redelivered batch reads every chain at once."""
        first: set[str] = set()
        edited: set[str] = set()
        for _, event in batch:
            if kind.member(event):
                (first if chain_domain.is_first_version(event) else edited).add(event.root_id)  # type: ignore[union-attr]
        if not redelivered:
            first = store.existing_roots(table, first - edited)
        return store.chains(table, kind, edited | first)

    def fold(batch: Batch, _state: State | None, chains: Any, now: datetime) -> Folded:
        result = chain_domain.fold_batch(chains, batch, kind)
        # (the row the store holds, the new one): written as a cancel row and a new row
        folded = Folded(rows=[(chains.get(root_id), after) for root_id, after in result.chains.items()])
        if checks_quality:
            # Where every event of the batch and every chain it touched stood before: a batch folded
            # again after a crash (nothing changes then) still names them all.
            checks = quality_domain.Checks()
            for _, event in batch:
                if kind.member(event):
                    checks.visit_changed(event.library_id, event.occurred_on)  # type: ignore[union-attr]
            for chain in chains.values():
                checks.visit_changed(chain.library_id, chain.day)
            folded.emit.extend(checks.messages())
        for event, outcome, detail in result.outcomes:
            folded.outcomes[outcome] += 1
            folded.event_ids.append(event.event_id)  # type: ignore[attr-defined]
            if outcome == "conflict":
                folded.new_dead_letters.append(_conflict_letter(event, detail, now))  # type: ignore[arg-type]
        return folded

    def write(store: Store, folded: Folded) -> dict[str, int]:
        return {"dead_letters": store.record_dead_letters(folded.new_dead_letters),
                table: store.write_chains(table, kind, folded.rows)}

    return Processor(name=name, reads=tuple(EVENT_TOPICS[t] for t in kind.event_types),
                     keyed_by="root_id (the report chain)", load=load, fold=fold, write=write)


DAILY_VISITS = report_chains("daily_visits", VISIT_CHAINS, "visit_chain_rows", checks_quality=True)
ACTIVITIES = report_chains("activities", ACTIVITY_CHAINS, "activity_chain_rows")


# --- the event archive: stateless --------------------------------------------------------------------


def _fold_archive(batch: Batch, _state: State | None, _loaded: Any, _now: datetime) -> Folded:
    events = [(p, e) for p, e in batch if isinstance(e, Envelope)]
    letters = [e for _, e in batch if isinstance(e, DeadLetter)]
    rejections = [e for _, e in batch if isinstance(e, Rejection)]
    folded = Folded(rows=(events, letters, rejections), new_dead_letters=letters)
    folded.outcomes["archived"] = len(batch)
    folded.emit.extend(_registry_checks(e for _, e in events))
    folded.event_ids = [e.event_id for _, e in events]
    return folded


def _registry_checks(events: Iterable[Envelope]) -> list[Message]:
    """A registry-form change (read by the quality stage from the archive) may open or close a library
    on any day: each library it names is checked again, every month."""
    checks = quality_domain.Checks()
    for event in events:
        if isinstance(event, SubmissionRetracted):
            if event.payload.retracts_event_type == "library_registered":
                checks.registry_changed(event.library_id)
        elif event.event_type == "library_registered":
            payload = event.payload.model_dump(mode="json")  # type: ignore[union-attr]
            checks.registry_changed(event.library_id)
            checks.registry_changed(registry_change(root_id=event.root_id, library_id=event.library_id,
                                                    occurred_on=event.occurred_on, payload=payload, areas=(),
                                                    order=0)["library_id"])
    return list(checks.messages())


def _write_archive(store: Store, folded: Folded) -> dict[str, int]:
    events, letters, rejections = folded.rows
    return {"rejections": store.record_rejections(rejections), "events": store.insert_events(events),
            "dead_letters": store.record_dead_letters(letters)}


EVENT_ARCHIVE = Processor(
    name="event_archive", reads=(*EVENT_TOPICS.values(), DEAD_LETTERS, REJECTIONS),
    keyed_by="event_id (rows are keyed by it; no state)", fold=_fold_archive, write=_write_archive)


# --- book rotation: two stages, a chain's versions, then a batch's movements --------------------------

ROTATION_EVENTS = EVENT_TOPICS["rotation_moved"]


def _fold_rotation_chains(batch: Batch, state: State | None, _loaded: Any, now: datetime) -> Folded:
    assert state is not None
    folded = Folded(rows=[])
    for position, event in batch:
        result = rotation_domain.fold_chain(state, event, position)
        if result is None:
            continue
        folded.outcomes[result.outcome] += 1
        folded.event_ids.append(event.event_id)  # type: ignore[union-attr]
        folded.emit.extend(result.changes)
        if result.outcome == "conflict":
            folded.new_dead_letters.append(_conflict_letter(event, result.detail, now))  # type: ignore[arg-type]
    return folded


def _write_rotation_chains(store: Store, folded: Folded) -> dict[str, int]:
    return {"dead_letters": store.record_dead_letters(folded.new_dead_letters)}


ROTATION_CHAINS = Processor(
    name="rotation_chains", reads=(ROTATION_EVENTS,), keyed_by="root_id (the movement's submission chain)",
    fold=_fold_rotation_chains, write=_write_rotation_chains,
    state_keys=lambda batch: {f"sub:{e.root_id}" for _, e in batch if isinstance(e, Envelope)})


@dataclass
class _RotationRows:
    batches: dict[str, rotation_domain.RotationBatchRow] = field(default_factory=dict)  # latest row per batch
    movements: dict[tuple[str, str], rotation_domain.RotationMovementRow] = field(default_factory=dict)
    letters: dict[str, rotation_domain.LetterChange] = field(default_factory=dict)  # latest per dead letter


def _fold_rotation_batches(batch: Batch, state: State | None, _loaded: Any, now: datetime) -> Folded:
    assert state is not None
    rows = _RotationRows()
    folded = Folded(rows=rows)
    for _position, change in batch:
        if not isinstance(change, rotation_domain.BatchChange):
            continue
        result = rotation_domain.apply_batch_change(state, change, now)
        folded.outcomes[result.outcome] += 1
        folded.event_ids.append(f"{change.batch_id}/{change.root_id}#{change.chain_seq}")
        for row in result.batches:
            rows.batches[row.batch_id] = row
        for movement in result.movements:
            rows.movements[(movement.batch_id, movement.root_id)] = movement
        for letter in result.letters:
            earlier = rows.letters.get(letter.letter.dead_letter_id)
            # opened then closed within one batch: still counted as opened once
            new = letter.new or (earlier is not None and earlier.new)
            rows.letters[letter.letter.dead_letter_id] = rotation_domain.LetterChange(letter.letter, letter.resolved,
                                                                                      new)
    folded.new_dead_letters = [c.letter for c in rows.letters.values() if c.new]
    return folded


def _write_rotation_batches(store: Store, folded: Folded) -> dict[str, int]:
    """Dead letters, then movements, then batches: a batch row is never ahead of its movements."""
    rows: _RotationRows = folded.rows
    return {"dead_letters": rotation_store.record_letters(store, list(rows.letters.values())),
            "rotation_movements": rotation_store.upsert_movements(store, list(rows.movements.values())),
            "rotation_batches": rotation_store.upsert_batches(store, list(rows.batches.values()))}


ROTATION_BATCHES_STAGE = Processor(
    name="rotation", reads=(ROTATION_BATCHES,), keyed_by="batch_id (the rotation batch)",
    fold=_fold_rotation_batches, write=_write_rotation_batches,
    state_keys=lambda batch: {f"batch:{c.batch_id}" for _, c in batch if isinstance(c, rotation_domain.BatchChange)})


# --- approvals: primary data carried by the log, archived with their positions ---------------------


def _fold_approvals(batch: Batch, _state: State | None, _loaded: Any, _now: datetime) -> Folded:
    """Stateless: the actions (approvals' and flag checks') and their log positions. Which of them take
    effect is decided when they are read, by folding them all in position order
    (``services/domain/approvals.py``, ``flag_checks.py``): the same log gives the same approvals and
    marks, whatever was folded when."""
    actions = [(p, a) for p, a in batch if isinstance(a, ApprovalAction | FlagCheck)]
    folded = Folded(rows=actions, event_ids=[a.action_id for _, a in actions])
    folded.outcomes["archived"] = len(actions)
    return folded


APPROVALS_ARCHIVE = Processor(
    name="approvals", reads=(APPROVALS,), keyed_by="— (one partition: the actions' order is the log's)",
    fold=_fold_approvals, write=lambda store, folded: {"approval_actions": approval_store.write_actions(
        store, folded.rows)})


# --- data quality: the flags of the library-months the stages above say may have changed -------------


@dataclass(frozen=True)
class _QualityInputs:
    chains: dict[str, list[quality_domain.ChainFacts]]
    stored: dict[tuple[str, Any, str], dict[str, Any]]
    operating: Callable[[str], Callable[[Any], bool]]


def _check_ranges(batch: Batch) -> dict[str, tuple[Any, Any]]:
    checks = quality_domain.Checks()
    for _, message in batch:
        if isinstance(message, quality_domain.QualityCheck):
            checks.add(message.library_id, message.first, message.last)
    return checks.ranges


def quality(reference: Reference, z_threshold: float) -> Processor:
    """The data-quality stage (``services/domain/quality.py``): each library-month a batch names is
    evaluated again from the chains as the store holds them, and its flags replaced: a flag that holds
    is written when it is new or changed, one that no longer holds is written with ``holds`` = 0."""

    def load(store: Store, batch: Batch, _redelivered: bool) -> _QualityInputs:
        ranges = _check_ranges(batch)
        return _QualityInputs(quality_store.chains(store, ranges), quality_store.stored_flags(store, ranges),
                              quality_store.operating_days(store, reference))

    def fold(batch: Batch, _state: State | None, inputs: Any, _now: datetime) -> Folded:
        folded = Folded(rows=[])
        for library_id, (first, last) in _check_ranges(batch).items():
            chains = inputs.chains.get(library_id, [])
            months = {quality_domain.month_of(c.day) for c in chains
                      if c.day >= first and (last is None or c.day < add_months(last, 1))}
            found = {f.key: f for f in quality_domain.evaluate(chains, months, inputs.operating(library_id),
                                                               z_threshold)}
            stored = {k: row for k, row in inputs.stored.items() if k[0] == library_id}
            for key, flag in found.items():
                row = quality_store.flag_row(flag, True, 0)
                was = stored.get(key)
                if was is None or [was[c] for c in quality_store.FLAG_COLUMNS[:-1]] != row[:-1]:
                    folded.rows.append(quality_store.flag_row(flag, True, (was["seq"] if was else 0) + 1))
                    folded.outcomes[f"flagged:{flag.rule}"] += 1
            for key, was in stored.items():
                if key not in found and was["holds"]:
                    folded.rows.append([*(was[c] for c in quality_store.FLAG_COLUMNS[:-1]), was["seq"] + 1])
                    folded.rows[-1][quality_store.FLAG_COLUMNS.index("holds")] = 0
                    folded.outcomes["cleared"] += 1
            folded.event_ids.append(f"{library_id}:{first:%Y-%m}")
        return folded

    def write(store: Store, folded: Folded) -> dict[str, int]:
        return {"quality_flags": quality_store.write_flags(store, folded.rows)}

    return Processor(name="quality", reads=(QUALITY_CHECKS,), keyed_by="library_id (the library's months)",
                     load=load, fold=fold, write=write)


def build_pipeline(reference: Reference, z_threshold: float) -> tuple[Processor, ...]:
    """Every processor, in the order the embedded runner runs them (the quality stage reads what the
    others wrote, so it comes last)."""
    return (DAILY_VISITS, ACTIVITIES, ROTATION_CHAINS, ROTATION_BATCHES_STAGE, EVENT_ARCHIVE, APPROVALS_ARCHIVE,
            quality(reference, z_threshold))


def pipeline_for(settings: Settings) -> tuple[Processor, ...]:
    return build_pipeline(default_reference(settings.libraries_file), settings.quality_z_threshold)


PIPELINE: tuple[Processor, ...] = build_pipeline(default_reference(),
                                                 Settings.model_fields["quality_z_threshold"].default)



def consumer_groups(pipeline: tuple[Processor, ...] = PIPELINE
                    ) -> list[tuple[tuple[Topic, ...], tuple[Processor, ...]]]:
    """The topics grouped by the processors that read them, in pipeline order. A distributed worker
    runs one agent per group, so a message is taken and acknowledged once, however many processors
    need it (two agents on one topic must both ack a message before its offset commits)."""
    readers: dict[Topic, list[Processor]] = {}
    for processor in pipeline:
        for topic in processor.reads:
            readers.setdefault(topic, []).append(processor)
    groups: dict[tuple[Processor, ...], list[Topic]] = {}
    for topic, processors in readers.items():
        groups.setdefault(tuple(processors), []).append(topic)
    return [(tuple(topics), processors) for processors, topics in groups.items()]
