"""The OpenRosa face of the intake, as ODK Collect speaks it.

- ``GET /formList``: the OpenRosa xforms list, each form's md5 hash and URLs.
- ``GET /forms/{id}.xml``, ``GET /forms/{id}/manifest``, ``GET /forms/{id}/media/{file}``.
- ``HEAD /submission`` → 204 with ``X-OpenRosa-Accept-Content-Length``.
- ``POST /submission`` (multipart, part ``xml_submission_file``) → 201 with an
  ``OpenRosaResponse`` only once the event is durable; errors carry an ``OpenRosaResponse``
  message a field worker can read (Vietnamese / English).
"""

from __future__ import annotations

import hashlib
import logging
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from services import metrics
from services.bus.base import PublishFailed
from services.domain.errors import Reason, SubmissionRejected
from services.intake.catalogue import FormCatalogue
from services.intake.handler import IntakeService, SubmissionConflict

log = logging.getLogger(__name__)

OPENROSA_HEADERS = {"X-OpenRosa-Version": "1.0"}
XML = "text/xml; charset=utf-8"
SUBMISSION_PART = "xml_submission_file"


def openrosa_response(status: int, text: str, nature: str, headers: dict[str, str] | None = None) -> Response:
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<OpenRosaResponse xmlns="http://openrosa.org/http/response">'
            f'<message nature="{nature}">{escape(text)}</message></OpenRosaResponse>')
    return Response(body, status_code=status, media_type=XML, headers={**OPENROSA_HEADERS, **(headers or {})})


def _rejection(status: int, reasons: list[Reason], form_id: str) -> Response:
    metrics.SUBMISSIONS_REJECTED.labels(form_id=form_id or "unknown", reason=reasons[0].code).inc()
    return openrosa_response(status, " | ".join(r.text() for r in reasons), "submit_error")


def openrosa_router(catalogue: FormCatalogue, service: IntakeService, max_submission_bytes: int) -> APIRouter:
    router = APIRouter(tags=["OpenRosa (ODK Collect)"])

    def _form_id_hint(raw: bytes) -> str:
        """Form id for metric labels: only ids we serve, so a client cannot grow the label set."""
        head = raw[:1000].decode("utf-8", "replace")
        return next((f for f in catalogue.forms if f' id="{f}"' in head), "unknown")

    @router.get("/formList")
    def form_list(request: Request) -> Response:
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

    def _form(form_id: str):
        return catalogue.forms.get(form_id)

    @router.get("/forms/{form_id}.xml", name="form_xml")
    def form_xml(form_id: str) -> Response:
        form = _form(form_id)
        if form is None:
            return openrosa_response(404, f"Không có biểu mẫu {form_id} / No form {form_id}", "error")
        return Response(form.xml, media_type=XML, headers=OPENROSA_HEADERS)

    @router.get("/forms/{form_id}/manifest", name="form_manifest")
    def form_manifest(form_id: str, request: Request) -> Response:
        form = _form(form_id)
        if form is None:
            return openrosa_response(404, f"Không có biểu mẫu {form_id} / No form {form_id}", "error")
        files = "".join(
            f"<mediaFile><filename>{escape(name)}</filename><hash>md5:{_md5(data)}</hash>"
            f"<downloadUrl>{escape(str(request.url_for('form_media', form_id=form_id, filename=name)))}"
            "</downloadUrl></mediaFile>"
            for name, data in sorted(form.media.items()))
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<manifest xmlns="http://openrosa.org/xforms/xformsManifest">{files}</manifest>')
        return Response(body, media_type=XML, headers=OPENROSA_HEADERS)

    @router.get("/forms/{form_id}/media/{filename}", name="form_media")
    def form_media(form_id: str, filename: str) -> Response:
        form = _form(form_id)
        data = form.media.get(filename) if form else None
        if data is None:
            return openrosa_response(404, f"Không có tệp {filename} / No media file {filename}", "error")
        return Response(data, media_type="text/csv; charset=utf-8", headers=OPENROSA_HEADERS)

    @router.head("/submission")
    def submission_head() -> Response:
        return Response(status_code=204, headers={
            **OPENROSA_HEADERS, "X-OpenRosa-Accept-Content-Length": str(max_submission_bytes)})

    @router.post("/submission")
    async def submission_post(request: Request) -> Response:
        declared = int(request.headers.get("content-length") or 0)
        if declared > max_submission_bytes:
            return _rejection(413, [Reason(
                "too_large", f"Bản gửi quá lớn ({declared} byte, tối đa {max_submission_bytes}).",
                f"Submission too large ({declared} bytes, at most {max_submission_bytes}).")], "")
        form = await request.form(max_part_size=max_submission_bytes)
        part = form.get(SUBMISSION_PART)
        if part is None or isinstance(part, str):
            return _rejection(400, [Reason(
                "no_submission_file", f"Thiếu phần '{SUBMISSION_PART}' trong bản gửi.",
                f"The multipart body has no '{SUBMISSION_PART}' file part.")], "")
        raw = await part.read()
        try:
            accepted = await run_in_threadpool(service.submit, raw)
        except SubmissionRejected as exc:
            return _rejection(400, exc.reasons, _form_id_hint(raw))
        except SubmissionConflict as exc:
            return _rejection(409, [exc.reason], _form_id_hint(raw))
        except PublishFailed as exc:
            log.error("publish failed: %s", exc)
            metrics.SUBMISSIONS_REJECTED.labels(form_id=_form_id_hint(raw), reason="bus_unavailable").inc()
            return openrosa_response(
                503, "Máy chủ tạm thời không lưu được bản gửi; Collect sẽ gửi lại sau. / "
                     "The server cannot store submissions right now; Collect will retry.",
                "submit_error", {"Retry-After": "30"})
        metrics.SUBMISSIONS_ACCEPTED.labels(form_id=accepted.form_id, kind=accepted.kind).inc()
        text = ("Đã nhận bản gửi. / Submission received." if accepted.kind == "new"
                else "Bản gửi này đã được nhận trước đó. / This submission was already received.")
        return openrosa_response(201, text, "submit_success")

    return router


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
