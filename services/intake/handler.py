"""Accepting one submission: parse → validate → deduplicate → enrich → publish → record.

No HTTP here: ``openrosa.py`` turns the outcomes into OpenRosa responses. The order is
what makes the guarantees: the event is published (durable) before the ledger records
it and before 201 is sent, so an acknowledged submission is never lost; a crash between
publish and record means the phone resends, and the processors drop the duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import TypeAdapter

from services.bus.base import Publisher, PublishFailed
from services.clock import now_local
from services.domain.dead_letters import DeadLetter, Rejection
from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import AttachmentRef, Envelope, Retraction, Source, SubmissionRetracted
from services.domain.forms import FORMS, FormSpec
from services.domain.reference import Reference
from services.domain.submission import Submission, parse_submission
from services.intake.accounts import ANONYMOUS, Account
from services.intake.ledger import Ledger, LedgerEntry

log = logging.getLogger(__name__)


class SubmissionConflict(Exception):
    """The instanceID is known with different answers."""

    def __init__(self, instance_id: str):
        super().__init__(instance_id)
        self.reason = Reason(
            "instance_id_conflict",
            f"Mã bản ghi {instance_id} đã được gửi với nội dung khác; hãy sửa bản ghi thay vì gửi mới.",
            f"instanceID {instance_id} was already submitted with different answers; edit it instead.",
        )


class OutOfScope(Exception):
    """The account may not submit for this library's province; the submission is kept as a dead letter."""

    def __init__(self, account: Account, library_id: str):
        super().__init__(account.username)
        self.reason = Reason(
            "out_of_scope",
            f"Tài khoản {account.username} không được gửi dữ liệu cho thư viện {library_id} (ngoài tỉnh được giao).",
            f"Account {account.username} may not submit for library {library_id} (outside its provinces).",
            "library_id")


AcceptedKind = Literal["new", "duplicate", "held", "partial"]


@dataclass(frozen=True)
class Accepted:
    instance_id: str
    form_id: str
    kind: AcceptedKind


def _merge(earlier: list[AttachmentRef], later: Sequence[AttachmentRef]) -> list[AttachmentRef]:
    by_name = {a.name: a for a in earlier}
    by_name.update({a.name: a for a in later})
    return sorted(by_name.values(), key=lambda a: a.name)


_ATTACHMENTS = TypeAdapter(list[AttachmentRef])


