"""Book rotation: each batch (``batch_id``) is a state machine over its current movements.

Pure: no I/O. The state is a key→dict ``State`` port (``services/domain/state.py``); every
value is plain JSON. Two stages, each keyed by what it is about, so that a batch whose movements
come from different partitions (each movement is its own submission chain) is folded in one place:

1. The chain stage (``fold_chain``, keyed by ``root_id``), state ``sub:<root_id>``: the versions
   seen (event_id → content hash), which one counts now (the latest by ``submitted_at``, then log
   position; a retraction counts as a version that withdraws the chain), the batch its current
   version belongs to, and ``seq``, its count of changes. It emits ``BatchChange`` messages: the
   movement placed in its batch, or withdrawn from the batch it left (an edit into another batch,
   a retraction).
2. The batch stage (``apply_batch_change``, keyed by ``batch_id``), state ``batch:<batch_id>``:
   the batch's current movements by root_id (the event as JSON), the movements withdrawn from it
   (tombstones, so their rows are deleted), the highest ``seq`` applied per chain (so a change
   delivered twice, or late behind a newer one, changes nothing), its dead letters and a version
   counter.

After every change the batch is recomputed from scratch: movements ordered by
(``occurred_on``, dispatched < received < returned, ``submitted_at``, ``event_id``) walk
``(none) -dispatched-> dispatched -received-> received -returned-> returned``; a movement
that does not fit is invalid, with a reason in Vietnamese and English, and does not change
the batch. Only the set of current movements decides the result, never their arrival order.

Each fold returns every row of the touched batches (batch row, one row per movement, deleted
rows for withdrawn movements), all with the batch's new version, so writing them is an
idempotent upsert (ReplacingMergeTree by version). The version is a per-batch counter, not a
log position: a batch's movements may come from several partitions, whose offsets do not
compare. Dead letters: a movement that becomes invalid opens one (reason
``rotation_invalid_transition``, the event and the batch's history in ``event_json``); when a
later event makes it valid, or the movement is edited or withdrawn, it is rewritten resolved.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from services.domain.dead_letters import DeadLetter
from services.domain.errors import Reason
from services.domain.events import SubmissionRetracted
from services.domain.forms.rotation_movement import EVENT_TYPE, RotationMoved
from services.domain.state import State

REASON_CODE = "rotation_invalid_transition"
Status = Literal["none", "dispatched", "received", "returned"]
STATUSES: tuple[Status, ...] = ("none", "dispatched", "received", "returned")
_RANK = {"dispatched": 0, "received": 1, "returned": 2}
_ONE_MS = timedelta(milliseconds=1)

Outcome = Literal["applied", "replaced", "duplicate", "stale", "conflict", "retracted"]


@dataclass(frozen=True)
class RotationBatchRow:
    batch_id: str
    status: Status
    origin: str  # provincial_library | grassroots_library; "" while no valid dispatch
    origin_province: str  # 2025-scheme province of the sender
    origin_library_id: str | None
    library_id: str  # the holder: the library the batch was dispatched to and received by
    province_legacy: str
    commune_legacy: str
    province_2025: str
    commune_2025: str
    dispatched_on: date | None
    received_on: date | None
    returned_on: date | None
    titles: int  # titles, copies and ethnic-language copies: as dispatched
    copies: int
    ethnic_language_copies: int
    copies_lost: int  # lost and damaged: summed over the valid movements
    copies_damaged: int
    valid_movements: int
    invalid_movements: int
    version: int


@dataclass(frozen=True)
class RotationMovementRow:
    root_id: str
    event_id: str
    batch_id: str
    movement: str
    library_id: str
    occurred_on: date
    submitted_at: datetime
    seq: int  # place in the batch's walk, from 1
    valid: bool
    reason_code: str
    reason_vi: str
    reason_en: str
    copies: int
    copies_lost: int
    copies_damaged: int
    is_deleted: bool  # withdrawn (retracted, or edited into another batch): the row goes
    version: int


@dataclass(frozen=True)
class LetterChange:
    """A dead letter to write: opened (``resolved`` False) or closed (True)."""

    letter: DeadLetter
    resolved: bool
    new: bool  # opened now (count it), rather than rewritten


@dataclass(frozen=True)
class FoldResult:
    outcome: Outcome
    batches: list[RotationBatchRow]
    movements: list[RotationMovementRow]
    letters: list[LetterChange]
    detail: str = ""


# --- the walk ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    valid: bool
    code: str = ""
    vi: str = ""
    en: str = ""


def _vn(day: date) -> str:
    return f"{day:%d/%m/%Y}"


def _same_origin(event: RotationMoved, dispatch: RotationMoved) -> bool:
    a, b = event.payload, dispatch.payload
    return (a.origin, a.origin_province, a.origin_library_id) == (b.origin, b.origin_province, b.origin_library_id)


def _origin_text(dispatch: RotationMoved) -> tuple[str, str]:
    p = dispatch.payload
    if p.origin_library_id:
        return (f"thư viện {p.origin_library_id}, tỉnh {p.origin_province}",
                f"library {p.origin_library_id}, province {p.origin_province}")
    return f"thư viện tỉnh {p.origin_province}", f"the provincial library of {p.origin_province}"


def _judge_origin(event: RotationMoved, dispatch: RotationMoved, act_vi: str, act_en: str) -> Verdict:
    """A receipt or return must name the origin its dispatch named (``act``: what the event records)."""
    if _same_origin(event, dispatch):
        return Verdict(True)
    b = event.payload.batch_id
    vi, en = _origin_text(dispatch)
    return Verdict(False, "origin_mismatch", f"Nơi gửi ghi khi {act_vi} lô sách {b} khác với phiếu gửi đi ({vi}).",
                   f"The origin recorded on {act_en} of batch {b} differs from its dispatch ({en}).")


def _judge(status: Status, event: RotationMoved, done: dict[str, RotationMoved]) -> Verdict:
    """Whether ``event`` may follow a batch in ``status``, whose valid movements are ``done``."""
    b, lib, movement = event.payload.batch_id, event.library_id, event.payload.movement
    dispatch = done.get("dispatched")
    holder = dispatch.library_id if dispatch else ""
    if movement == "dispatched":
        if dispatch is None:
            return Verdict(True)
        return Verdict(False, "dispatched_twice",
                       f"Lô sách {b} đã được gửi đi ngày {_vn(dispatch.occurred_on)}; mỗi lô chỉ gửi đi một lần "
                       "(lần luân chuyển mới cần mã lô mới).",
                       f"Batch {b} was already dispatched on {dispatch.occurred_on}; a batch is dispatched once "
                       "(a new rotation needs a new batch id).")
    if movement == "received":
        if status == "none":
            return Verdict(False, "received_before_dispatch",
                           f"Lô sách {b} được ghi nhận ngày {_vn(event.occurred_on)} nhưng chưa có phiếu gửi đi "
                           "vào hoặc trước ngày đó.",
                           f"Batch {b} is recorded as received on {event.occurred_on} but was not dispatched on or "
                           "before that day.")
        if "received" in done:
            return Verdict(False, "received_twice",
                           f"Lô sách {b} đã được nhận ngày {_vn(done['received'].occurred_on)}; không nhận lần nữa.",
                           f"Batch {b} was already received on {done['received'].occurred_on}; it cannot be "
                           "received again.")
        if lib != holder:
            return Verdict(False, "received_by_other_library",
                           f"Lô sách {b} được gửi tới thư viện {holder}, không phải thư viện {lib}.",
                           f"Batch {b} was dispatched to library {holder}, not to library {lib}.")
        assert dispatch is not None
        return _judge_origin(event, dispatch, "nhận", "receipt")
    # returned
    if status == "none":
        return Verdict(False, "returned_before_dispatch",
                       f"Lô sách {b} được ghi trả ngày {_vn(event.occurred_on)} nhưng chưa có phiếu gửi đi.",
                       f"Batch {b} is recorded as returned on {event.occurred_on} but was never dispatched before.")
    if status == "dispatched":
        return Verdict(False, "returned_before_receipt",
                       f"Lô sách {b} được ghi trả ngày {_vn(event.occurred_on)} nhưng thư viện chưa ghi nhận đã nhận.",
                       f"Batch {b} is recorded as returned on {event.occurred_on} but was not received before.")
    if status == "returned":
        return Verdict(False, "returned_twice",
                       f"Lô sách {b} đã được trả ngày {_vn(done['returned'].occurred_on)}; không trả lần nữa.",
                       f"Batch {b} was already returned on {done['returned'].occurred_on}; it cannot be returned "
                       "twice.")
    if lib != holder:
        return Verdict(False, "returned_by_other_library",
                       f"Lô sách {b} đang ở thư viện {holder}; thư viện {lib} không thể trả lô này.",
                       f"Batch {b} is held by library {holder}; library {lib} cannot return it.")
    assert dispatch is not None
    return _judge_origin(event, dispatch, "trả", "return")


def order_key(event: RotationMoved) -> tuple[date, int, datetime, str]:
    return event.occurred_on, _RANK[event.payload.movement], event.submitted_at, event.event_id


def walk(events: list[RotationMoved]) -> tuple[Status, dict[str, RotationMoved], list[tuple[RotationMoved, Verdict]]]:
    """The batch's status, its valid movements by kind, and every movement in order with its verdict."""
    status: Status = "none"
    done: dict[str, RotationMoved] = {}
    judged = []
    for event in sorted(events, key=order_key):
        verdict = _judge(status, event, done)
        if verdict.valid:
            status = event.payload.movement
            done[event.payload.movement] = event
        judged.append((event, verdict))
    return status, done, judged


