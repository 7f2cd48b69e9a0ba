"""Accepting one submission: parse → validate → deduplicate → check scope → enrich → publish → record.

No HTTP here: ``openrosa.py`` turns the outcomes into OpenRosa responses. Whatever turns a
submission away is a ``Refused`` (``refusals.py``), a bus that cannot make an event durable too. The order is
what makes the guarantees: the event is published (durable) before the ledger records
it and before 201 is sent, so an acknowledged submission is never lost; a crash between
publish and record means the phone resends, and the processors drop the duplicate. With Kafka
the raw XML is kept while the broker acks, not before the publish (``_publish_keeping`` says why
that is safe). For one instanceID (and the version an edit replaces) the steps run one request
at a time — the ledger's ``exclusive``: across every replica when the ledger is shared — so of
several racing sends exactly one wins and the others see it.

Scope: an account writes only for its provinces. A new version must lie in them, and so must
every earlier version of the chain it replaces — an edit, a retraction or a held edit released
later could otherwise erase or move another province's figures. A refusal is a dead letter
with the raw XML (an operator can re-drive it), and nothing changes.

Libraries: the parsers check a ``library_id`` against the registry as this intake knows it now
(``LibraryDirectory``, ``services/domain/directory.py``: the seed plus the registry form's chains
in the ledger), not the seed alone, so a library registered on a phone can report visits.

Attachments arrive staged (``IncomingFile``): taken into the blob store when the submission is
accepted or held, parked when it is one part of a split upload, deleted when it is refused.
One that reached ODK Central after its submission was pulled comes later (``add_attachments``):
the accepted version gains it as a new version of its chain with the same answers, which the
processors fold as an edit, so the report is counted once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from pydantic import TypeAdapter

from services.bus.base import Publisher, PublishFailed, Sender
from services.bus.codec import Message
from services.clock import now_local
from services.domain.dead_letters import DeadLetter, Rejection
from services.domain.directory import LibraryDirectory
from services.domain.errors import Reason, Refused, StorageFull, SubmissionRejected
from services.domain.events import AdminArea, AttachmentRef, Envelope, Retraction, Source, SubmissionRetracted
from services.domain.forms import EVENT_MODELS, FORMS, FormSpec, ParsedForm, library_registry
from services.domain.reference import Reference
from services.domain.submission import Submission, parse_submission
from services.intake.accounts import ANONYMOUS, Account
from services.intake.blobs import IncomingFile
from services.intake.ledger import Ledger, LedgerEntry
from services.intake.refusals import BusUnavailable, LedgerUnavailable, OutOfScope, SubmissionConflict
from services.intake.registry import ledger_registry_changes

log = logging.getLogger(__name__)


AcceptedKind = Literal["new", "duplicate", "held", "partial"]
# What became of attachments that reached a server after their submission (``add_attachments``).
LateOutcome = Literal["added", "duplicate", "not_accepted", "superseded", "retracted"]
LATE_MARK = "#attachments@"  # an amended version's event_id: ``<instanceID>#attachments@<key>``


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
# Refusals that say "not now", not "not this": the submission may be tried again as it is.
_NOT_DURABLE = (BusUnavailable, LedgerUnavailable, StorageFull)
# How far ahead of ours another server's clock may be before its times are not believed.
CLOCK_SKEW = timedelta(minutes=5)


class IntakeService:
    def __init__(self, reference: Reference, ledger: Ledger, publisher: Publisher,
                 known_forms: dict[str, str], clock: Callable[[], datetime] = now_local,
                 held_timeout: timedelta = timedelta(days=7), partial_timeout: timedelta = timedelta(hours=24),
                 directory: LibraryDirectory | None = None):
        # ``reference``: the seed registry; the libraries known now come from ``directory``.
        self.directory = directory or LibraryDirectory(reference, lambda: ledger_registry_changes(ledger))
        self._ledger = ledger
        self._blobs = ledger.blobs
        self._publisher = publisher
        self._sender = publisher if isinstance(publisher, Sender) else None  # publishes in two steps (Kafka)
        self._known_forms = known_forms  # form_id → the version served
        self._clock = clock
        self._held_timeout = held_timeout
        self._partial_timeout = partial_timeout

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

    def submit(self, raw: bytes, account: Account = ANONYMOUS, source: Source = "openrosa",
               attachments: Sequence[IncomingFile] = (), *, incomplete: bool = False,
               received_at: datetime | None = None) -> Accepted:
        """Accept, hold, keep as a part (``incomplete``: ``*isIncomplete*=yes``), or raise ``Refused``
        (SubmissionRejected, SubmissionConflict, OutOfScope; not durable now: StorageFull, BusUnavailable).

        ``received_at``: when the phone's submission reached the server it was sent to (ODK Central's
        ``submissionDate``), for a submission pulled from there. It is the event's ``submitted_at``,
        what timeliness compares with the month's deadline; the intake's own time stays the ledger's
        ``accepted_at`` and the log's. A time we cannot believe is not used (``_received_at``).

        A part is checked as the complete submission would be. Whatever of ``attachments`` was not
        taken (a refusal, an error) is deleted before this returns."""
        try:
            submission = parse_submission(raw)
            with self._ledger.exclusive(submission.instance_id, submission.deprecated_id):
                accepted = self._submit(submission, raw, account, source, attachments, incomplete,
                                        received_at=received_at)
        except Refused as exc:
            _log_refused(raw, exc, account, source)
            raise
        finally:
            for incoming in attachments:
                incoming.blob.discard()  # a no-op for what was taken or parked
        if accepted.kind in ("new", "duplicate"):  # duplicate: a release that failed before is retried now
            self._release_successors(accepted.instance_id)
        return accepted

    def _submit(self, submission: Submission, raw: bytes, account: Account, source: Source,
                incoming: Sequence[IncomingFile], incomplete: bool = False,
                held_files: Sequence[AttachmentRef] = (), releasing: bool = False,
                received_at: datetime | None = None) -> Accepted:
        spec = self._spec(submission)
        done = self._duplicate_or_conflict(submission, releasing)
        if done is not None:
            _log_accepted(done, submission.answer("library_id") or "", account, source)
            return done

        now = self._clock()
        parsed = self._parse(spec, submission, now.date())
        predecessor = self._ledger.lookup(submission.deprecated_id) if submission.deprecated_id else None
        self._check_scope(account, submission, raw, parsed.library_id, parsed.areas, predecessor, now)
        if incomplete:
            return self._keep_part(submission, parsed.library_id, account, source, incoming, now)

        taken, had_parts = self._take_files(submission.instance_id, incoming)
        files = _merge(taken, held_files)
        root_id = submission.instance_id
        if submission.deprecated_id:
            if predecessor is None:
                # An edit of a version not received yet (phones send out of order): hold it, durably,
                # with the account's provinces, checked against the chain once the original comes.
                self._ledger.hold(submission.instance_id, submission.deprecated_id, submission.content_hash,
                                  self._blobs.keep(raw), account.username, json.dumps(sorted(account.provinces)),
                                  source, _ATTACHMENTS.dump_json(files).decode(), now)
                if had_parts:
                    self._ledger.forget_partial(submission.instance_id)
                held = Accepted(submission.instance_id, submission.form_id, "held")
                _log_accepted(held, parsed.library_id, account, source)
                return held
            root_id = predecessor.root_id

        event = spec.event_model(
            event_id=submission.instance_id, root_id=root_id, deprecated_id=submission.deprecated_id,
            form_id=submission.form_id, form_version=submission.form_version,
            submitted_at=self._received_at(received_at, now, parsed.occurred_on, submission.instance_id),
            occurred_on=parsed.occurred_on, library_id=parsed.library_id, areas=parsed.areas,
            submitter=account.username, source=source, content_hash=submission.content_hash,
            attachments=files, payload=parsed.payload)
        raw_sha = self._publish_keeping(event, raw)
        self._ledger.record(LedgerEntry(submission.instance_id, root_id, submission.content_hash,
                                        submission.form_id, raw_sha, event.model_dump_json()), now)
        if had_parts:  # read under this instanceID's lock just now: nothing else can have parked parts since
            self._ledger.forget_partial(submission.instance_id)
        if spec.form_id == library_registry.FORM_ID:
            self.directory.changed()  # the next submission and the next media download see it
        accepted = Accepted(submission.instance_id, submission.form_id, "new")
        _log_accepted(accepted, parsed.library_id, account, source)
        return accepted

    def _parse(self, spec: FormSpec, submission: Submission, today: date) -> ParsedForm:
        """``spec.parse`` against the libraries known now; a library not known yet makes the directory
        read the ledger once more (it may have been registered on another replica a moment ago)."""
        asked_at = self.directory.now()
        try:
            return spec.parse(submission, today, self.directory.reference())
        except SubmissionRejected as rejected:
            if not any(r.code == "library_unknown" for r in rejected.reasons) or not self.directory.refresh(asked_at):
                raise
        return spec.parse(submission, today, self.directory.reference())

    def _received_at(self, received_at: datetime | None, now: datetime, occurred_on: date, instance_id: str
                     ) -> datetime:
        """The acceptance time of a version: ``received_at`` if it can be true, else ``now`` (ours).

        It comes from another server (hostile input): later than now (beyond a clock skew) or before
        the day the report is about cannot be, and would move the report's timeliness; the
        submission is kept, stamped with our own time, and the reason logged."""
        if received_at is None:
            return now
        if received_at.tzinfo is None:
            why = "has no time zone"
        elif received_at > now + CLOCK_SKEW:
            why = "is in the future"
        elif received_at < datetime.combine(occurred_on, time.min, tzinfo=now.tzinfo):
            why = "is before the day the report is about"
        else:
            return min(received_at, now).astimezone(now.tzinfo)
        log.warning("receipt time %s %s: the intake's time is used", received_at.isoformat(), why,
                    extra={"event_id": instance_id, "reason": "received_at_untrusted"})
        return now

    def _publish(self, message: Message) -> None:
        try:
            self._publisher.publish(message)
        except PublishFailed as exc:
            raise BusUnavailable(str(exc)) from exc

    def _publish_keeping(self, event: Envelope, raw: bytes) -> str:
        """Publish ``event`` and keep ``raw`` (the phone's XML) in the blob store; return once both are
        durable, with the XML's digest, or raise. The ledger's record comes after this returns.

        With a publisher that sends in two steps (Kafka), the two overlap: the event is queued to
        the broker, the XML is written and fsynced while the broker acks, then the ack is awaited.
        Why that keeps the guarantees (201 only once the event is durable AND the ledger has it;
        anything failing before that leaves the phone resending and nothing half-applied):

        - The record still follows both the ack and the XML's fsync: an accepted row always has its
          event durable and its XML replayable, as before.
        - The XML is kept by content (sha256: a file fsynced and renamed, or a row of the PostgreSQL
          ledger's transaction, committed with the record): doing it while the event is in flight
          changes nothing it stores, and a resend keeps it again as a no-op. The attachments were
          taken into the store before (``_take_files``): the event names them.
        - What changes is the order of a failure: a full disk (StorageFull, 507) for the XML may now
          come after the event was queued, even acked. No record, no 201: the phone resends once
          there is room, and the processors drop the second copy by its event_id, exactly the path
          of a crash between publish and record, which the design already relies on.
        - Every step still runs under the instanceID's lock, so no other request for it acts on a
          published event without its row any differently than after such a crash.

        A publisher that commits in this thread (the embedded log) has nothing to overlap: the XML
        is kept first, as before, so a full disk there still leaves the log untouched."""
        if self._sender is None:
            raw_sha = self._blobs.keep(raw)
            self._publish(event)
            return raw_sha
        try:
            delivered = self._sender.send(event)
        except PublishFailed as exc:
            raise BusUnavailable(str(exc)) from exc
        try:
            raw_sha = self._blobs.keep(raw)
        finally:
            try:
                delivered()  # awaited even when keeping the XML failed: the answer follows the event's fate
            except PublishFailed as exc:
                raise BusUnavailable(str(exc)) from exc
        return raw_sha

    def _check_scope(self, account: Account, submission: Submission, raw: bytes, library_id: str,
                     areas: list[AdminArea], predecessor: LedgerEntry | None, now: datetime) -> None:
        """The new version's areas, then every earlier version's of the chain it replaces."""
        if not account.may_submit_for(areas):
            error = OutOfScope(account, library_id)
        elif predecessor is not None and not self._may_rewrite(account, predecessor.root_id):
            error = OutOfScope(account, library_id, replaces=submission.deprecated_id)
        else:
            return
        self._dead_letter(error.reasons[0], submission, raw, account.username, library_id=library_id, at=now)
        raise error

    def _dead_letter(self, reason: Reason, submission: Submission, raw: bytes, submitter: str, *,
                     instance_id: str | None = None, library_id: str | None = None,
                     at: datetime | None = None) -> None:
        """Keep what the intake could not apply, with the raw XML, for an operator to read and re-drive."""
        if library_id is None:
            library_id = submission.answer("library_id") or ""
        self._publish(DeadLetter.of(
            stage="intake", reason=reason, instance_id=instance_id or submission.instance_id,
            form_id=submission.form_id, library_id=library_id, submitter=submitter,
            content_hash=submission.content_hash, raw=raw, recorded_at=at or self._clock()))

    def _may_rewrite(self, account: Account, root_id: str) -> bool:
        if "*" in account.provinces:
            return True
        return all(account.may_submit_for(Envelope.model_validate_json(version.event_json).areas)
                   for version in self._ledger.chain(root_id))

    def _keep_part(self, submission: Submission, library_id: str, account: Account, source: Source,
                   incoming: Sequence[IncomingFile], now: datetime) -> Accepted:
        """One part of a split upload: park its attachments until the last part comes; emit nothing yet."""
        earlier = _ATTACHMENTS.validate_json(self._ledger.partial_attachments(submission.instance_id) or "[]")
        for file in incoming:
            self._blobs.park(submission.instance_id, file.blob)
        merged = _merge(earlier, [file.ref() for file in incoming])
        self._ledger.keep_partial(submission.instance_id, submission.content_hash,
                                  _ATTACHMENTS.dump_json(merged).decode(), now)
        part = Accepted(submission.instance_id, submission.form_id, "partial")
        _log_accepted(part, library_id, account, source)
        return part

    def _take_files(self, instance_id: str,
                    incoming: Sequence[IncomingFile]) -> tuple[list[AttachmentRef], bool]:
        """The earlier parts' attachments and this request's, moved into the blob store; and whether
        earlier parts were kept (only then is there anything for ``forget_partial`` to drop)."""
        parts = self._ledger.partial_attachments(instance_id)
        taken = []
        for ref in _ATTACHMENTS.validate_json(parts or "[]"):
            if self._blobs.adopt_parked(instance_id, ref.sha256):
                taken.append(ref)
            else:
                log.error("attachment %s of split upload %s is missing; the submission goes on without it",
                          ref.name, instance_id, extra={"event_id": instance_id})
        for file in incoming:
            self._blobs.commit(file.blob)
        return _merge(taken, [file.ref() for file in incoming]), parts is not None

    def _release_successors(self, instance_id: str) -> None:
        """Submit the edits held for ``instance_id``, which is now accepted, as the account that sent
        each (its provinces when held, checked now against the whole chain). The held row goes only
        once its edit is published and recorded, or refused into the dead letters: if that fails (the
        broker is down, the disk full), it stays held and the next resend of ``instance_id`` or the
        sweep tries again — the original, already durable, keeps its 201."""
        try:
            waiting = self._ledger.held(waiting_for=instance_id)
        except _NOT_DURABLE:  # the ledger is unreachable now: the next resend or the sweep tries again
            log.warning("edits held for %s not looked up", instance_id, extra={"event_id": instance_id})
            return
        for held in waiting:
            provinces = json.loads(held["provinces"]) if held["provinces"] else []
            account = Account(held["username"], provinces=frozenset(provinces))
            files = _ATTACHMENTS.validate_json(held["attachments"])
            raw = self._blobs.read(held["raw_sha256"])
            try:
                submission = parse_submission(raw)
                with self._ledger.exclusive(held["instance_id"], instance_id):
                    if not self._ledger.held(instance_id=held["instance_id"]):
                        continue  # released meanwhile by another request
                    try:
                        self._submit(submission, raw, account, held["source"], (),  # type: ignore[arg-type]
                                     held_files=files, releasing=True)
                    except _NOT_DURABLE:
                        raise
                    except Refused as exc:
                        self._dead_letter_held(held, raw, exc)
                    self._ledger.release(held["instance_id"])
            except _NOT_DURABLE:
                log.warning("held edit %s not released yet: it could not be made durable", held["instance_id"],
                            extra={"event_id": held["instance_id"]})

    def _dead_letter_held(self, held: dict[str, str], raw: bytes, exc: Refused) -> None:
        """A held edit refused on release: kept as a dead letter (OutOfScope has written its own)."""
        _log_refused(raw, exc, Account(held["username"]), held["source"])
        if not isinstance(exc, OutOfScope):
            self._dead_letter(exc.reasons[0], parse_submission(raw), raw, held["username"])

    def sweep(self) -> None:
        """What runs every few minutes: held edits past their time, split uploads never finished,
        files a crash left half-received."""
        self.expire_held()
        self.expire_partials()
        self._blobs.forget_stale_incoming()

    def expire_held(self) -> int:
        """Send edits whose predecessor never came within the timeout to the dead letters."""
        now = self._clock()
        expired = self._ledger.held(held_before=now - self._held_timeout)
        came = []
        for held in expired:
            with self._ledger.exclusive(held["instance_id"], held["deprecated_id"]):
                if not self._ledger.held(instance_id=held["instance_id"]):
                    continue
                if self._ledger.lookup(held["deprecated_id"]) is not None:  # its original came; a release failed
                    came.append(held["deprecated_id"])
                    continue
                raw = self._blobs.read(held["raw_sha256"])
                reason = Reason(
                    "predecessor_missing",
                    f"Bản sửa {held['instance_id']} chờ bản gốc {held['deprecated_id']} quá hạn mà bản gốc chưa tới.",
                    f"Edit {held['instance_id']} waited for {held['deprecated_id']} past the timeout; it never came.")
                self._dead_letter(reason, parse_submission(raw), raw, held["username"], at=now)
                self._ledger.release(held["instance_id"])
        for instance_id in came:
            self._release_successors(instance_id)
        return len(expired)

    def expire_partials(self) -> int:
        """Forget split uploads whose last part never came within the timeout, and their files."""
        stale = self._ledger.partials_before(self._clock() - self._partial_timeout)
        for instance_id in stale:
            with self._ledger.exclusive(instance_id):
                self._ledger.forget_partial(instance_id)
            log.info("unfinished split upload expired", extra={"event_id": instance_id})
        return len(stale)

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

    def retract(self, instance_id: str, account: Account, reason_code: str, reason: str,
                *, key: str | None = None) -> bool:
        """Withdraw an accepted submission's chain (e.g. rejected in Central's review).

        Returns False when there is nothing to do: unknown instanceID, or already retracted. Raises
        OutOfScope (and keeps a dead letter) when a version of the chain is outside the account's provinces,
        BusUnavailable when the retraction could not be made durable.

        ``key`` names this withdrawal (Central's review time): a chain reinstated and rejected again
        needs a new event_id, else the processors would drop the second retraction as a duplicate;
        the same key again (a redelivered review) gives the same event_id.
        """
        with self._ledger.exclusive(instance_id):
            entry = self._ledger.lookup(instance_id)
            if entry is None or entry.retracted:
                return False
            original = Envelope.model_validate_json(entry.event_json)
            if not self._may_rewrite(account, entry.root_id):
                error = OutOfScope(account, original.library_id, replaces=instance_id)
                raw = self._blobs.read(entry.raw_sha256)
                self._dead_letter(error.reasons[0], parse_submission(raw), raw, account.username,
                                  instance_id=f"{instance_id}#retracted", library_id=original.library_id)
                raise error
            retraction = SubmissionRetracted(
                **original.model_dump(include={"root_id", "form_id", "form_version", "occurred_on", "library_id",
                                               "areas", "source"}),
                event_id=f"{instance_id}#retracted" + (f"@{key}" if key else ""), submitted_at=self._clock(),
                submitter=account.username,
                content_hash=hashlib.sha256(f"retract|{instance_id}|{reason_code}|{key or ''}".encode()).hexdigest(),
                payload=Retraction(retracts_event_type=original.event_type, reason_code=reason_code, reason=reason))
            self._publish(retraction)
            self._ledger.mark_retracted(instance_id)
        if original.form_id == library_registry.FORM_ID:
            self.directory.changed()
        log.info("submission retracted", extra={"event_id": retraction.event_id, "retracts": instance_id,
                                                "form_id": original.form_id, "library_id": original.library_id,
                                                "reason": reason_code})
        return True


    def reinstate(self, instance_id: str, account: Account, key: str) -> bool:
        """Count a retracted chain again (e.g. Central's review moved it off ``rejected``).

        The chain's current version is published again as a new version of the chain
        (``<instanceID>#reinstated@<key>``, accepted now, so later than the retraction): the
        processors fold it as they fold an edit, with nothing new to learn, and a redelivery of it
        is a duplicate by its event_id. The ledger marks the chain live again, so a later rejection
        retracts it again and a resend of the phone's XML is still a duplicate. Returns False when
        there is nothing to do: unknown instanceID, or the chain is not retracted. Raises as
        ``retract`` does.
        """
        with self._ledger.exclusive(instance_id):
            entry = self._ledger.lookup(instance_id)
            if entry is None:
                return False
            chain = self._ledger.chain(entry.root_id)
            withdrawn = [version for version in chain if version.retracted]
            if not withdrawn:
                return False
            # The chain's current version: the one accepted last (reinstated copies are not in the ledger).
            current = Envelope.model_validate_json(chain[-1].event_json)
            if not self._may_rewrite(account, entry.root_id):
                error = OutOfScope(account, current.library_id, replaces=instance_id)
                raw = self._blobs.read(chain[-1].raw_sha256)
                self._dead_letter(error.reasons[0], parse_submission(raw), raw, account.username,
                                  instance_id=f"{instance_id}#reinstated@{key}", library_id=current.library_id)
                raise error
            model = EVENT_MODELS[current.event_type]
            again = model.model_validate_json(chain[-1].event_json).model_copy(update={
                "event_id": f"{current.root_id}#reinstated@{key}", "deprecated_id": current.event_id,
                "submitted_at": self._clock(), "submitter": account.username})
            self._publish(again)
            for version in withdrawn:
                self._ledger.mark_retracted(version.instance_id, False)
        if current.form_id == library_registry.FORM_ID:
            self.directory.changed()
        log.info("submission reinstated", extra={"event_id": again.event_id, "reinstates": current.event_id,
                                                 "form_id": current.form_id, "library_id": current.library_id})
        return True

    def add_attachments(self, instance_id: str, account: Account,
                        attachments: Sequence[IncomingFile]) -> LateOutcome:
        """Attachments that reached the server the submission was sent to after it was accepted here
        (ODK Central lists an attachment as missing until the phone uploads it, and the upload does
        not change the submission). Like the last part of an OpenRosa split upload, they complete the
        submission; unlike it, the submission was already counted. So the chain's current version,
        if it is ``instance_id`` (or an earlier amendment of it), is published again with the files
        added: ``<instanceID>#attachments@<key>``, same answers, ``deprecated_id`` the version it
        amends, accepted now (later than it). The processors fold it as an edit: one report, not
        two; its first acceptance (timeliness) is unchanged. It is recorded in the ledger, so a
        reinstatement republishes it with the files. The key is the files' digests: sent again, it
        is a duplicate.

        Nothing is published, and the files are deleted, when ``instance_id`` is not accepted
        (``not_accepted``: refused, or an edit held for its original), the chain has moved on to a
        later edit (``superseded``: that version has its own attachments), or is withdrawn
        (``retracted``: a new version would count it again). Raises BusUnavailable, StorageFull."""
        try:
            with self._ledger.exclusive(instance_id):
                return self._add_attachments(instance_id, account, attachments)
        finally:
            for incoming in attachments:
                incoming.blob.discard()  # a no-op for what was taken

    def _add_attachments(self, instance_id: str, account: Account, incoming: Sequence[IncomingFile]
                         ) -> LateOutcome:
        entry = self._ledger.lookup(instance_id)
        if entry is None:
            return "not_accepted"
        chain = self._ledger.chain(entry.root_id)
        current = chain[-1]
        if current.instance_id != instance_id and not current.instance_id.startswith(instance_id + LATE_MARK):
            return "superseded"
        if any(version.retracted for version in chain):
            return "retracted"
        event = Envelope.model_validate_json(current.event_json)
        have = {(ref.name, ref.sha256) for ref in event.attachments}
        new = [file for file in incoming if (file.name, file.blob.sha256) not in have]
        if not new:
            return "duplicate"
        key = hashlib.sha256("|".join(sorted(f"{f.name}:{f.blob.sha256}" for f in new)).encode()).hexdigest()[:16]
        amended_id = f"{instance_id}{LATE_MARK}{key}"
        if self._ledger.lookup(amended_id) is not None:
            return "duplicate"
        for file in new:
            self._blobs.commit(file.blob)
        now = self._clock()
        amended = EVENT_MODELS[event.event_type].model_validate_json(current.event_json).model_copy(update={
            "event_id": amended_id, "deprecated_id": current.instance_id, "submitted_at": now,
            "attachments": _merge(event.attachments, [file.ref() for file in new])})
        self._publish(amended)
        self._ledger.record(LedgerEntry(amended_id, entry.root_id, current.content_hash, current.form_id,
                                        current.raw_sha256, amended.model_dump_json()), now)
        log.info("late attachments added", extra={"event_id": amended_id, "amends": current.instance_id,
                                                  "form_id": event.form_id, "library_id": event.library_id,
                                                  "submitter": account.username})
        return "added"

# Correlation: the submission's instanceID is its event_id everywhere, from here to the store's write.

def _log_accepted(accepted: Accepted, library_id: str, account: Account, source: str) -> None:
    log.info("submission accepted", extra={"event_id": accepted.instance_id, "form_id": accepted.form_id,
                                           "library_id": library_id, "kind": accepted.kind, "source": source,
                                           "submitter": account.username})


def _log_refused(raw: bytes, exc: Refused, account: Account, source: str) -> None:
    try:  # as much as the submission says about itself; nothing if it does not parse
        submission = parse_submission(raw)
        event_id, form_id, library_id = submission.instance_id, submission.form_id, submission.answer("library_id")
    except Exception:
        event_id = form_id = library_id = ""
    log.info("submission refused", extra={"event_id": event_id, "form_id": form_id, "library_id": library_id or "",
                                          "kind": "refused", "reason": exc.code, "source": source,
                                          "submitter": account.username})
