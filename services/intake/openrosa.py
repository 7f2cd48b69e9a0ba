"""The OpenRosa face of the intake, as ODK Collect speaks it.

- Every request must carry ``X-OpenRosa-Version: 1.0`` (else 400); every response carries it.
- With accounts configured, every request needs Digest authentication (Basic over HTTPS only).
- ``GET /formList``: the OpenRosa xforms list, each form's md5 hash and URLs.
- ``GET /forms/{id}.xml``, ``GET /forms/{id}/manifest``, ``GET /forms/{id}/media/{file}``.
- ``HEAD /submission`` → 204 with ``X-OpenRosa-Accept-Content-Length``.
- ``POST /submission`` (multipart, part ``xml_submission_file``, attachments by file name,
  ``*isIncomplete*=yes`` on all but the last part of a split upload) → 201 with an
  ``OpenRosaResponse`` only once the event is durable; every error carries an
  ``OpenRosaResponse`` message a field worker can read (Vietnamese / English); a full disk
  (``StorageFull``) is 507 Insufficient Storage, with nothing recorded.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from services import metrics
from services.bus.base import PublishFailed
from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import AttachmentRef
from services.intake.accounts import ANONYMOUS, Account
from services.intake.catalogue import FormCatalogue
from services.intake.digest import DigestAuthenticator
from services.intake.handler import IntakeService, OutOfScope, SubmissionConflict
from services.intake.ledger import Ledger, StorageFull

log = logging.getLogger(__name__)

OPENROSA_HEADERS = {"X-OpenRosa-Version": "1.0"}
XML = "text/xml; charset=utf-8"
SUBMISSION_PART = "xml_submission_file"
INCOMPLETE_FIELD = "*isIncomplete*"
# What a field form attaches: photos, audio and video notes, signatures, small documents.
_INSTANCE_ID = re.compile(rb"<(?:\w+:)?instanceID>([^<]{1,200})</(?:\w+:)?instanceID>")
ATTACHMENT_TYPES = frozenset({
    "image/jpeg", "image/png", "image/webp", "audio/mpeg", "audio/mp4", "audio/amr", "audio/ogg", "audio/wav",
    "video/mp4", "video/3gpp", "text/csv", "application/pdf",
})


@dataclass(frozen=True)
class Limits:
    submission_bytes: int
    attachment_bytes: int


def openrosa_response(status: int, text: str, nature: str, headers: dict[str, str] | None = None) -> Response:
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<OpenRosaResponse xmlns="http://openrosa.org/http/response">'
            f'<message nature="{nature}">{escape(text)}</message></OpenRosaResponse>')
    return Response(body, status_code=status, media_type=XML, headers={**OPENROSA_HEADERS, **(headers or {})})


def _refuse(status: int, reasons: list[Reason], form_id: str, headers: dict[str, str] | None = None) -> Response:
    metrics.SUBMISSIONS_REJECTED.labels(form_id=form_id or "unknown", status=str(status), reason=reasons[0].code).inc()
    return openrosa_response(status, " | ".join(r.text() for r in reasons), "submit_error", headers)


def openrosa_router(catalogue: FormCatalogue, service: IntakeService, ledger: Ledger, limits: Limits,
                    authenticator: DigestAuthenticator | None = None) -> APIRouter:
    router = APIRouter(tags=["OpenRosa (ODK Collect)"])

    def refuse(status: int, reasons: list[Reason], raw: bytes, account: Account,
               headers: dict[str, str] | None = None) -> Response:
        """Refuse a submission and record why (for operators), without letting the record fail it."""
        form_id = form_id_hint(raw)
        found = _INSTANCE_ID.search(raw[:20000])
        instance_id = found.group(1).decode("utf-8", "replace") if found else ""
        service.record_rejection(status, reasons, form_id, instance_id, account)
        return _refuse(status, reasons, form_id, headers)

    def form_id_hint(raw: bytes) -> str:
        """Form id for metric labels: only ids we serve, so a client cannot grow the label set."""
        head = raw[:1000].decode("utf-8", "replace")
        return next((f for f in catalogue.forms if f' id="{f}"' in head), "unknown")

    def guard(request: Request) -> Account | Response:
        """The OpenRosa header, then the account (Digest; Basic over HTTPS only)."""
        if request.headers.get("X-OpenRosa-Version") != "1.0":
            return _refuse(400, [Reason(
                "openrosa_version_missing", "Thiếu tiêu đề X-OpenRosa-Version: 1.0; hãy dùng ODK Collect.",
                "Missing header X-OpenRosa-Version: 1.0; use ODK Collect or an OpenRosa client.")], "")
        if authenticator is None:
            return ANONYMOUS
        https = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        uri = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        result = authenticator.authenticate(request.method, request.headers.get("authorization"), https, uri)
        if result.account is not None:
            return result.account
        return _refuse(401, [Reason(
            "unauthorized", "Cần đăng nhập bằng tài khoản của đội (tên và mật khẩu trong cài đặt máy chủ).",
            "Sign in with your team account (user name and password in the server settings).")], "",
            {"WWW-Authenticate": authenticator.challenge(stale=result.stale)})

    @router.get("/formList")
    def form_list(request: Request) -> Response:
        if isinstance(who := guard(request), Response):
            return who
        items = []
        for form in catalogue.forms.values():
            base = str(request.url_for("form_xml", form_id=form.form_id))
            manifest = (f"<manifestUrl>{escape(str(request.url_for('form_manifest', form_id=form.form_id)))}"
                        "</manifestUrl>") if form.media else ""
            items.append(
                f"<xform><formID>{escape(form.form_id)}</formID><name>{escape(form.title)}</name>"
                f"<version>{escape(form.version)}</version><hash>md5:{form.md5}</hash>"
                f"<downloadUrl>{escape(base)}</downloadUrl>{manifest}</xform>")
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<xforms xmlns="http://openrosa.org/xforms/xformsList">{"".join(items)}</xforms>')
        return Response(body, media_type=XML, headers=OPENROSA_HEADERS)

    def no_form(form_id: str) -> Response:
        return openrosa_response(404, f"Không có biểu mẫu {form_id} / No form {form_id}", "error")

    @router.get("/forms/{form_id}.xml", name="form_xml")
    def form_xml(form_id: str, request: Request) -> Response:
        if isinstance(who := guard(request), Response):
            return who
        form = catalogue.forms.get(form_id)
        return Response(form.xml, media_type=XML, headers=OPENROSA_HEADERS) if form else no_form(form_id)

    @router.get("/forms/{form_id}/manifest", name="form_manifest")
    def form_manifest(form_id: str, request: Request) -> Response:
        if isinstance(who := guard(request), Response):
            return who
        form = catalogue.forms.get(form_id)
        if form is None:
            return no_form(form_id)
        files = "".join(
            f"<mediaFile><filename>{escape(name)}</filename><hash>md5:{hashlib.md5(data).hexdigest()}</hash>"
            f"<downloadUrl>{escape(str(request.url_for('form_media', form_id=form_id, filename=name)))}"
            "</downloadUrl></mediaFile>"
            for name, data in sorted(form.media.items()))
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<manifest xmlns="http://openrosa.org/xforms/xformsManifest">{files}</manifest>')
        return Response(body, media_type=XML, headers=OPENROSA_HEADERS)

    @router.get("/forms/{form_id}/media/{filename}", name="form_media")
    def form_media(form_id: str, filename: str, request: Request) -> Response:
        if isinstance(who := guard(request), Response):
            return who
        form = catalogue.forms.get(form_id)
        data = form.media.get(filename) if form else None
        if data is None:
            return openrosa_response(404, f"Không có tệp {filename} / No media file {filename}", "error")
        return Response(data, media_type="text/csv; charset=utf-8", headers=OPENROSA_HEADERS)

    @router.head("/submission")
    def submission_head(request: Request) -> Response:
        if isinstance(who := guard(request), Response):
            return Response(status_code=who.status_code, headers=dict(who.headers))
        return Response(status_code=204, headers={
            **OPENROSA_HEADERS, "X-OpenRosa-Accept-Content-Length": str(limits.submission_bytes)})

    @router.post("/submission")
    async def submission_post(request: Request) -> Response:
        if isinstance(who := guard(request), Response):
            return who
        account = who
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return refuse(415, [Reason(
                "not_multipart", "Bản gửi phải là multipart/form-data với phần xml_submission_file.",
                "A submission must be multipart/form-data with an xml_submission_file part.")], b"", account)
        declared = int(request.headers.get("content-length") or 0)
        if declared > limits.submission_bytes:
            return refuse(413, [_too_large("Bản gửi", "Submission", declared, limits.submission_bytes)], b"", account)
        try:
            form = await request.form(max_part_size=limits.submission_bytes)
        except MultiPartException as exc:
            return refuse(400, [Reason("multipart_malformed", f"Phần multipart lỗi: {exc.message}",
                                       f"Malformed multipart body: {exc.message}")], b"", account)
        part = form.get(SUBMISSION_PART)
        if not isinstance(part, UploadFile):
            return refuse(400, [Reason(
                "no_submission_file", f"Thiếu phần '{SUBMISSION_PART}' trong bản gửi.",
                f"The multipart body has no '{SUBMISSION_PART}' file part.")], b"", account)
        raw = await part.read()
        form_id = form_id_hint(raw)
        metrics.SUBMISSION_BYTES.labels(form_id=form_id).observe(declared or len(raw))

        attachments: list[AttachmentRef] = []
        for key, value in form.multi_items():
            if key == SUBMISSION_PART or not isinstance(value, UploadFile):
                continue
            media_type = (value.content_type or "").split(";")[0].strip().lower()
            if media_type not in ATTACHMENT_TYPES:
                return refuse(415, [Reason(
                    "attachment_type", f"Loại tệp đính kèm '{media_type}' không được nhận ({value.filename}).",
                    f"Attachment type '{media_type}' is not accepted ({value.filename}).")], raw, account)
            data = await value.read()
            if len(data) > limits.attachment_bytes:
                return refuse(413, [_too_large(f"Tệp {value.filename}", f"Attachment {value.filename}",
                                               len(data), limits.attachment_bytes)], raw, account)
            # Stored under its digest; the phone's file name is kept as a label only, never as a path.
            try:
                digest = await run_in_threadpool(ledger.keep_raw, data)
            except StorageFull as exc:
                return _storage_full(exc, form_id)
            attachments.append(AttachmentRef(name=value.filename or key, sha256=digest, size=len(data),
                                             media_type=media_type))

        incomplete = str(form.get(INCOMPLETE_FIELD, "")).lower() == "yes"
        try:
            if incomplete:
                accepted = await run_in_threadpool(service.submit_part, raw, account, attachments)
            else:
                accepted = await run_in_threadpool(service.submit, raw, account, "openrosa", attachments)
        except SubmissionRejected as exc:
            return refuse(400, exc.reasons, raw, account)
        except SubmissionConflict as exc:
            return refuse(409, [exc.reason], raw, account)
        except OutOfScope as exc:
            return refuse(403, [exc.reason], raw, account)
        except StorageFull as exc:
            return _storage_full(exc, form_id)
        except PublishFailed as exc:
            log.error("publish failed: %s", exc)
            return _refuse(503, [Reason(
                "bus_unavailable", "Máy chủ tạm thời không lưu được bản gửi; Collect sẽ gửi lại sau.",
                "The server cannot store submissions right now; Collect will retry.")], form_id,
                {"Retry-After": "30"})
        metrics.SUBMISSIONS_ACCEPTED.labels(form_id=accepted.form_id, kind=accepted.kind).inc()
        metrics.ATTACHMENTS.labels(form_id=accepted.form_id).inc(len(attachments))
        return openrosa_response(201, _ACCEPTED_TEXT[accepted.kind], "submit_success")

    return router


_ACCEPTED_TEXT = {
    "new": "Đã nhận bản gửi. / Submission received.",
    "duplicate": "Bản gửi này đã được nhận trước đó. / This submission was already received.",
    "held": "Đã nhận bản sửa; sẽ áp dụng khi bản gốc tới. / Edit received; it applies once the original arrives.",
    "partial": "Đã nhận một phần; hãy gửi tiếp phần còn lại. / Part received; send the rest.",
}


def _storage_full(exc: StorageFull, form_id: str) -> Response:
    """507: the disk is full. Nothing was recorded or published (like 503), so Collect keeps the
    submission and a later resend, once space is freed, is a first submission."""
    log.error("storage full: %s", exc)
    return _refuse(507, [Reason(
        "storage_full", "Máy chủ hết dung lượng lưu trữ; bản gửi vẫn ở trên máy, hãy gửi lại sau.",
        "The server is out of storage space; the submission stays on the phone, send it again later.")], form_id)


def _too_large(what_vi: str, what_en: str, size: int, limit: int) -> Reason:
    return Reason("too_large", f"{what_vi} quá lớn ({size} byte, tối đa {limit}).",
                  f"{what_en} too large ({size} bytes, at most {limit}).")