# --- state ---------------------------------------------------------------------------------------


def _load(state: State, key: str) -> dict[str, Any] | None:
    value = state.get(key)
    return copy.deepcopy(value) if value is not None else None  # never mutate a table's own value


def _new_chain() -> dict[str, Any]:
    # batch_id: the batch of the current version (None once retracted); batches: every batch it was in
    return {"versions": {}, "current": None, "batch_id": None, "batches": []}


def _new_batch(batch_id: str) -> dict[str, Any]:
    return {"batch_id": batch_id, "version": 0, "movements": {}, "removed": {}, "letters": {}}


def _entry(event: RotationMoved, position: int) -> dict[str, Any]:
    return {"event": event.model_dump(mode="json"), "position": position}


def _later(a: tuple[str, int], b: tuple[str, int]) -> bool:
    """(submitted_at, position) a after b: the chain's current version is the one accepted last."""
    return (datetime.fromisoformat(a[0]), a[1]) > (datetime.fromisoformat(b[0]), b[1])


def _history(batch_id: str, status: Status, judged: list[tuple[RotationMoved, Verdict]]) -> dict[str, Any]:
    return {"batch_id": batch_id, "status": status, "movements": [
        {"seq": n, "event_id": e.event_id, "root_id": e.root_id, "movement": e.payload.movement,
         "library_id": e.library_id, "occurred_on": e.occurred_on.isoformat(),
         "submitted_at": e.submitted_at.isoformat(), "valid": v.valid, "reason_code": v.code, "reason_en": v.en}
        for n, (e, v) in enumerate(judged, start=1)]}


