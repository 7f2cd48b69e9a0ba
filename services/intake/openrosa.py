"""The OpenRosa face of the intake, as ODK Collect speaks it.

- Every request must carry ``X-OpenRosa-Version: 1.0`` (else 400); every response carries it.
- With accounts configured, every request needs Digest authentication (Basic over HTTPS only);
  wrong credentials are braked per account and per address (429 with ``Retry-After``).
- ``GET /formList``: the OpenRosa xforms list, each form's md5 hash and URLs.
- ``GET /forms/{id}.xml``, ``GET /forms/{id}/manifest``, ``GET /forms/{id}/media/{file}``: the
  manifest's md5 of each media file is of the file as served now (``libraries.csv`` follows the
  registry form, ``catalogue.py``), which is how Collect learns a form's media changed.
- ``HEAD /submission`` → 204 with ``X-OpenRosa-Accept-Content-Length``.
- ``POST /submission`` (multipart, part ``xml_submission_file``, attachments by file name,
  ``*isIncomplete*=yes`` on all but the last part of a split upload) → 201 with an
  ``OpenRosaResponse`` only once the event is durable. Every refusal (``Refused``: the body's
  limits, the submission's rules, a full disk) is answered here, in one place, with an
  ``OpenRosaResponse`` message a field worker can read (Vietnamese / English).

Nothing that blocks runs on the event loop: the body is read as it arrives (``upload.py``),
files are written, and submissions and refusals recorded, in worker threads.
"""

from __future__ import annotations

import hashlib
import logging
import re
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from services import metrics
from services.domain.errors import Refused
from services.intake.accounts import ANONYMOUS, Account
from services.intake.catalogue import FormCatalogue
from services.intake.digest import DigestAuthenticator
from services.intake.ledger import Ledger
from services.intake.refusals import OpenRosaVersionMissing, TooManyFailures, Unauthorized, UploadRefused
from services.intake.service import IntakeService
from services.intake.upload import Limits, read_submission
from services.login_throttle import LoginThrottle

log = logging.getLogger(__name__)

OPENROSA_HEADERS = {"X-OpenRosa-Version": "1.0"}
XML = "text/xml; charset=utf-8"
_INSTANCE_ID = re.compile(rb"<(?:\w+:)?instanceID>([^<]{1,200})</(?:\w+:)?instanceID>")


def openrosa_response(status: int, text: str, nature: str, headers: dict[str, str] | None = None) -> Response:
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<OpenRosaResponse xmlns="http://openrosa.org/http/response">'
            f'<message nature="{nature}">{escape(text)}</message></OpenRosaResponse>')
    return Response(body, status_code=status, media_type=XML, headers={**OPENROSA_HEADERS, **(headers or {})})


def refusal_response(refused: Refused, form_id: str, headers: dict[str, str] | None = None) -> Response:
    """Any refusal as Collect reads it (the one place ``Refused`` becomes OpenRosa): the status, the
    reasons in both languages, when to retry; counted by form, status and reason."""
    metrics.SUBMISSIONS_REJECTED.labels(form_id=form_id or "unknown", status=str(refused.status),
                                        reason=refused.code).inc()
    extra = dict(headers or {})
    if refused.retry_after is not None:
        extra["Retry-After"] = str(refused.retry_after)
    return openrosa_response(refused.status, " | ".join(r.text() for r in refused.reasons), "submit_error", extra)


