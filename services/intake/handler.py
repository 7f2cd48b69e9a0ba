"""Accepting one submission: parse → validate → deduplicate → enrich → publish → record.

No HTTP here: ``openrosa.py`` turns the outcomes into OpenRosa responses. The order is
what makes the guarantees: the event is published (durable) before the ledger records
it and before 201 is sent, so an acknowledged submission is never lost; a crash between
publish and record means the phone resends, and the processors drop the duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.bus.base import Publisher
from services.clock import now_local
from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import Envelope, Retraction, Source, SubmissionRetracted
from services.domain.forms import FORMS
from services.domain.reference import Reference
from services.domain.submission import parse_submission
from services.intake.accounts import ANONYMOUS, Account
from services.intake.ledger import Ledger, LedgerEntry


class SubmissionConflict(Exception):
    """The instanceID is known with different answers."""

    def __init__(self, instance_id: str):
        super().__init__(instance_id)
        self.reason = Reason(
            "instance_id_conflict",
            f"Mã bản ghi {instance_id} đã được gửi với nội dung khác; hãy sửa bản ghi thay vì gửi mới.",
            f"instanceID {instance_id} was already submitted with different answers; edit it instead.",
        )


@dataclass(frozen=True)
class Accepted:
    instance_id: str
    form_id: str
    kind: Literal["new", "duplicate"]


class IntakeService:
    def __init__(self, reference: Reference, ledger: Ledger, publisher: Publisher,
                 known_forms: set[str], clock: Callable[[], datetime] = now_local):
        self._reference = reference
        self._ledger = ledger
        self._publisher = publisher
        self._known_forms = known_forms
        self._clock = clock

    def submit(self, raw: bytes, account: Account = ANONYMOUS, source: Source = "openrosa") -> Accepted:
        """Accept or raise SubmissionRejected / SubmissionConflict / PublishFailed."""
        submission = parse_submission(raw)
        spec = FORMS.get(submission.form_id)
        if spec is None or submission.form_id not in self._known_forms:
            raise SubmissionRejected([Reason(
                "form_unknown", f"Biểu mẫu '{submission.form_id}' không có trên máy chủ này.",
                f"Form '{submission.form_id}' is not served here.")])

        known = self._ledger.lookup(submission.instance_id)
        if known is not None:
            if known.content_hash == submission.content_hash:
                return Accepted(submission.instance_id, submission.form_id, "duplicate")
            raise SubmissionConflict(submission.instance_id)

        now = self._clock()
        parsed = spec.parse(submission, now.date(), self._reference)

        root_id = submission.instance_id
        if submission.deprecated_id:
            predecessor = self._ledger.lookup(submission.deprecated_id)
            root_id = predecessor.root_id if predecessor else submission.deprecated_id

        raw_sha = self._ledger.keep_raw(raw)
        event = spec.event_model(
            event_id=submission.instance_id,
            root_id=root_id,
            deprecated_id=submission.deprecated_id,
            form_id=submission.form_id,
            form_version=submission.form_version,
            submitted_at=now,
            occurred_on=parsed.occurred_on,
            library_id=parsed.library_id,
            areas=parsed.areas,
            submitter=account.username,
            source=source,
            content_hash=submission.content_hash,
            payload=parsed.payload,
        )
        self._publisher.publish(event)
        self._ledger.record(LedgerEntry(submission.instance_id, root_id, submission.content_hash,
                                        submission.form_id, raw_sha, event.model_dump_json()), now)
        return Accepted(submission.instance_id, submission.form_id, "new")

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
        return True