def _letter(event: RotationMoved, verdict: Verdict, history: dict[str, Any], recorded_at: datetime) -> DeadLetter:
    reason = Reason(REASON_CODE, verdict.vi, verdict.en)
    body = json.dumps({"event": event.model_dump(mode="json"), "reason_code": verdict.code, "batch": history},
                      ensure_ascii=False)
    return DeadLetter.of(stage="processor", reason=reason, instance_id=event.event_id, form_id=event.form_id,
                         library_id=event.library_id, submitter=event.submitter, content_hash=event.content_hash,
                         raw=b"", recorded_at=recorded_at, event_json=body)


def _after(now: datetime, previous: str | None) -> datetime:
    """A recorded_at later than the letter's previous one (the dead-letter table keeps the latest)."""
    if previous is None:
        return now
    return max(now, datetime.fromisoformat(previous) + _ONE_MS)


def _recompute(batch: dict[str, Any], now: datetime) -> tuple[list[RotationBatchRow], list[RotationMovementRow],
                                                                list[LetterChange]]:
    """Bump the version, walk the batch, update its dead letters; every row of the batch."""
    batch["version"] += 1
    events = [RotationMoved.model_validate(m["event"]) for m in batch["movements"].values()]
    status, done, judged = walk(events)
    history = _history(batch["batch_id"], status, judged)
    letters = _update_letters(batch, judged, history, now)
    return [_batch_row(batch, status, done, judged)], _movement_rows(batch, judged), letters


