"""ODK Central pull: submissions that phones sent to an ODK Central server, fed to the intake.

One ``CentralPoller`` per (project, form). Each poll reads Central's OData feed
(``/v1/projects/{p}/forms/{f}.svc/Submissions``, the endpoint of pyodk's
``client.submissions.get_table``) and hands every new or changed submission to
``IntakeService`` exactly as the OpenRosa endpoint does, with ``source="central"``.

What Central's documentation and code say, and what follows from it:

- ``__system/updatedAt`` is **null** until a submission is edited or reviewed ("Submissions ›
  Listing all Submissions": "null when the Submission is first created"), so a filter on it
  alone never sees a new submission. The poller therefore follows two streams, each with its
  own cursor: ``submissionDate`` (every submission, once, in arrival order) and ``updatedAt``
  (edits and review-state changes). A submission met in both is harmless: the intake answers
  ``duplicate`` for answers it already has, and a retraction happens once.
- A filter on ``createdAt`` is refused (501.5); the submission's arrival time is
  ``__system/submissionDate``.
- Rows are asked for in order with ``$orderby=__system/<field> asc`` (Central v2024.1+;
  Central appends its row id as tie-break). pyodk 1.3's ``get_table`` has no ``orderby``
  argument, so the page is requested through pyodk's own session on ``get_table``'s URL with
  the same parameters plus ``$orderby``. Each page is checked to be in order; a server that
  ignored ``$orderby`` stops the poll rather than moving the cursor wrongly. Only ``__id`` and
  ``__system`` are selected (``$select``): the answers come from the submission XML, so
  ``$expand`` is not needed; ``$count`` gives the backlog for the log.
- Central stores timestamps to the microsecond and writes them to the millisecond, and a
  transaction's ``now()`` is its start: two rows can show the same time, and a row can become
  visible after a later-stamped one. The cursor of a stream (a JSON file written to a temporary
  file, fsynced, then ``os.replace``d) keeps ``high``, the newest timestamp handled, and
  ``seen``, the ids handled at or after the lower bound of the next query, with their
  timestamps. A query asks ``ge <bound>`` and skips what ``seen`` holds (same id, same time),
  with ``$top = page_size + len(seen from bound)`` so every full page carries something new.
  The bound is ``min(high, scanned_at - overlap)``, ``scanned_at`` being Central's clock (the
  ``Date`` header) when the last complete scan began: anything older was committed then and
  has been handled; anything younger is asked again and filtered by ``seen``. With no late
  commits this is exactly "``ge`` the boundary and skip the ids remembered at it".
- The cursor moves only past a row that was handled: accepted, duplicate, held, refused by
  the intake with a reason, retracted (or nothing to retract). A row whose handling raised
  (the bus is down: ``BusUnavailable``; the disk is full: ``StorageFull``; Central answered an
  error) stops the poll there, with the cursor before it; the next poll starts again from that row.
- An edit in Central is a new version of the same submission: a new ``meta/instanceID`` with
  ``meta/deprecatedID`` naming the version it replaces, while ``__id`` stays the first
  version's. The intake turns that into a replacement, and holds an edit whose original it has
  not seen; so when ``__system/edits`` > 0 every version is sent, oldest first
  (``…/submissions/{id}/versions``), the ones already accepted coming back as duplicates.
- ``reviewState == "rejected"`` withdraws the submission (``IntakeService.retract``); a
  rejected submission is not sent to the intake. A review moved off ``rejected`` (to approved,
  hasIssues, edited or none) is the row coming back in the ``updatedAt`` stream with another
  state: its XML is sent again (a duplicate) and ``IntakeService.reinstate`` counts the chain
  again. Both are keyed by the review's ``updatedAt``, so a redelivered row makes the same event.
- A submission's acceptance time (the event's ``submitted_at``, which timeliness compares with
  the month's deadline) is ``__system/submissionDate``, when the phone's submission reached
  Central, not when it was pulled (the ledger and the log keep that); the intake checks it.
- Attachments are listed (``…/attachments``), downloaded, checked against the ``ETag`` Central
  sends (the blob's MD5) and given to the intake, stored by content. A download is read as a
  stream and stopped past ``MAX_ATTACHMENT_BYTES`` (counted on the bytes read, whatever
  ``Content-Length`` says or does not say): an attachment too large is refused with a recorded
  rejection (``too_large``), counted, and the submission goes on without it.
- An attachment the XML names but Central does not have yet is listed with ``exists: false``;
  the phone may upload it later, and that upload moves neither ``updatedAt`` nor anything the
  two streams see. So the newest version's missing names are kept in the cursor file
  (``pending``, saved with the streams' positions, atomically) and listed again at the start of
  each poll (``…/versions/{version}/attachments``). One that appears is fetched and given to the
  intake (``IntakeService.add_attachments``: the accepted version gains it as an edit with the
  same answers, so the report is counted once). After ``CENTRAL_ATTACHMENT_WAIT_HOURS`` from
  when it was first found missing, or when Central no longer has the submission, the poller gives
  up on it: logged, counted (``attachments_abandoned``, ``central_attachments_total``), and the
  submission stays as accepted.

    python -m services.intake.central --config pyodk_config.toml --project 3 --form visit_log --once
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from pyodk.errors import PyODKError

from services import metrics
from services.clock import now_local
from services.config import Settings
from services.domain.errors import Refused, StorageFull
from services.domain.submission import parse_submission
from services.intake.accounts import Account
from services.intake.blobs import IncomingFile, StagedBlob
from services.intake.central_state import PullState, state_path
from services.intake.refusals import BusUnavailable, OutOfScope, too_large
from services.intake.service import IntakeService

if TYPE_CHECKING:
    from pyodk.client import Client

log = logging.getLogger(__name__)

STREAMS = ("submissionDate", "updatedAt")
EPOCH = "1970-01-01T00:00:00.000Z"
REJECTED_CODE = "central_rejected"
REJECTED_REASON = "Rejected in ODK Central review / Bị từ chối khi duyệt trên ODK Central"
CURSOR_FORMAT = 1

_SUBMISSION = "projects/{project_id}/forms/{form_id}/submissions/{instance_id}"
_XML = _SUBMISSION + ".xml"
_ATTACHMENTS = _SUBMISSION + "/attachments"
_VERSIONS = _SUBMISSION + "/versions"
_VERSION_XML = _SUBMISSION + "/versions/{version_id}.xml"
_VERSION_ATTACHMENTS = _SUBMISSION + "/versions/{version_id}/attachments"
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 64 * 1024
# The defaults of what the deployment sets (``Settings``): described once, there.
_ATTACHMENT_LIMIT = Settings.model_fields["max_attachment_bytes"].default
_ATTACHMENT_WAIT_H = Settings.model_fields["central_attachment_wait_hours"].default


class CentralError(Exception):
    """Central answered something the poller cannot go on from (an HTTP error, rows out of order)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # Central's HTTP status, when it answered one