def openrosa_router(catalogue: FormCatalogue, service: IntakeService, ledger: Ledger, limits: Limits,
                    authenticator: DigestAuthenticator | None = None,
                    throttle: LoginThrottle | None = None) -> APIRouter:
    router = APIRouter(tags=["OpenRosa (ODK Collect)"])
    throttle = throttle or LoginThrottle()

    async def refuse(refused: Refused, raw: bytes, account: Account, declared: str = "") -> Response:
        """Answer a refused submission; one refused for what it is (4xx) is also recorded for operators,
        off the event loop (recording commits to the log), without letting the record change the
        answer. The rest of a body refused before its end is left to uvicorn to read and drop when its
        declared length is within ``limits.drain_bytes`` (a proxy sending it then gets the 413, not a
        reset); otherwise (larger, or chunked: no bound) ``Connection: close``."""
        headers = None
        if isinstance(refused, UploadRefused):
            raw = refused.raw
            if not (declared.isdigit() and len(declared) <= 15 and int(declared) <= limits.drain_bytes):
                headers = {"Connection": "close"}
        form_id = form_id_hint(raw)
        if refused.status >= 500:
            log.error("submission refused: %s", refused)
        else:
            found = _INSTANCE_ID.search(raw[:20000])
            instance_id = found.group(1).decode("utf-8", "replace") if found else ""
            await run_in_threadpool(service.record_rejection, refused.status, refused.reasons, form_id,
                                    instance_id, account)
        return refusal_response(refused, form_id, headers)

    def form_id_hint(raw: bytes) -> str:
        """Form id for metric labels: only ids we serve, so a client cannot grow the label set."""
        head = raw[:1000].decode("utf-8", "replace")
        return next((f for f in catalogue.forms if f' id="{f}"' in head), "unknown")

    def guard(request: Request) -> Account | Response:
        """The OpenRosa header, then the account (Digest; Basic over HTTPS only), braked on guessing."""
        if request.headers.get("X-OpenRosa-Version") != "1.0":
            return refusal_response(OpenRosaVersionMissing(), "")
        if authenticator is None:
            return ANONYMOUS
        address = request.client.host if request.client else "unknown"
        header = request.headers.get("authorization")
        if header and (wait := throttle.retry_after(address, authenticator.claimed_username(header))):
            return refusal_response(TooManyFailures(wait), "")
        # The request's own scheme: X-Forwarded-Proto counts only from TRUSTED_PROXIES (services/web.py).
        https = request.url.scheme == "https"
        uri = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        result = authenticator.authenticate(request.method, header, https, uri)
        if result.account is not None:
            throttle.succeeded(result.account.username)
            return result.account
        if result.failed:
            throttle.failed("intake", result.method, address, result.username or None)
        return refusal_response(Unauthorized(), "", {"WWW-Authenticate": authenticator.challenge(stale=result.stale)})

    @router.get("/formList")
    def form_list(request: Request) -> Response:
        if isinstance(who := guard(request), Response):
            return who
        items = []
        for form in catalogue.forms.values():
            base = str(request.url_for("form_xml", form_id=form.form_id))
            manifest = (f"<manifestUrl>{escape(str(request.url_for('form_manifest', form_id=form.form_id)))}"
                        "</manifestUrl>") if form.media_names else ""
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
            for name, data in sorted(catalogue.media(form).items()))
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<manifest xmlns="http://openrosa.org/xforms/xformsManifest">{files}</manifest>')
        return Response(body, media_type=XML, headers=OPENROSA_HEADERS)

    @router.get("/forms/{form_id}/media/{filename}", name="form_media")
    def form_media(form_id: str, filename: str, request: Request) -> Response:
        if isinstance(who := guard(request), Response):
            return who
        form = catalogue.forms.get(form_id)
        data = catalogue.media(form).get(filename) if form else None
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
        # Signing in may wait on the shared ledger (Digest nonce counts in PostgreSQL): off the event
        # loop, which every other request of this replica shares.
        checked = guard(request) if authenticator is None else await run_in_threadpool(guard, request)
        if isinstance(who := checked, Response):
            return who
        xml = b""
        try:
            upload = await read_submission(request.headers, request.stream(), limits, ledger.blobs)
            xml = upload.xml or b""
            metrics.SUBMISSION_BYTES.labels(form_id=form_id_hint(xml)).observe(upload.size)
            accepted = await run_in_threadpool(service.submit, xml, who, "openrosa", upload.files,
                                               incomplete=upload.incomplete)
        except Refused as refused:
            return await refuse(refused, xml, who, request.headers.get("content-length", ""))
        metrics.SUBMISSIONS_ACCEPTED.labels(form_id=accepted.form_id, kind=accepted.kind).inc()
        metrics.ATTACHMENTS.labels(form_id=accepted.form_id).inc(len(upload.files))
        return openrosa_response(201, _ACCEPTED_TEXT[accepted.kind], "submit_success")

    return router


_ACCEPTED_TEXT = {
    "new": "Đã nhận bản gửi. / Submission received.",
    "duplicate": "Bản gửi này đã được nhận trước đó. / This submission was already received.",
    "held": "Đã nhận bản sửa; sẽ áp dụng khi bản gốc tới. / Edit received; it applies once the original arrives.",
    "partial": "Đã nhận một phần; hãy gửi tiếp phần còn lại. / Part received; send the rest.",
}