def _update_letters(batch: dict[str, Any], judged: list[tuple[RotationMoved, Verdict]], history: dict[str, Any],
                    now: datetime) -> list[LetterChange]:
    changes = []
    letters: dict[str, dict[str, Any]] = batch["letters"]
    invalid = {}
    for event, verdict in judged:
        if verdict.valid:
            continue
        letter = _letter(event, verdict, history, now)
        invalid[letter.dead_letter_id] = (event, verdict)
        known = letters.get(letter.dead_letter_id)
        if known is not None and not known["resolved"] and known["code"] == verdict.code:
            continue  # still open for the same reason
        if known is not None:
            letter = _letter(event, verdict, history, _after(now, known["recorded_at"]))
        opened = known is None or known["resolved"]
        letters[letter.dead_letter_id] = {"letter": letter.model_dump(mode="json"), "resolved": False,
                                          "code": verdict.code, "recorded_at": letter.recorded_at.isoformat()}
        changes.append(LetterChange(letter, resolved=False, new=opened))
    for ident, known in letters.items():
        if known["resolved"] or ident in invalid:
            continue
        # Valid now, or edited, or withdrawn: closed, with the history that closed it.
        recorded_at = _after(now, known["recorded_at"])
        payload = json.loads(known["letter"]["event_json"])
        payload["batch"] = history
        letter = DeadLetter.model_validate({**known["letter"], "recorded_at": recorded_at.isoformat(),
                                            "event_json": json.dumps(payload, ensure_ascii=False)})
        letters[ident] = {**known, "letter": letter.model_dump(mode="json"), "resolved": True,
                          "recorded_at": recorded_at.isoformat()}
        changes.append(LetterChange(letter, resolved=True, new=False))
    return changes


def _batch_row(batch: dict[str, Any], status: Status, done: dict[str, RotationMoved],
               judged: list[tuple[RotationMoved, Verdict]]) -> RotationBatchRow:
    dispatch = done.get("dispatched")
    latest = max(done.values(), key=order_key) if done else None
    legacy = latest.area("legacy") if latest else None
    current = latest.area("2025") if latest else None
    valid = [e for e, v in judged if v.valid]

    def on(kind: str) -> date | None:
        return done[kind].occurred_on if kind in done else None

    return RotationBatchRow(
        batch_id=batch["batch_id"], status=status,
        origin=dispatch.payload.origin if dispatch else "",
        origin_province=dispatch.payload.origin_province if dispatch else "",
        origin_library_id=dispatch.payload.origin_library_id if dispatch else None,
        library_id=dispatch.library_id if dispatch else "",
        province_legacy=legacy.province_code if legacy else "", commune_legacy=legacy.commune_code if legacy else "",
        province_2025=current.province_code if current else "", commune_2025=current.commune_code if current else "",
        dispatched_on=on("dispatched"), received_on=on("received"), returned_on=on("returned"),
        titles=dispatch.payload.titles if dispatch else 0, copies=dispatch.payload.copies if dispatch else 0,
        ethnic_language_copies=dispatch.payload.ethnic_language_copies if dispatch else 0,
        copies_lost=sum(e.payload.copies_lost for e in valid),
        copies_damaged=sum(e.payload.copies_damaged for e in valid),
        valid_movements=len(valid), invalid_movements=len(judged) - len(valid), version=batch["version"])


def _movement_row(event: RotationMoved, seq: int, verdict: Verdict, deleted: bool, version: int
                  ) -> RotationMovementRow:
    return RotationMovementRow(
        root_id=event.root_id, event_id=event.event_id, batch_id=event.payload.batch_id,
        movement=event.payload.movement, library_id=event.library_id, occurred_on=event.occurred_on,
        submitted_at=event.submitted_at, seq=seq, valid=verdict.valid, reason_code=verdict.code,
        reason_vi=verdict.vi, reason_en=verdict.en, copies=event.payload.copies,
        copies_lost=event.payload.copies_lost, copies_damaged=event.payload.copies_damaged, is_deleted=deleted,
        version=version)