class IntakeService:
    def __init__(self, reference: Reference, ledger: Ledger, publisher: Publisher,
                 known_forms: dict[str, str], clock: Callable[[], datetime] = now_local,
                 held_timeout: timedelta = timedelta(days=7)):
        self._reference = reference
        self._ledger = ledger
        self._publisher = publisher
        self._known_forms = known_forms  # form_id → the version served
        self._clock = clock
        self._held_timeout = held_timeout

    def _spec(self, submission: Submission) -> FormSpec:
        spec = FORMS.get(submission.form_id)
        if spec is None or submission.form_id not in self._known_forms:
            raise SubmissionRejected([Reason(
                "form_unknown", f"Biểu mẫu '{submission.form_id}' không có trên máy chủ này.",
                f"Form '{submission.form_id}' is not served here.")])
        served = self._known_forms[submission.form_id]
        if submission.form_version != served:
            raise SubmissionRejected([Reason(
                "form_version_unknown",
                f"Phiên bản biểu mẫu '{submission.form_version}' đã cũ hoặc không đúng (hiện dùng {served}); "
                "hãy tải lại biểu mẫu trống (Get Blank Form), nhập lại và gửi.",
                f"Form version '{submission.form_version}' is not the one served ({served}); "
                "get the blank form again, re-enter and send.")])
        return spec

    def _duplicate_or_conflict(self, submission: Submission, releasing: bool = False) -> Accepted | None:
        known = self._ledger.lookup(submission.instance_id)
        held = None if known or releasing else next(iter(self._ledger.held(instance_id=submission.instance_id)), None)
        known_hash = known.content_hash if known else (held["content_hash"] if held else None)
        if known_hash is None:
            return None
        if known_hash != submission.content_hash:
            raise SubmissionConflict(submission.instance_id)
        return Accepted(submission.instance_id, submission.form_id, "duplicate" if known else "held")

    def submit_part(self, raw: bytes, account: Account = ANONYMOUS,
                    attachments: Sequence[AttachmentRef] = ()) -> Accepted:
        """One part of a split upload (``*isIncomplete*=yes``): keep its attachments, emit nothing yet."""
        submission = parse_submission(raw)
        self._spec(submission)
        done = self._duplicate_or_conflict(submission)
        if done is not None:
            return done
        earlier = _ATTACHMENTS.validate_json(self._ledger.partial_attachments(submission.instance_id) or "[]")
        merged = _merge(earlier, attachments)
        self._ledger.keep_partial(submission.instance_id, submission.content_hash,
                                  _ATTACHMENTS.dump_json(merged).decode(), self._clock())
        part = Accepted(submission.instance_id, submission.form_id, "partial")
        _log_accepted(part, submission.answer("library_id") or "", account, "openrosa")
        return part

    def submit(self, raw: bytes, account: Account = ANONYMOUS, source: Source = "openrosa",
               attachments: Sequence[AttachmentRef] = (), *, releasing: bool = False) -> Accepted:
        """Accept, hold or raise SubmissionRejected / SubmissionConflict / OutOfScope / PublishFailed.

        ``releasing``: a held edit whose original has arrived (its held row is not a duplicate)."""
        try:
            return self._submit(raw, account, source, attachments, releasing)
        except (SubmissionRejected, SubmissionConflict, OutOfScope) as exc:
            _log_refused(raw, exc, account, source)
            raise

    def _submit(self, raw: bytes, account: Account, source: Source,
                attachments: Sequence[AttachmentRef], releasing: bool = False) -> Accepted:
        submission = parse_submission(raw)
        spec = self._spec(submission)
        done = self._duplicate_or_conflict(submission, releasing)
        if done is not None:
            _log_accepted(done, submission.answer("library_id") or "", account, source)
            if done.kind == "duplicate":  # a release that failed after this one was accepted: retry it now
                self._release_successors(submission.instance_id)
            return done

        now = self._clock()
        parsed = spec.parse(submission, now.date(), self._reference)
        raw_sha = self._ledger.keep_raw(raw)
        if not account.may_submit_for(parsed.areas):
            error = OutOfScope(account, parsed.library_id)
            self._publisher.publish(DeadLetter.of(
                stage="intake", reason=error.reason, instance_id=submission.instance_id, form_id=submission.form_id,
                library_id=parsed.library_id, submitter=account.username, content_hash=submission.content_hash,
                raw=raw, recorded_at=now))
            raise error

        earlier = _ATTACHMENTS.validate_json(self._ledger.partial_attachments(submission.instance_id) or "[]")
        files = _merge(earlier, attachments)
        root_id = submission.instance_id
        if submission.deprecated_id:
            predecessor = self._ledger.lookup(submission.deprecated_id)
            if predecessor is None:
                # An edit of a version not received yet (phones send out of order): hold it, durably.
                self._ledger.hold(submission.instance_id, submission.deprecated_id, submission.content_hash,
                                  raw_sha, account.username, source, _ATTACHMENTS.dump_json(files).decode(), now)
                self._ledger.forget_partial(submission.instance_id)
                held = Accepted(submission.instance_id, submission.form_id, "held")
                _log_accepted(held, parsed.library_id, account, source)
                return held
            root_id = predecessor.root_id

        event = spec.event_model(
            event_id=submission.instance_id, root_id=root_id, deprecated_id=submission.deprecated_id,
            form_id=submission.form_id, form_version=submission.form_version, submitted_at=now,
            occurred_on=parsed.occurred_on, library_id=parsed.library_id, areas=parsed.areas,
            submitter=account.username, source=source, content_hash=submission.content_hash,
            attachments=files, payload=parsed.payload)
        self._publisher.publish(event)
        self._ledger.record(LedgerEntry(submission.instance_id, root_id, submission.content_hash,
                                        submission.form_id, raw_sha, event.model_dump_json()), now)
        self._ledger.forget_partial(submission.instance_id)
        accepted = Accepted(submission.instance_id, submission.form_id, "new")
        _log_accepted(accepted, parsed.library_id, account, source)
        self._release_successors(submission.instance_id)
        return accepted

    def _release_successors(self, instance_id: str) -> None:
        """Submit the edits held for ``instance_id``, which is now accepted. The held row goes only
        once its edit is published and recorded: if that fails (broker down), it stays held and the
        next resend of ``instance_id`` or ``expire_held`` tries again — the original, already
        durable, keeps its 201."""
        for held in self._ledger.held(waiting_for=instance_id):
            # Scope was checked when it was held; the account keeps its name as submitter.
            account = Account(held["username"], provinces=frozenset({"*"}))
            files = _ATTACHMENTS.validate_json(held["attachments"])
            try:
                self.submit(self._ledger.raw(held["raw_sha256"]), account, held["source"], files,  # type: ignore[arg-type]
                            releasing=True)
            except PublishFailed:
                log.warning("held edit %s not released yet: the bus did not take it", held["instance_id"],
                            extra={"event_id": held["instance_id"]})
                continue
            self._ledger.release(held["instance_id"])

    def expire_held(self) -> int:
        """Send edits whose predecessor never came within the timeout to the dead letters."""
        now = self._clock()
        expired = self._ledger.held(held_before=now - self._held_timeout)
        for held in expired:
            if self._ledger.lookup(held["deprecated_id"]) is not None:  # its original came; a release failed
                self._release_successors(held["deprecated_id"])
                continue
            raw = self._ledger.raw(held["raw_sha256"])
            submission = parse_submission(raw)
            reason = Reason(
                "predecessor_missing",
                f"Bản sửa {held['instance_id']} chờ bản gốc {held['deprecated_id']} quá hạn mà bản gốc chưa tới.",
                f"Edit {held['instance_id']} waited for {held['deprecated_id']} past the timeout; it never came.")
            self._publisher.publish(DeadLetter.of(
                stage="intake", reason=reason, instance_id=held["instance_id"], form_id=submission.form_id,
                library_id=submission.answer("library_id") or "", submitter=held["username"],
                content_hash=held["content_hash"], raw=raw, recorded_at=now))
            self._ledger.release(held["instance_id"])
        return len(expired)

    def record_rejection(self, status: int, reasons: list[Reason], form_id: str, instance_id: str,
                         account: Account) -> None:
        """Best effort: tell operators what was turned away. The phone keeps the submission, so a
        failure here must not change the answer it gets."""
        now = self._clock()
        rejection = Rejection(
            rejection_id=uuid.uuid4().hex, form_id=form_id or "unknown", instance_id=instance_id, status=status,
            reason_code=reasons[0].code, reason_vi=" | ".join(r.message_vi for r in reasons),
            reason_en=" | ".join(r.message_en for r in reasons), submitter=account.username, received_at=now)
        log.info("rejection recorded", extra={"event_id": instance_id, "form_id": rejection.form_id,
                                              "status": status, "reason": rejection.reason_code,
                                              "rejection_id": rejection.rejection_id, "submitter": account.username})
        try:
            self._publisher.publish(rejection)
        except Exception:
            log.warning("could not record rejection %s of %s", reasons[0].code, instance_id, exc_info=True)

    def retract(self, instance_id: str, account: Account, reason_code: str, reason: str) -> bool:
        """Withdraw an accepted submission's chain (e.g. rejected in Central's review).

        Returns False when there is nothing to do: unknown instanceID, or already retracted.
        """
        entry = self._ledger.lookup(instance_id)
        if entry is None or entry.retracted:
            return False
        original = Envelope.model_validate_json(entry.event_json)
        retraction = SubmissionRetracted(
            **original.model_dump(include={"root_id", "form_id", "form_version", "occurred_on", "library_id",
                                           "areas", "source"}),
            event_id=f"{instance_id}#retracted", submitted_at=self._clock(), submitter=account.username,
            content_hash=hashlib.sha256(f"retract|{instance_id}|{reason_code}".encode()).hexdigest(),
            payload=Retraction(retracts_event_type=original.event_type, reason_code=reason_code, reason=reason))
        self._publisher.publish(retraction)
        self._ledger.mark_retracted(instance_id)
        log.info("submission retracted", extra={"event_id": retraction.event_id, "retracts": instance_id,
                                                "form_id": original.form_id, "library_id": original.library_id,
                                                "reason": reason_code})
        return True


# Correlation: the submission's instanceID is its event_id everywhere, from here to the store's write.

def _log_accepted(accepted: Accepted, library_id: str, account: Account, source: str) -> None:
    log.info("submission accepted", extra={"event_id": accepted.instance_id, "form_id": accepted.form_id,
                                           "library_id": library_id, "kind": accepted.kind, "source": source,
                                           "submitter": account.username})


def _log_refused(raw: bytes, exc: Exception, account: Account, source: str) -> None:
    try:  # as much as the submission says about itself; nothing if it does not parse
        submission = parse_submission(raw)
        event_id, form_id, library_id = submission.instance_id, submission.form_id, submission.answer("library_id")
    except Exception:
        event_id = form_id = library_id = ""
    reason = exc.code if isinstance(exc, SubmissionRejected) else exc.reason.code  # type: ignore[attr-defined]
    log.info("submission refused", extra={"event_id": event_id, "form_id": form_id, "library_id": library_id or "",
                                          "kind": "refused", "reason": reason, "source": source,
                                          "submitter": account.username})
