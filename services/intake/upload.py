"""Reading a submission's multipart body as it arrives, within its limits.

Written here rather than using Starlette's ``request.form()`` because the limits have to hold
for what is actually sent, not for what a header declares: a body sent with
``Transfer-Encoding: chunked`` has no ``Content-Length``. So the bytes are counted as they
arrive and reading stops at ``MAX_SUBMISSION_BYTES``; an attachment stops at
``MAX_ATTACHMENT_BYTES`` and its type is checked from its part headers, before any of its
bytes are kept; attachments go straight to the blob store's ``incoming/`` (never whole into
memory, never to the system's temporary directory), hashed while written. Only the XML part
is held in memory, to be parsed, and it is bounded by the same limit. Every refusal is a
``Refused`` the OpenRosa face answers in its own terms; whatever was staged is deleted.
python-multipart (the parser Starlette uses) does the parsing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import python_multipart
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from services.domain.errors import Reason
from services.intake.blobs import BlobStore, IncomingFile, StagedBlob
from services.intake.refusals import NoSubmissionFile, NotMultipart, UploadRefused, too_large

SUBMISSION_PART = "xml_submission_file"
INCOMPLETE_FIELD = "*isIncomplete*"
# What a field form attaches: photos, audio and video notes, signatures, small documents.
ATTACHMENT_TYPES = frozenset({
    "image/jpeg", "image/png", "image/webp", "audio/mpeg", "audio/mp4", "audio/amr", "audio/ogg", "audio/wav",
    "video/mp4", "video/3gpp", "text/csv", "application/pdf",
})
# Far above what a form sends (Collect splits a large submission into several requests), far
# below what would make the parser's bookkeeping a cost of its own.
MAX_FILES = 100
MAX_FIELDS = 20
MAX_FIELD_BYTES = 1024


@dataclass(frozen=True)
class Limits:
    submission_bytes: int
    attachment_bytes: int

    @property
    def drain_bytes(self) -> int:
        """The largest declared body whose unread rest, once refused, the server reads and drops instead
        of closing the connection under it: a proxy in front (Caddy takes up to MAX_SUBMISSION_BYTES
        plus framing) is still sending it, and a connection closed mid-send turns the 413 into its 502."""
        return 2 * self.submission_bytes


@dataclass
class Upload:
    xml: bytes | None = None
    files: list[IncomingFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    size: int = 0  # bytes received

    def discard(self) -> None:
        """Delete what was staged and nobody took (refused before the intake saw it)."""
        for incoming in self.files:
            incoming.blob.discard()

    @property
    def incomplete(self) -> bool:
        """One part of a split upload (``*isIncomplete*=yes`` on all but the last part)."""
        return self.fields.get(INCOMPLETE_FIELD, "").strip().lower() == "yes"


class _Part:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.name = ""
        self.filename: str | None = None
        self.media_type = ""
        self.data = bytearray()  # the XML part, or a small field
        self.file: IncomingFile | None = None
        self.ignored = False  # an attachment of a refused type


class _Reader:
    """python-multipart's callbacks, building an ``Upload``; file bytes are queued here and written by
    ``flush``, which ``read_upload`` runs in a worker thread."""

    def __init__(self, limits: Limits, blobs: BlobStore):
        self.limits, self.blobs, self.upload = limits, blobs, Upload()
        self.part = _Part()
        self._header_name = self._header_value = b""
        self.pending: list[tuple[StagedBlob, bytes]] = []
        self._files = self._fields = 0
        self.refused_type: UploadRefused | None = None

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        part = self.part
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:  # a label only, never a path; Vietnamese in NFC like every other text
            part.filename = unicodedata.normalize("NFC", options[b"filename"].decode("utf-8", "replace"))
        part.media_type = parse_options_header(part.headers.get(b"content-type", b""))[0].decode("latin-1")
        if part.name == SUBMISSION_PART:
            return
        if part.filename is None:
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise self._too_many(f"quá {MAX_FIELDS} trường", f"more than {MAX_FIELDS} fields")
            return
        self._files += 1
        if self._files > MAX_FILES:
            raise self._too_many(f"quá {MAX_FILES} tệp", f"more than {MAX_FILES} files")
        if part.media_type not in ATTACHMENT_TYPES:
            # Its bytes are dropped as they come; the refusal waits for the end of the body, where a
            # missing XML part, the more basic fault, is told first.
            part.ignored = True
            self.refused_type = self.refused_type or UploadRefused(415, Reason(
                "attachment_type", f"Loại tệp đính kèm '{part.media_type}' không được nhận ({part.filename}).",
                f"Attachment type '{part.media_type}' is not accepted ({part.filename})."))
            return
        part.file = IncomingFile(part.filename or part.name, part.media_type, self.blobs.stage())
        self.upload.files.append(part.file)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part, chunk = self.part, data[start:end]
        if part.ignored:
            return
        if part.file is None:
            limit = self.limits.submission_bytes if part.name == SUBMISSION_PART else MAX_FIELD_BYTES
            if len(part.data) + len(chunk) > limit:
                what = ("Phần XML", "The XML part") if part.name == SUBMISSION_PART else \
                    (f"Trường {part.name}", f"Field {part.name}")
                raise UploadRefused(413, too_large(*what, limit), self._xml())
            part.data.extend(chunk)
            return
        written = part.file.blob.size + sum(len(c) for b, c in self.pending if b is part.file.blob)
        if written + len(chunk) > self.limits.attachment_bytes:
            raise UploadRefused(413, too_large(f"Tệp {part.file.name}", f"Attachment {part.file.name}",
                                               self.limits.attachment_bytes), self._xml())
        self.pending.append((part.file.blob, chunk))

    def on_part_end(self) -> None:
        part = self.part
        if part.name == SUBMISSION_PART:
            self.upload.xml = bytes(part.data)
        elif part.file is None:
            self.upload.fields[part.name] = part.data.decode("utf-8", "replace")

    def _xml(self) -> bytes:
        """The XML part if it came first (Collect sends it first), for the rejection's record."""
        return self.upload.xml or b""

    def _too_many(self, what_vi: str, what_en: str) -> UploadRefused:
        return UploadRefused(400, Reason("too_many_parts", f"Bản gửi có {what_vi}.",
                                         f"The submission has {what_en}."), self._xml())

    def flush(self) -> None:
        """Write the queued file bytes (in a worker thread: disk writes stay off the event loop)."""
        pending, self.pending = self.pending, []
        for blob, chunk in pending:
            blob.write(chunk)