def _movement_rows(batch: dict[str, Any], judged: list[tuple[RotationMoved, Verdict]]) -> list[RotationMovementRow]:
    rows = [_movement_row(e, n, v, False, batch["version"]) for n, (e, v) in enumerate(judged, start=1)]
    for root_id in sorted(batch["removed"]):
        gone = RotationMoved.model_validate(batch["removed"][root_id]["event"])
        rows.append(_movement_row(gone, 0, Verdict(True), True, batch["version"]))
    return rows


def _rewrite(batch: dict[str, Any] | None) -> tuple[list[RotationBatchRow], list[RotationMovementRow],
                                                     list[LetterChange]]:
    """Every row and dead letter of a batch as they stand (re-delivery repairs a lost write)."""
    if batch is None:
        return [], [], []
    events = [RotationMoved.model_validate(m["event"]) for m in batch["movements"].values()]
    status, done, judged = walk(events)
    letters = [LetterChange(DeadLetter.model_validate(k["letter"]), resolved=k["resolved"], new=False)
               for k in batch["letters"].values()]
    return [_batch_row(batch, status, done, judged)], _movement_rows(batch, judged), letters


def _result(outcome: Outcome, parts: list[tuple[list[RotationBatchRow], list[RotationMovementRow],
                                                 list[LetterChange]]], detail: str = "") -> FoldResult:
    return FoldResult(outcome, [r for p in parts for r in p[0]], [r for p in parts for r in p[1]],
                      [c for p in parts for c in p[2]], detail)


# --- folding events: stage 1, per submission chain ------------------------------------------------


class BatchChange(BaseModel):
    """A chain's movement placed in, or withdrawn from, one batch: what the chain stage (keyed by
    root_id) tells the batch stage (keyed by batch_id), through the ``rotation.batches`` topic.

    ``chain_seq`` counts the chain's changes: the batch stage keeps the highest it has applied per
    chain, so a change delivered twice, or late behind a newer one, changes nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: Literal["rotation_batch_change"] = "rotation_batch_change"
    batch_id: str
    root_id: str
    chain_seq: int
    movement: dict[str, Any] | None  # the current version (``_entry``), or None: withdrawn from this batch


@dataclass(frozen=True)
class ChainResult:
    outcome: Outcome
    changes: list[BatchChange]
    detail: str = ""


def _placements(sub: dict[str, Any]) -> list[BatchChange]:
    """The chain's placement in every batch it was ever in, as it stands (re-sent on a re-delivery:
    the changes of the first delivery may not have reached the batch stage before a crash)."""
    return [BatchChange(batch_id=b, root_id=sub["root_id"], chain_seq=sub["seq"],
                        movement=sub["entry"] if b == sub["batch_id"] else None) for b in sub["batches"]]


def _load_chain(state: State, root_id: str) -> dict[str, Any]:
    return _load(state, f"sub:{root_id}") or {**_new_chain(), "root_id": root_id, "seq": 0, "entry": None}


def fold_chain_event(state: State, event: RotationMoved, position: int) -> ChainResult:
    """Stage 1: which version of a movement's chain counts, and the batch changes that follow."""
    sub_key = f"sub:{event.root_id}"
    sub = _load_chain(state, event.root_id)
    seen = sub["versions"].get(event.event_id)
    if seen is not None:
        if seen != event.content_hash:
            return ChainResult("conflict", [], f"instanceID {event.event_id} was seen with other answers")
        current = sub["current"]
        if current is not None and current["event_id"] == event.event_id:
            return ChainResult("duplicate", _placements(sub))
        return ChainResult("stale", [], f"{event.event_id} is not the chain's current version")
    sub["versions"][event.event_id] = event.content_hash
    mine = (event.submitted_at.isoformat(), position)
    current = sub["current"]
    if current is not None and not _later(mine, (current["submitted_at"], current["position"])):
        state.put(sub_key, sub)
        return ChainResult("stale", [], f"{event.event_id} is older than {current['event_id']}")
    sub["seq"] += 1
    changes = []
    old_batch_id, new_batch_id = sub["batch_id"], event.payload.batch_id
    if old_batch_id is not None and old_batch_id != new_batch_id:
        changes.append(BatchChange(batch_id=old_batch_id, root_id=event.root_id, chain_seq=sub["seq"], movement=None))
    sub["entry"] = _entry(event, position)
    changes.append(BatchChange(batch_id=new_batch_id, root_id=event.root_id, chain_seq=sub["seq"],
                               movement=sub["entry"]))
    sub["current"] = {"event_id": event.event_id, "submitted_at": mine[0], "position": position, "kind": "version"}
    sub["batch_id"] = new_batch_id
    if new_batch_id not in sub["batches"]:
        sub["batches"].append(new_batch_id)
    state.put(sub_key, sub)
    return ChainResult("replaced" if current is not None else "applied", changes)