class _TooLarge(Exception):
    def __init__(self, declared: int | None):
        super().__init__(declared)
        self.declared = declared  # what Content-Length said, if that is how it was found out


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def format_time(at: datetime) -> str:
    """Central's own way of writing a time: UTC, milliseconds, ``Z``."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------------------
# Cursor


@dataclass
class StreamCursor:
    high: str | None = None  # newest timestamp handled, as Central wrote it
    seen: dict[str, str] = field(default_factory=dict)  # __id → timestamp, handled at/after the bound
    scanned_at: str | None = None  # Central's clock when the last complete scan began

    def bound(self, overlap: timedelta) -> str:
        if self.high is None:
            return EPOCH
        high = parse_time(self.high)
        if self.scanned_at is None:  # never scanned to the end: nothing was pruned from ``seen``
            return EPOCH
        return format_time(min(high, parse_time(self.scanned_at) - overlap))

    def is_handled(self, row_id: str, at: str) -> bool:
        return self.seen.get(row_id) == at

    def handled(self, row_id: str, at: str) -> None:
        if self.high is None or parse_time(at) > parse_time(self.high):
            self.high = at
        self.seen[row_id] = at

    def seen_from(self, bound: str) -> int:
        floor = parse_time(bound)
        return sum(1 for at in self.seen.values() if parse_time(at) >= floor)

    def scanned(self, started_at: str, overlap: timedelta) -> None:
        """A scan that began at ``started_at`` reached the end: forget what the next one cannot meet."""
        self.scanned_at = started_at
        floor = parse_time(self.bound(overlap))
        self.seen = {row_id: at for row_id, at in self.seen.items() if parse_time(at) >= floor}


@dataclass
class Waiting:
    """Attachments of one accepted version that Central listed as missing."""

    row_id: str  # the submission's __id (its first version's instanceID): Central's address for it
    names: list[str]
    since: str  # when they were first found missing (our clock): the wait is counted from here


class Cursor:
    """Both streams' positions for one (project, form), and the attachments still awaited (``pending``:
    version instanceID → ``Waiting``), in one JSON file replaced atomically."""

    def __init__(self, path: Path, project_id: int, form_id: str):
        self.path, self.project_id, self.form_id = path, project_id, form_id
        self.streams = {name: StreamCursor() for name in STREAMS}
        self.pending: dict[str, Waiting] = {}
        if path.exists():
            data = json.loads(path.read_text("utf-8"))
            if (data.get("project_id"), data.get("form_id")) != (project_id, form_id):
                raise ValueError(f"{path} is the cursor of project {data.get('project_id')} form "
                                 f"{data.get('form_id')!r}, not of project {project_id} form {form_id!r}")
            for name in STREAMS:
                self.streams[name] = StreamCursor(**data["streams"].get(name, {}))
            self.pending = {iid: Waiting(**w) for iid, w in data.get("pending", {}).items()}

    def save(self) -> None:
        data = {"format": CURSOR_FORMAT, "project_id": self.project_id, "form_id": self.form_id,
                "streams": {name: asdict(stream) for name, stream in self.streams.items()},
                "pending": {iid: asdict(waiting) for iid, waiting in self.pending.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


# ---------------------------------------------------------------------------------------
# Poller


@dataclass
class PollResult:
    rows: int = 0  # OData rows handled (new or changed since the cursor)
    accepted: int = 0  # versions accepted as new submissions
    replaced: int = 0  # versions accepted as edits of an accepted one
    duplicates: int = 0  # versions the intake already had
    held: int = 0  # edits waiting for their original in the intake
    retracted: int = 0  # submissions withdrawn because Central's review rejected them
    retract_noop: int = 0  # rejected in Central, but nothing accepted (or already withdrawn)
    reinstated: int = 0  # withdrawn chains counted again: Central's review moved off "rejected"
    rejected: dict[str, int] = field(default_factory=dict)  # refused by the intake: reason code → versions
    attachments_fetched: int = 0
    attachments_missing: int = 0  # expected by the XML, not (yet) uploaded to Central
    attachments_late: int = 0  # of those, uploaded since, fetched and added to their accepted submission
    attachments_too_large: int = 0  # refused: more than MAX_ATTACHMENT_BYTES (the submission goes on without)
    attachments_abandoned: int = 0  # still missing after CENTRAL_ATTACHMENT_WAIT_HOURS: no longer asked for
    backlog: dict[str, int] = field(default_factory=dict)  # stream → rows from the first bound (@odata.count)
    error: str | None = None  # why the poll stopped early; the cursor stays before that row

    @property
    def complete(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Version:
    instance_id: str
    xml_path: str
    attachments_path: str
    may_have_attachments: bool


class CentralPoller:
    def __init__(self, client: Client, service: IntakeService, cursor_path: Path, project_id: int, form_id: str,
                 account: Account, page_size: int = 250, *,
                 attachment_store: Callable[[bytes], StagedBlob] | None = None, overlap_s: float = 120.0,
                 attachment_limit: int = _ATTACHMENT_LIMIT, attachment_wait_h: float = _ATTACHMENT_WAIT_H,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        """``attachment_store`` stages bytes for the intake, which keeps them by content if it accepts
        the submission (the ledger's ``blobs.stage_bytes``); without it attachments are fetched and
        checked but not handed over. ``attachment_limit``: MAX_ATTACHMENT_BYTES;
        ``attachment_wait_h``: CENTRAL_ATTACHMENT_WAIT_HOURS; ``clock`` measures that wait."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._client, self._service, self._account = client, service, account
        self._project_id, self._form_id, self._page_size = project_id, form_id, page_size
        self._store = attachment_store
        self._limit, self._wait, self._clock = attachment_limit, timedelta(hours=attachment_wait_h), clock
        self._overlap = timedelta(seconds=overlap_s)
        self._cursor = Cursor(cursor_path, project_id, form_id)
        self._state_path = state_path(cursor_path)
        self._state = PullState.load(self._state_path, project_id, form_id)
        self._state.central_url = client.config.central.base_url
        self._warned_no_store = False
        self._export_metrics()

    @property
    def form_id(self) -> str:
        return self._form_id

    @property
    def state(self) -> PullState:
        """The pull's state (``central_state.py``), as last saved beside the cursor."""
        return self._state

    def lag_seconds(self) -> float:
        """Now − the newest of: the newest row handled, the start of the last complete poll."""
        return self._state.lag_seconds()

    def _export_metrics(self) -> None:
        """``/metrics`` reads the state when scraped (the last poller of a form in this process wins)."""
        form, state = self._form_id, self._state

        def timestamp(name: str) -> Callable[[], float]:
            def read() -> float:
                text = getattr(state, name)
                return datetime.fromisoformat(text).timestamp() if text else math.nan
            return read

        metrics.CENTRAL_POLL_LAG.labels(form_id=form).set_function(self.lag_seconds)
        metrics.CENTRAL_LAST_POLL.labels(form_id=form).set_function(timestamp("last_poll_ended"))
        metrics.CENTRAL_LAST_COMPLETE_POLL.labels(form_id=form).set_function(timestamp("last_complete_poll_started"))
        for stream in STREAMS:
            metrics.CENTRAL_BACKLOG.labels(form_id=form, stream=stream).set_function(
                lambda stream=stream: float(state.backlog.get(stream, math.nan)))
            metrics.CENTRAL_CURSOR.labels(form_id=form, stream=stream).set_function(
                lambda stream=stream: parse_time(at).timestamp() if (at := state.cursors.get(stream)) else math.nan)

    def waiting(self) -> dict[str, list[str]]:
        """Version instanceID → names of the attachments still awaited from Central."""
        return {iid: list(w.names) for iid, w in self._cursor.pending.items()}

    def check_form(self) -> str:
        """The form exists on Central and can be read (pyodk ``forms.get``); returns its version."""
        form = self._client.forms.get(self._form_id, project_id=self._project_id)
        return form.version

    # -- the poll --------------------------------------------------------------------------

    def poll_once(self) -> PollResult:
        result = PollResult()
        self._state.started(now_local())
        self._state.save(self._state_path)
        errors = []
        # The attachments awaited since earlier polls first, then each stream (each has its own cursor:
        # one stuck on a row does not hold the other).
        for stream in ("attachments", *STREAMS):
            try:
                if stream == "attachments":
                    self._recheck(result)
                else:
                    self._pull(stream, result)
            except BusUnavailable as exc:  # nothing can be accepted now: stop the whole poll
                errors.append(f"the bus could not make an event durable: {exc}")
                break
            except StorageFull as exc:  # nor kept: stop the whole poll, the row is tried again next time
                errors.append(f"no space to store submissions: {exc}")
                break
            except (PyODKError, requests.RequestException, CentralError) as exc:
                errors.append(f"ODK Central ({stream}): {exc}")
            except Exception as exc:  # a row that cannot be handled: stop before it, try again next poll
                log.exception("central pull of %s (%s) stopped", self._form_id, stream)
                errors.append(f"{stream}: {type(exc).__name__}: {exc}")
        result.error = "; ".join(errors) or None
        if result.error:
            metrics.CENTRAL_POLL_ERRORS.labels(form_id=self._form_id).inc()
            log.warning("central pull of %s stopped, cursor kept before the failing row: %s",
                        self._form_id, result.error)
        self._record(result)
        if result.rows or result.error or result.attachments_late or result.attachments_abandoned:
            log.info("central pull of %s: %s", self._form_id, _summary(result))
        return result

    def _record(self, result: PollResult) -> None:
        state = self._state
        for outcome in ("accepted", "replaced", "duplicates", "held", "retracted", "retract_noop", "reinstated"):
            state.rows[outcome] = state.rows.get(outcome, 0) + getattr(result, outcome)
        state.rows["rejected"] = state.rows.get("rejected", 0) + sum(result.rejected.values())
        state.backlog.update(result.backlog)
        state.cursors = {name: stream.high for name, stream in self._cursor.streams.items()}
        state.ended(now_local(), complete=result.complete, error=result.error)
        state.save(self._state_path)

    def run_forever(self, interval_s: float, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            self.poll_once()
            stop.wait(interval_s)

    def _pull(self, stream: str, result: PollResult) -> None:
        cursor = self._cursor.streams[stream]
        bound = cursor.bound(self._overlap)
        scan_started: str | None = None
        while True:
            top = self._page_size + cursor.seen_from(bound)
            rows, server_time, count = self._page(stream, bound, top)
            if scan_started is None:
                scan_started = server_time
                if count is not None:
                    result.backlog[stream] = count
            fresh = 0
            for row in rows:
                at = row["__system"][stream]
                if cursor.is_handled(row["__id"], at):
                    continue
                self._handle(row, result)
                cursor.handled(row["__id"], at)
                self._cursor.save()
                fresh += 1
                result.rows += 1
                self._state.handled(parse_time(at))
            if len(rows) < top:
                break
            if fresh == 0:
                raise CentralError(f"no progress paging {stream} from {bound}: {len(rows)} rows, all handled")
            bound = rows[-1]["__system"][stream]
        cursor.scanned(scan_started, self._overlap)
        self._cursor.save()

    def _page(self, stream: str, bound: str, top: int) -> tuple[list[dict[str, Any]], str, int | None]:
        """One page of ``get_table`` (``…svc/Submissions``) in ``stream`` order from ``bound``."""
        path = self._client.session.urlformat(self._client.submissions.urls.get_table, project_id=self._project_id,
                                              form_id=self._form_id, table_name="Submissions")
        response = self._get(path, params={
            "$filter": f"__system/{stream} ge {bound}", "$orderby": f"__system/{stream} asc",
            "$top": str(top), "$count": "true", "$select": "__id,__system"})
        document = response.json()
        rows = document.get("value", [])
        floor, previous = parse_time(bound), None
        for row in rows:
            at = (row.get("__system") or {}).get(stream)
            if not isinstance(at, str) or not row.get("__id"):
                raise CentralError(f"a row without __id or __system/{stream}: {row!r:.200}")
            moment = parse_time(at)
            if moment < floor or (previous is not None and moment < previous):
                raise CentralError(f"rows are not in __system/{stream} order from {bound} (Central before "
                                   "v2024.1 ignores $orderby); the cursor was not moved")
            previous = moment
        return rows, _server_time(response), document.get("@odata.count")

    # -- one row -----------------------------------------------------------------------------

    def _handle(self, row: dict[str, Any], result: PollResult) -> None:
        system = row["__system"]
        if system.get("reviewState") == "rejected":
            self._retract(row, result)
            return
        # When the phone's submission reached Central is its acceptance time (timeliness), not when
        # we pulled it. That is the first version's; an edit is stamped when pulled, so that it stays
        # later than anything the intake did to the chain before (a retraction is stamped then too).
        received_at = _received_at(row)
        versions = self._versions(row)
        for index, version in enumerate(versions):
            raw = self._get(version.xml_path).content
            files: list[IncomingFile] = []
            missing: list[str] = []
            try:
                if version.may_have_attachments:
                    missing = self._attachments(version, result, files)
                outcome = self._submit(raw, files, result, received_at if index == 0 else None)
            finally:  # the intake took what it accepted; an error before it leaves nothing staged
                for file in files:
                    file.blob.discard()
            if missing and outcome is not None and index == len(versions) - 1:
                # Only the newest version's: an earlier one's files would complete a superseded version.
                self._await(row["__id"], version.instance_id, missing)
        self._reinstate(row, result)

    def _versions(self, row: dict[str, Any]) -> list[_Version]:
        iid, system = row["__id"], row["__system"]
        ids = {"project_id": self._project_id, "form_id": self._form_id, "instance_id": iid}
        fmt = self._client.session.urlformat
        if not system.get("edits"):
            return [_Version(iid, fmt(_XML, **ids), fmt(_ATTACHMENTS, **ids),
                             bool(system.get("attachmentsExpected")))]
        listed = self._get(fmt(_VERSIONS, **ids)).json()  # newest first
        return [_Version(v["instanceId"], fmt(_VERSION_XML, version_id=v["instanceId"], **ids),
                         fmt(_VERSION_ATTACHMENTS, version_id=v["instanceId"], **ids), True)
                for v in reversed(listed)]

    def _attachments(self, version: _Version, result: PollResult, files: list[IncomingFile]) -> list[str]:
        """Fetch what Central has of ``version``'s attachments into ``files``; return the names it lists missing."""
        missing = []
        for item in self._get(version.attachments_path).json():
            name = item["name"]
            if not item.get("exists"):
                result.attachments_missing += 1
                metrics.CENTRAL_ATTACHMENTS.labels(form_id=self._form_id, outcome="missing").inc()
                log.warning("%s: attachment %s is expected but not on Central (yet)", version.instance_id, name)
                missing.append(name)
                continue
            self._fetch(version, name, result, files)
        return missing

    def _fetch(self, version: _Version, name: str, result: PollResult, files: list[IncomingFile]) -> None:
        """One attachment, read within ``attachment_limit``, checked against its ETag, staged into ``files``."""
        try:
            data, response = self._download(f"{version.attachments_path}/{self._client.session.urlquote(name)}")
        except _TooLarge as exc:
            self._too_large(version.instance_id, name, exc.declared, result)
            return
        etag = response.headers.get("ETag", "").removeprefix("W/").strip('"')
        if _MD5.match(etag) and hashlib.md5(data).hexdigest() != etag:
            raise CentralError(f"attachment {name} of {version.instance_id} does not match its ETag")
        result.attachments_fetched += 1
        metrics.CENTRAL_ATTACHMENTS.labels(form_id=self._form_id, outcome="fetched").inc()
        if self._store is None:
            if not self._warned_no_store:
                log.warning("no attachment store given: attachments are fetched and checked, not kept")
                self._warned_no_store = True
            return
        media_type = (response.headers.get("Content-Type") or "application/octet-stream").split(";")[0].strip()
        files.append(IncomingFile(name, media_type, self._store(data)))

    def _download(self, path: str) -> tuple[bytes, requests.Response]:
        """The body of ``path``, streamed and stopped past the limit: ``Content-Length`` may be absent
        (chunked) or wrong, so what counts is the bytes read. Raises ``_TooLarge``."""
        response = self._get(path, stream=True)
        try:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self._limit:  # said so up front: not read at all
                raise _TooLarge(int(declared))
            data = bytearray()
            for chunk in response.iter_content(_CHUNK):
                data += chunk
                if len(data) > self._limit:
                    raise _TooLarge(None)
            return bytes(data), response
        finally:
            response.close()

    def _too_large(self, instance_id: str, name: str, declared: int | None, result: PollResult) -> None:
        result.attachments_too_large += 1
        metrics.CENTRAL_ATTACHMENTS.labels(form_id=self._form_id, outcome="too_large").inc()
        reason = too_large(f"Tệp {name}", f"Attachment {name}", self._limit, declared)
        log.warning("%s: attachment %s refused: %s / %s", instance_id, name, reason.message_vi, reason.message_en,
                    extra={"event_id": instance_id, "reason": reason.code})
        # What operators read of what was turned away (``GET /v1/rejections``); the submission goes on without it.
        self._service.record_rejection(413, [reason], self._form_id, instance_id, self._account)

    # -- attachments Central did not have yet ------------------------------------------------

    def _await(self, row_id: str, instance_id: str, names: list[str]) -> None:
        """Remember ``names`` of accepted version ``instance_id``; saved with the row's cursor move."""
        waiting = self._cursor.pending.get(instance_id)
        if waiting is None:
            self._cursor.pending[instance_id] = Waiting(row_id, sorted(names), format_time(self._clock()))
        else:
            waiting.names = sorted(set(waiting.names) | set(names))

    def _recheck(self, result: PollResult) -> None:
        """List again each version's awaited attachments; fetch and hand over those now on Central."""
        for instance_id, waiting in list(self._cursor.pending.items()):
            if self._clock() - parse_time(waiting.since) > self._wait:
                self._abandon(instance_id, waiting, f"still missing after {self._wait}", result)
                continue
            ids = {"project_id": self._project_id, "form_id": self._form_id, "instance_id": waiting.row_id}
            version = _Version(instance_id, "", self._client.session.urlformat(
                _VERSION_ATTACHMENTS, version_id=instance_id, **ids), True)
            try:
                listed = {item["name"]: bool(item.get("exists")) for item in self._get(version.attachments_path).json()}
            except CentralError as exc:
                if exc.status != 404:
                    raise
                self._abandon(instance_id, waiting, "the submission is no longer on Central", result)
                continue
            arrived = [name for name in waiting.names if listed.get(name)]
            if not arrived:
                continue
            files: list[IncomingFile] = []
            try:
                for name in arrived:
                    self._fetch(version, name, result, files)
                outcome = self._service.add_attachments(instance_id, self._account, files) if files else None
            finally:
                for file in files:
                    file.blob.discard()
            if outcome == "not_accepted":  # an edit still held for its original: asked again next poll
                continue
            if outcome in ("added", "duplicate"):
                result.attachments_late += len(files)
                metrics.CENTRAL_ATTACHMENTS.labels(form_id=self._form_id, outcome="late").inc(len(files))
            elif outcome is not None:
                log.info("%s: late attachments %s not added: the submission is %s", instance_id, arrived, outcome,
                         extra={"event_id": instance_id})
                self._cursor.pending.pop(instance_id)
                self._cursor.save()
                continue
            waiting.names = [name for name in waiting.names if name not in arrived]
            if not waiting.names:
                del self._cursor.pending[instance_id]
            self._cursor.save()

    def _abandon(self, instance_id: str, waiting: Waiting, why: str, result: PollResult) -> None:
        result.attachments_abandoned += len(waiting.names)
        metrics.CENTRAL_ATTACHMENTS.labels(form_id=self._form_id, outcome="abandoned").inc(len(waiting.names))
        log.warning("%s: no longer waiting for attachments %s (%s); the submission stays as accepted without them",
                    instance_id, waiting.names, why, extra={"event_id": instance_id, "reason": "attachment_abandoned"})
        del self._cursor.pending[instance_id]
        self._cursor.save()

    def _submit(self, raw: bytes, files: Sequence[IncomingFile], result: PollResult,
                received_at: datetime | None = None) -> str | None:
        """Hand one version to the intake; its outcome (``central_rows_total``), None if refused."""
        try:
            accepted = self._service.submit(raw, self._account, source="central", attachments=files,
                                            received_at=received_at)
        except (BusUnavailable, StorageFull):
            raise  # not kept now: the poll stops before this row and starts again there
        except Refused as exc:
            self._refused(exc.code, str(exc), result)
            return None
        if accepted.kind == "new":
            replaced = parse_submission(raw).deprecated_id is not None
            outcome = "replaced" if replaced else "accepted"
            if replaced:
                result.replaced += 1
            else:
                result.accepted += 1
        elif accepted.kind == "duplicate":
            outcome, result.duplicates = "duplicate", result.duplicates + 1
        else:  # held: an edit whose original the intake has not accepted
            outcome, result.held = "held", result.held + 1
        metrics.CENTRAL_ROWS.labels(form_id=self._form_id, outcome=outcome).inc()
        return outcome

    def _refused(self, code: str, why: str, result: PollResult) -> None:
        result.rejected[code] = result.rejected.get(code, 0) + 1
        metrics.CENTRAL_ROWS.labels(form_id=self._form_id, outcome="rejected").inc()
        log.warning("central submission of %s refused by the intake (%s): %s", self._form_id, code, why)

    def _retract(self, row: dict[str, Any], result: PollResult) -> None:
        # Any accepted version addresses the whole edit chain; try the newest first.
        candidates = [v.instance_id for v in reversed(self._versions(row))] if row["__system"].get("edits") \
            else [row["__id"]]
        for instance_id in candidates:
            try:
                retracted = self._service.retract(instance_id, self._account, REJECTED_CODE, REJECTED_REASON,
                                                  key=_review_key(row))
            except OutOfScope as exc:  # a version outside the pull account's provinces: a dead letter
                self._refused(exc.code, str(exc), result)
                return
            if retracted:
                result.retracted += 1
                metrics.CENTRAL_ROWS.labels(form_id=self._form_id, outcome="retracted").inc()
                return
        result.retract_noop += 1
        metrics.CENTRAL_ROWS.labels(form_id=self._form_id, outcome="retract_noop").inc()

    def _reinstate(self, row: dict[str, Any], result: PollResult) -> None:
        """Not rejected (any more): a chain the intake withdrew counts again; a no-op otherwise."""
        if row["__system"].get("updatedAt") is None:  # never reviewed nor edited: never rejected
            return
        try:
            reinstated = self._service.reinstate(row["__id"], self._account, _review_key(row))
        except OutOfScope as exc:
            self._refused(exc.code, str(exc), result)
            return
        if reinstated:
            result.reinstated += 1
            metrics.CENTRAL_ROWS.labels(form_id=self._form_id, outcome="reinstated").inc()

    # -- HTTP --------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str] | None = None, stream: bool = False) -> requests.Response:
        """``client.get`` on a documented path (pyodk wraps neither the XML nor attachments)."""
        response = self._client.get(path, params=params, stream=stream)
        if response.status_code == 401:
            # Central's session tokens expire (24 h); pyodk logs in again once the header is gone.
            response.close()
            self._client.session.headers.pop("Authorization", None)
            response = self._client.get(path, params=params, stream=stream)
        if response.status_code >= 400:
            with response:
                raise CentralError(f"GET {path} answered {response.status_code}: {response.text[:300]}",
                                   response.status_code)
        return response


class PullLoop:
    """The pollers of one process, polled in turn every ``interval_s`` in one daemon thread until stopped.

    A poll that fails (Central unreachable, the bus down) is in the pollers' state and the log; the
    loop goes on and tries again at the next interval, so the process it runs in keeps serving."""

    def __init__(self, pollers: Sequence[CentralPoller], interval_s: float, project_id: int):
        self.pollers, self.interval_s, self.project_id = list(pollers), interval_s, project_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="central-pull")

    @property
    def central_url(self) -> str:
        return self.pollers[0].state.central_url if self.pollers else ""

    def describe(self) -> str:
        """One line for "Ready": where from, what, how often (the URL only: the password stays in its file)."""
        forms = ", ".join(p.form_id for p in self.pollers)
        return (f"ODK Central pull: {self.central_url} project {self.project_id}, forms {forms}, "
                f"every {self.interval_s:g} s")

    def start(self) -> PullLoop:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for poller in self.pollers:
                if self._stop.is_set():
                    return
                try:
                    poller.poll_once()
                except Exception:  # e.g. its state file could not be written: the next interval tries again
                    log.exception("central pull of %s failed", poller.form_id)
            self._stop.wait(self.interval_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the poll under way (a row in hand is finished, its cursor saved)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


def _received_at(row: dict[str, Any]) -> datetime | None:
    """``__system/submissionDate``, or None if it is not a time (the intake then uses its own)."""
    text = row["__system"].get("submissionDate")
    try:
        return parse_time(text) if isinstance(text, str) else None
    except ValueError:
        log.warning("submission %s: submissionDate %r is not a time", row["__id"], text)
        return None


def _review_key(row: dict[str, Any]) -> str:
    """What names a review decision: the time Central last changed the row (its creation if never)."""
    system = row["__system"]
    return system.get("updatedAt") or system["submissionDate"]


def _server_time(response: requests.Response) -> str:
    """Central's clock (the ``Date`` header, whole seconds, rounded down); ours if it sent none."""
    try:
        return format_time(parsedate_to_datetime(response.headers["Date"]))
    except (KeyError, TypeError, ValueError):
        return format_time(datetime.now(UTC))


def _summary(result: PollResult) -> str:
    counts = Counter({k: v for k, v in asdict(result).items() if isinstance(v, int) and v})
    return ", ".join(f"{k}={v}" for k, v in counts.items()) + (f", rejected={result.rejected}"
                                                              if result.rejected else "")


# ---------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    from prometheus_client import start_http_server
    from pyodk.client import Client

    from services.bootstrap import PullRefused, central_pollers
    from services.config import load_settings

    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m services.intake.central",
                                     description="Pull submissions from ODK Central into the intake.")
    parser.add_argument("--config", default=settings.central_config or None,
                        help="pyodk config file ([central] base_url, username, password, default_project_id); "
                             "default: CENTRAL_CONFIG")
    parser.add_argument("--cache", default=None, help="pyodk token cache file (default: pyodk's)")
    parser.add_argument("--project", type=int, default=settings.central_project_id or None,
                        help="Central project id (default: CENTRAL_PROJECT_ID, else the config's default_project_id)")
    parser.add_argument("--form", action="append", dest="forms",
                        help="form id to pull, repeatable (default: CENTRAL_FORMS)")
    parser.add_argument("--once", action="store_true", help="poll once and exit (non-zero if a poll stopped early)")
    parser.add_argument("--interval", type=float, default=settings.central_poll_interval_s,
                        help="seconds between polls (default: CENTRAL_POLL_INTERVAL_S)")
    parser.add_argument("--page-size", type=int, default=250, help="rows per OData page")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if not args.config:
        parser.error("no pyodk config: pass --config or set CENTRAL_CONFIG")
    forms = args.forms or list(settings.central_forms)
    if not forms:
        parser.error("no form to pull: pass --form or set CENTRAL_FORMS")
    client = Client(config_path=args.config, cache_path=args.cache)
    project_id = args.project or client.project_id
    if project_id is None:
        parser.error("no project: pass --project, set CENTRAL_PROJECT_ID or default_project_id in the config")
    if args.metrics_port:
        start_http_server(args.metrics_port)

    try:
        pull = central_pollers(settings, client, int(project_id), forms, page_size=args.page_size)
    except PullRefused as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        for poller in pull.pollers:
            try:
                version = poller.check_form()
            except (PyODKError, requests.RequestException) as exc:
                message = f"cannot read form {poller.form_id!r} of project {project_id} on ODK Central: {exc}"
                if args.once:
                    print(message, file=sys.stderr)
                    return 2
                # As a service (compose's central-pull): Central may come back; each poll tries again.
                log.warning("%s; polling anyway, every %s s", message, args.interval)
                continue
            log.info("pulling %s (Central version %s) from project %s", poller.form_id, version, project_id)
        while True:
            results = {p.form_id: p.poll_once() for p in pull.pollers}
            if args.once:
                print(json.dumps({form: asdict(r) for form, r in results.items()}, ensure_ascii=False), flush=True)
                return 0 if all(r.complete for r in results.values()) else 1
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        pull.close()


if __name__ == "__main__":
    raise SystemExit(main())