async def read_submission(headers: Mapping[str, str], stream: AsyncIterator[bytes], limits: Limits,
                          blobs: BlobStore) -> Upload:
    """A submission's body, read within ``limits``, with its XML part (``xml`` is set); else raise
    NotMultipart, UploadRefused, NoSubmissionFile, StorageFull (or OSError), nothing kept."""
    content_type = headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise NotMultipart()
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.submission_bytes:  # said so up front: not read at all
        raise UploadRefused(413, too_large("Bản gửi", "Submission", limits.submission_bytes, int(declared)))
    upload = await read_upload(stream, content_type, limits, blobs)
    if upload.xml is None:
        upload.discard()
        raise NoSubmissionFile()
    return upload


async def read_upload(stream: AsyncIterator[bytes], content_type: str, limits: Limits,
                      blobs: BlobStore) -> Upload:
    """Read a multipart submission from ``stream``; raise UploadRefused, StorageFull or OSError.

    On any exception every staged file is deleted; on success the caller owns them (``IncomingFile``)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadRefused(400, Reason("multipart_malformed", "Phần multipart lỗi: thiếu boundary.",
                                        "Malformed multipart body: no boundary."))
    reader = _Reader(limits, blobs)
    parser = python_multipart.MultipartParser(boundary, {
        "on_part_begin": reader.on_part_begin, "on_header_field": reader.on_header_field,
        "on_header_value": reader.on_header_value, "on_header_end": reader.on_header_end,
        "on_headers_finished": reader.on_headers_finished, "on_part_data": reader.on_part_data,
        "on_part_end": reader.on_part_end})
    try:
        async for chunk in stream:
            reader.upload.size += len(chunk)
            if reader.upload.size > limits.submission_bytes:  # counted, not declared: chunked bodies too
                raise UploadRefused(413, too_large("Bản gửi", "Submission", limits.submission_bytes),
                                    reader.upload.xml or b"")
            parser.write(chunk)
            if reader.pending:
                await run_in_threadpool(reader.flush)
        parser.finalize()
        if reader.refused_type is not None and reader.upload.xml is not None:
            raise UploadRefused(reader.refused_type.status, reader.refused_type.reasons[0], reader.upload.xml)
        if reader.pending or reader.upload.files:
            await run_in_threadpool(_finish, reader)
    except FormParserError as exc:
        reader.upload.discard()
        raise UploadRefused(400, Reason("multipart_malformed", f"Phần multipart lỗi: {exc}",
                                        f"Malformed multipart body: {exc}"), reader.upload.xml or b"") from exc
    except BaseException:
        reader.upload.discard()
        raise
    return reader.upload


def _finish(reader: _Reader) -> None:
    reader.flush()
    for incoming in reader.upload.files:
        incoming.blob.finish()