def retract_chain(state: State, event: SubmissionRetracted, position: int) -> ChainResult:
    """Stage 1 for a retraction (rejected in Central's review): the chain leaves its batch."""
    sub_key = f"sub:{event.root_id}"
    sub = _load_chain(state, event.root_id)
    current = sub["current"]
    if current is not None and current["event_id"] == event.event_id:
        return ChainResult("duplicate", _placements(sub))
    mine = (event.submitted_at.isoformat(), position)
    if current is not None and not _later(mine, (current["submitted_at"], current["position"])):
        return ChainResult("stale", [], f"{event.event_id} is older than {current['event_id']}")
    # Recorded even with nothing to withdraw yet: a version accepted before it, arriving late, stays out.
    sub["seq"] += 1
    changes = [BatchChange(batch_id=sub["batch_id"], root_id=event.root_id, chain_seq=sub["seq"], movement=None)
               ] if sub["batch_id"] else []
    sub["current"] = {"event_id": event.event_id, "submitted_at": mine[0], "position": position,
                      "kind": "retraction"}
    sub["batch_id"], sub["entry"] = None, None
    state.put(sub_key, sub)
    if current is None:
        return ChainResult("stale", [], f"nothing to retract yet for {event.root_id}")
    return ChainResult("retracted", changes)


def fold_chain(state: State, event: object, position: int) -> ChainResult | None:
    """Stage 1 for any event of the rotation topic; None for events that are not the rotation's."""
    if isinstance(event, RotationMoved):
        return fold_chain_event(state, event, position)
    if isinstance(event, SubmissionRetracted) and event.payload.retracts_event_type == EVENT_TYPE:
        return retract_chain(state, event, position)
    return None


# --- folding events: stage 2, per batch -------------------------------------------------------------


def apply_batch_change(state: State, change: BatchChange, now: datetime) -> FoldResult:
    """Stage 2: a chain's movement placed in or withdrawn from the batch; every row of the batch.
    ``now`` stamps the dead letters it opens or closes."""
    key = f"batch:{change.batch_id}"
    batch = _load(state, key) or _new_batch(change.batch_id)
    seqs: dict[str, int] = batch.setdefault("seqs", {})
    known = seqs.get(change.root_id, 0)
    if change.chain_seq < known:
        return FoldResult("stale", [], [], [], f"an older change of {change.root_id}")
    if change.chain_seq == known:
        return _result("duplicate", [_rewrite(batch)])
    seqs[change.root_id] = change.chain_seq
    if change.movement is not None:
        batch["movements"][change.root_id] = change.movement
        batch["removed"].pop(change.root_id, None)
        outcome: Outcome = "applied"
    elif change.root_id in batch["movements"]:
        batch["removed"][change.root_id] = batch["movements"].pop(change.root_id)
        outcome = "retracted"
    else:  # withdrawn before it arrived here: remembered, so that the late placement stays out
        state.put(key, batch)
        return FoldResult("stale", [], [], [], f"{change.root_id} is not in batch {change.batch_id}")
    parts = _recompute(batch, now)
    state.put(key, batch)
    return _result(outcome, [parts])


def fold(state: State, event: object, position: int, now: datetime) -> FoldResult | None:
    """Both stages over one state, for one partition (tests, and a reader of the whole log): the
    chain's outcome, with the rows of every batch its changes touched."""
    chain = fold_chain(state, event, position)
    if chain is None:
        return None
    if chain.outcome in ("conflict", "stale") and not chain.changes:
        return FoldResult(chain.outcome, [], [], [], chain.detail)
    parts = [apply_batch_change(state, change, now) for change in chain.changes]
    return FoldResult(chain.outcome, [r for p in parts for r in p.batches], [r for p in parts for r in p.movements],
                      [c for p in parts for c in p.letters], chain.detail)
