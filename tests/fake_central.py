"""A local stand-in for ODK Central's API, answering as Central's documentation says it does.

No ODK Central can run in CI (it needs PostgreSQL, Enketo, pyxform-http…), so the Central pull
is tested against this FastAPI app instead. Each response shape below was taken from Central's
API documentation (https://docs.getodk.org/central-api/, source: getodk/central-backend
``docs/api.yaml``, published as getodk/docs ``docs/central-api-*.rst``) and, where the docs are
silent, from central-backend's own code and integration tests:

- ``POST /v1/sessions`` → ``{createdAt, expiresAt, token}``; bad credentials → 401 with problem
  code 401.2. "Authentication › Session Authentication › Logging in".
- ``GET /v1/users/current`` → the User (pyodk calls it to check a cached token).
  "Accounts and Users › Getting authenticated User details".
- ``GET /v1/projects/{p}/forms/{f}`` → Form metadata (projectId, xmlFormId, name, version, hash,
  state, createdAt, updatedAt, publishedAt, enketoId, keyId). "Forms › Getting Form Details".
- ``GET /v1/projects/{p}/forms/{f}.svc`` → the OData Service Document. "OData Endpoints ›
  OData Form Service › Service Document".
- ``GET /v1/projects/{p}/forms/{f}.svc/Submissions`` → the OData Data Document
  ``{"value": [...], "@odata.context": ..., "@odata.nextLink"?: ..., "@odata.count"?: n}``.
  "OData Endpoints › Data Document". Each row has ``__id`` (the instanceID the submission was
  *first* sent with) and ``__system`` {submissionDate, updatedAt, deletedAt, submitterId
  (a string), submitterName, attachmentsPresent, attachmentsExpected, status, reviewState,
  deviceId, edits, formVersion} — the exact set and types of central-backend
  ``lib/data/odata.js`` and ``test/integration/api/odata.js``. ``updatedAt`` is **null** until
  the submission is edited or reviewed ("Submissions › Listing all Submissions on a Form":
  "null when the Submission is first created"). Query options:
  - ``$filter`` on ``__system/submissionDate`` (the submission's ``createdAt``),
    ``__system/updatedAt``, ``__system/submitterId``, ``__system/reviewState``,
    ``__system/deletedAt`` (also under ``$root/Submissions/``), operators lt le eq ne gt ge,
    and/or/not, parentheses; any other field (``__system/createdAt`` included) → 501 with
    problem code 501.5 "The given OData filter expression references fields not supported by
    this server" (central-backend ``lib/data/submission.js`` ``filterableFields``,
    ``lib/util/problem.js``). Timestamps are kept to the microsecond, as PostgreSQL keeps
    them, and written to the millisecond, as JavaScript's ``toISOString`` writes them, so
    ``gt`` on a written value still matches the row it came from (central-backend issue 358);
    a comparison with null is false (SQL), ``eq null`` is ``IS NULL``. Deleted submissions
    are left out unless the filter names ``deletedAt``.
  - ``$orderby`` (Central v2024.1+): the same fields, ``asc`` (nulls first) / ``desc`` (nulls
    last), then the row id in the first clause's direction; without it rows come
    ``createdAt desc, id desc`` (``lib/model/query/submissions.js``).
  - ``$top``, ``$skip``, ``$count``; ``@odata.nextLink`` carries a ``$skiptoken``
    (``'01' + base64(JSON)``, ``lib/util/db.js``) when more rows remain; ``$orderby`` with
    ``$skiptoken`` → 501.1 "using $orderby and $skiptoken together". Central does not document
    the next link of an ``$orderby`` request; here it carries ``$skip`` (the pre-2023.4 form).
  - ``$select`` (``__id``, ``__system``, ``__system/…``, top-level fields), ``$expand=*`` and
    ``$wkt`` are accepted (the visit log has no repeats nor geo fields).
- ``GET …/submissions/{instanceId}.xml`` → the *current* version's XML (an edit has a new
  ``meta/instanceID`` and ``meta/deprecatedID``). "Submissions › Retrieving Submission XML".
- ``GET …/submissions/{instanceId}/versions`` → every version's metadata, newest first; ``…/
  versions/{versionId}.xml`` and ``…/versions/{versionId}/attachments[/{filename}]``.
  "Submissions › Submission Versions".
- ``GET …/submissions/{instanceId}/attachments`` → ``[{"name", "exists"}]``; ``…/attachments/
  {filename}`` → the bytes with their MIME type and ``ETag: "<md5>"`` (``lib/util/blob.js``
  ``withEtag(blob.md5)``). "Submissions › Attachments". An attachment the XML names but the phone
  has not uploaded is listed ``exists: false`` and answers 404; the phone (or ``POST …/attachments/
  {filename}``) may upload it later, which changes neither ``updatedAt`` nor anything else the
  OData feed shows but ``attachmentsPresent``. A body may come without ``Content-Length``
  (``Transfer-Encoding: chunked``), as a proxy that compresses or re-chunks responses sends it.
- Errors are Central problems: ``{"code": 404.1, "message": …}`` (403.1 for a request
  without credentials, 401.2 for a bad token).

Not Central: the test controls (``add``, ``edit``, ``review``, ``upload``, ``fail_next``) that seed the
server from a Python list the test owns. Data rows are built from the XML with numbers as
numbers and everything else as strings (Central types them from the form's schema).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from defusedxml import ElementTree as SafeET
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from tests.serving import serving

REVIEW_STATES = (None, "hasIssues", "edited", "approved", "rejected")
_FILTERABLE = {
    "__system/submissionDate": "created_at",
    "__system/updatedAt": "updated_at",
    "__system/submitterId": "submitter_id",
    "__system/reviewState": "review_state",
    "__system/deletedAt": "deleted_at",
}
_COLUMNS = {**_FILTERABLE, **{f"$root/Submissions/{k}": v for k, v in _FILTERABLE.items()}}


def iso(at: datetime | None) -> str | None:
    """As JavaScript's ``Date.toISOString()`` writes a PostgreSQL timestamptz: milliseconds, Z."""
    if at is None:
        return None
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _instance_id(xml: bytes) -> str:
    for node in SafeET.fromstring(xml).iter():
        if _local(node.tag) == "instanceID" and node.text:
            return node.text.strip()
    raise ValueError("the submission XML has no meta/instanceID")


def _form_version(xml: bytes) -> str:
    return SafeET.fromstring(xml).get("version") or ""


def _data(element: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in element:
        name = _local(child.tag)
        if len(child):
            out[name] = _data(child)
        else:
            text = (child.text or "").strip()
            out[name] = None if text == "" else int(text) if re.fullmatch(r"-?\d{1,15}", text) else text
    return out


@dataclass
class Attachment:
    name: str
    content: bytes | None  # None: expected by the XML, not uploaded (yet)
    content_type: str = "image/jpeg"
    chunked: bool = False  # sent without Content-Length (Transfer-Encoding: chunked)


@dataclass
class Version:
    instance_id: str
    xml: bytes
    created_at: datetime
    attachments: list[Attachment]
    submitter_id: int
    device_id: str | None


@dataclass
class FakeSubmission:
    id: int  # Central's serial submissions.id: the stable tie-break of every ordering
    instance_id: str  # the first version's: Central's "logical" instanceId and OData __id
    form_id: str
    created_at: datetime
    submitter_id: int
    submitter_name: str
    device_id: str | None
    versions: list[Version] = field(default_factory=list)  # oldest first
    updated_at: datetime | None = None
    review_state: str | None = None
    deleted_at: datetime | None = None

    @property
    def current(self) -> Version:
        return self.versions[-1]

    def column(self, name: str) -> Any:
        return getattr(self, name)

    def system(self) -> dict[str, Any]:
        current = self.current
        return {
            "submissionDate": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "deletedAt": iso(self.deleted_at),
            "submitterId": str(self.submitter_id),
            "submitterName": self.submitter_name,
            "attachmentsPresent": sum(1 for a in current.attachments if a.content is not None),
            "attachmentsExpected": len(current.attachments),
            "status": None,
            "reviewState": self.review_state,
            "deviceId": self.device_id,
            "edits": len(self.versions) - 1,
            "formVersion": _form_version(current.xml),
        }


class Problem(Exception):
    def __init__(self, status: int, code: float, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def _not_found() -> Problem:
    return Problem(404, 404.1, "Could not find the resource you were looking for.")


# ---------------------------------------------------------------------------------------
# $filter: the subset of OData Central implements for submissions (no functions here).

_TOKEN = re.compile(r"\s*(\(|\)|'(?:[^']|'')*'|[^\s()]+)")
_OPS = {"eq", "ne", "lt", "le", "gt", "ge"}
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$")


def _literal(text: str) -> Any:
    if text == "null":
        return None
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if _DATETIME.match(text):
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise Problem(400, 400.18, f"The OData filter expression you provided could not be parsed: "
                                       f"Unexpected character at {text}") from None


class _Filter:
    """Recursive descent over ``or`` / ``and`` / ``not`` / comparisons; SQL three-valued logic."""

    def __init__(self, expression: str):
        self.tokens = [(m.group(1), m.start(1)) for m in _TOKEN.finditer(expression)]
        self.pos = 0
        self.fields: set[str] = set()
        self.tree = self._or()
        if self.pos != len(self.tokens):
            self._unparseable()

    def _unparseable(self) -> None:
        at = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "end"
        raise Problem(400, 400.18, f"The OData filter expression you provided could not be parsed: "
                                   f"Unexpected character at {at}")

    def _peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def _next(self) -> tuple[str, int]:
        if self.pos >= len(self.tokens):
            self._unparseable()
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _or(self) -> Any:
        node = self._and()
        while self._peek() == "or":
            self.pos += 1
            node = ("or", node, self._and())
        return node

    def _and(self) -> Any:
        node = self._unary()
        while self._peek() == "and":
            self.pos += 1
            node = ("and", node, self._unary())
        return node

    def _unary(self) -> Any:
        if self._peek() == "not":
            self.pos += 1
            return ("not", self._unary())
        if self._peek() == "(":
            self.pos += 1
            node = self._or()
            if self._next()[0] != ")":
                self._unparseable()
            return node
        left = self._operand()
        op, _ = self._next()
        if op not in _OPS:
            self._unparseable()
        return (op, left, self._operand())

    def _operand(self) -> Any:
        text, at = self._next()
        if self._peek() == "(":
            raise Problem(501, 501.4, "The given OData filter expression uses features not supported by this "
                                      f"server: MethodCallExpression at {at} (\"{text}(…)\")")
        is_name = re.match(r"^[A-Za-z_$][\w/$]*$", text) is not None and text not in ("null", "true", "false")
        if is_name:
            if text not in _COLUMNS:
                raise Problem(501, 501.5, "The given OData filter expression references fields not supported "
                                          f"by this server: {text} at {at}", {"at": at, "text": text})
            self.fields.add(_COLUMNS[text])
            return ("field", _COLUMNS[text])
        return ("lit", _literal(text))

    def matches(self, row: FakeSubmission) -> bool:
        return self._eval(self.tree, row) is True

    def _value(self, node: Any, row: FakeSubmission) -> Any:
        return row.column(node[1]) if node[0] == "field" else node[1]

    def _eval(self, node: Any, row: FakeSubmission) -> bool | None:
        kind = node[0]
        if kind == "or":
            a, b = self._eval(node[1], row), self._eval(node[2], row)
            return True if (a or b) else (None if (a is None or b is None) else False)
        if kind == "and":
            a, b = self._eval(node[1], row), self._eval(node[2], row)
            return False if (a is False or b is False) else (None if (a is None or b is None) else True)
        if kind == "not":
            inner = self._eval(node[1], row)
            return None if inner is None else not inner
        left, right = self._value(node[1], row), self._value(node[2], row)
        if kind in ("eq", "ne") and (left is None or right is None):
            same = left is None and right is None
            return same if kind == "eq" else not same
        if left is None or right is None:
            return None
        if isinstance(left, datetime) != isinstance(right, datetime):
            left, right = str(left), str(right)
        return {"eq": left == right, "ne": left != right, "lt": left < right, "le": left <= right,
                "gt": left > right, "ge": left >= right}[kind]


def _order(rows: list[FakeSubmission], orderby: str | None) -> list[FakeSubmission]:
    if not orderby:
        return sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)
    clauses = []
    for part in orderby.split(","):
        words = part.split()
        if not words or words[0] not in _COLUMNS:
            raise Problem(501, 501.5, "The given OData filter expression references fields not supported by "
                                      f"this server: {words[0] if words else part}")
        if len(words) > 1 and words[1].lower() not in ("asc", "desc"):
            raise Problem(501, 501.5, "The given OData filter expression references fields not supported by "
                                      f"this server: {words[1]}")
        clauses.append((_COLUMNS[words[0]], len(words) > 1 and words[1].lower() == "desc"))
    ordered = sorted(rows, key=lambda r: r.id, reverse=clauses[0][1])  # stable tie-break first
    for column, desc in reversed(clauses):
        present = sorted((r for r in ordered if r.column(column) is not None), key=lambda r: r.column(column),
                         reverse=desc)
        nulls = [r for r in ordered if r.column(column) is None]
        ordered = present + nulls if desc else nulls + present  # ASC NULLS FIRST / DESC NULLS LAST
    return ordered


def _skiptoken(data: dict[str, Any]) -> str:
    return "01" + base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _parse_skiptoken(token: str) -> dict[str, Any]:
    try:
        if not token.startswith("01"):
            raise ValueError(token)
        parsed = json.loads(base64.b64decode(token[2:]))
        if not isinstance(parsed, dict):
            raise ValueError(token)
        return parsed
    except ValueError:
        raise Problem(400, 400.35, "The $skiptoken you provided is invalid.") from None


# ---------------------------------------------------------------------------------------


class FakeCentral:
    """The server's data, owned by the test; thread-safe (the app runs in uvicorn's thread)."""

    def __init__(self, project_id: int = 1, forms: dict[str, str] | None = None,
                 email: str = "pull@example.org", password: str = "correct horse battery staple"):
        self.project_id = project_id
        self.forms = dict(forms or {})  # xmlFormId → published version
        self.email, self.password = email, password
        self.tokens: set[str] = set()
        self.submissions: list[FakeSubmission] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._failures: list[tuple[str, int]] = []
        self._lock = threading.RLock()
        self.base_url = ""

    # -- test controls ---------------------------------------------------------------------

    def add(self, form_id: str, xml: bytes, at: datetime | None = None, *, attachments: list[Attachment] = (),
            submitter_id: int = 5, submitter_name: str = "Đội Hà Giang 01", device_id: str | None = None) -> str:
        """A new submission (as ODK Collect would send it to Central); returns its instanceID."""
        at = at or datetime.now(UTC)
        iid = _instance_id(xml)
        with self._lock:
            if any(s.instance_id == iid for s in self.submissions):
                raise ValueError(f"{iid} already exists")
            sub = FakeSubmission(len(self.submissions) + 1, iid, form_id, at, submitter_id, submitter_name, device_id)
            sub.versions.append(Version(iid, xml, at, list(attachments), submitter_id, device_id))
            self.submissions.append(sub)
        return iid

    def edit(self, form_id: str, instance_id: str, xml: bytes, at: datetime | None = None, *,
             attachments: list[Attachment] = ()) -> str:
        """A new version (``PUT …/submissions/{instanceId}`` or an edit from Collect): reviewState → edited."""
        at = at or datetime.now(UTC)
        with self._lock:
            sub = self._get(form_id, instance_id)
            version_id = _instance_id(xml)
            sub.versions.append(Version(version_id, xml, at, list(attachments), sub.submitter_id, sub.device_id))
            sub.updated_at, sub.review_state = at, "edited"
        return version_id

    def review(self, form_id: str, instance_id: str, state: str, at: datetime | None = None) -> None:
        """``PATCH …/submissions/{instanceId}`` with a reviewState."""
        if state not in REVIEW_STATES:
            raise ValueError(state)
        with self._lock:
            sub = self._get(form_id, instance_id)
            sub.review_state, sub.updated_at = state, at or datetime.now(UTC)

    def upload(self, form_id: str, instance_id: str, name: str, content: bytes, version_id: str | None = None,
               *, chunked: bool = False) -> None:
        """An attachment the submission expected reaches Central after it (``POST …/attachments/{name}``,
        or the phone sending it again): nothing in the OData row moves but ``attachmentsPresent``."""
        with self._lock:
            version = self._version(form_id, instance_id, version_id)
            attachment = next(a for a in version.attachments if a.name == name)
            attachment.content, attachment.chunked = content, chunked

    def fail_next(self, path_contains: str, status: int = 500) -> None:
        """The next request whose path contains this answers ``status`` (a Central hiccup)."""
        with self._lock:
            self._failures.append((path_contains, status))

    # -- lookups ---------------------------------------------------------------------------

    def _get(self, form_id: str, instance_id: str) -> FakeSubmission:
        for sub in self.submissions:
            if sub.form_id == form_id and sub.instance_id == instance_id and sub.deleted_at is None:
                return sub
        raise _not_found()

    def _version(self, form_id: str, instance_id: str, version_id: str | None) -> Version:
        sub = self._get(form_id, instance_id)
        if version_id is None:
            return sub.current
        for version in sub.versions:
            if version.instance_id == version_id:
                return version
        raise _not_found()

    def _check_form(self, project_id: int, form_id: str) -> None:
        if project_id != self.project_id or form_id not in self.forms:
            raise _not_found()

    # -- the OData data document -----------------------------------------------------------

    def odata(self, form_id: str, query: dict[str, str], url: str) -> dict[str, Any]:
        with self._lock:
            rows = [s for s in self.submissions if s.form_id == form_id]
            flt = _Filter(query["$filter"]) if query.get("$filter") else None
            if flt is None or "deleted_at" not in flt.fields:
                rows = [r for r in rows if r.deleted_at is None]
            if flt is not None:
                rows = [r for r in rows if flt.matches(r)]
            orderby, token = query.get("$orderby"), query.get("$skiptoken")
            if orderby and token:
                raise Problem(501, 501.1, "The requested feature using $orderby and $skiptoken together is not "
                                          "supported by this server.")
            rows = _order(rows, orderby)
            total = len(rows)
            if token:
                after = _parse_skiptoken(token).get("instanceId")
                index = next((i for i, r in enumerate(rows) if r.instance_id == after), None)
                rows = rows[index + 1:] if index is not None else []
            elif query.get("$skip"):
                rows = rows[int(query["$skip"]):]
            top = int(query["$top"]) if query.get("$top") else None
            page = rows[:top] if top is not None else rows
            remaining = len(rows) - len(page)
            select = [s.strip() for s in query["$select"].split(",")] if query.get("$select") not in (None, "*") \
                else None
            out: dict[str, Any] = {"value": [self._row(r, select) for r in page],
                                   "@odata.context": f"{url}/$metadata#Submissions"}
            if top is not None and remaining > 0 and page:
                kept = {k: v for k, v in query.items() if k not in ("$skip", "$skiptoken")}
                if orderby:
                    kept["$skip"] = str(int(query.get("$skip") or 0) + len(page))
                else:
                    kept["$skiptoken"] = _skiptoken({"instanceId": page[-1].instance_id})
                out["@odata.nextLink"] = f"{url}/Submissions?{urlencode(kept)}"
            if query.get("$count", "").lower() == "true":
                out["@odata.count"] = total
            return out

    def _row(self, sub: FakeSubmission, select: list[str] | None) -> dict[str, Any]:
        data = _data(SafeET.fromstring(sub.current.xml))
        row: dict[str, Any] = {"__id": sub.instance_id, "__system": sub.system(), **data}
        if select is None:
            return row
        picked: dict[str, Any] = {}
        for name in select:
            if name.startswith("__system/"):
                picked.setdefault("__system", {})[name.split("/", 1)[1]] = row["__system"].get(name.split("/", 1)[1])
            elif name in row:
                picked[name] = row[name]
            else:
                raise Problem(400, 400.34, f"Could not find a property named '{name}'")
        return picked


def problem_response(problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {"message": problem.message, "code": problem.code}
    if problem.details:
        body["details"] = problem.details
    return JSONResponse(body, status_code=problem.status)


def create_app(central: FakeCentral) -> FastAPI:
    app = FastAPI(title="fake ODK Central")

    @app.middleware("http")
    async def problems_auth_and_failures(request: Request, call_next):
        path = request.url.path
        central.requests.append((request.method, path, dict(request.query_params)))
        with central._lock:
            failure = next((f for f in central._failures if f[0] in path), None)
            if failure:
                central._failures.remove(failure)
        try:
            if failure:
                raise Problem(failure[1], failure[1] + 0.1, "Failure injected by the test (fake Central).")
            if not (request.method == "POST" and path == "/v1/sessions"):
                header = request.headers.get("authorization", "")
                if not header:
                    raise Problem(403, 403.1, "The authenticated actor does not have rights to perform that action.")
                if not header.startswith("Bearer ") or header[7:] not in central.tokens:
                    raise Problem(401, 401.2, "Could not authenticate with the provided credentials.")
            return await call_next(request)
        except Problem as problem:
            return problem_response(problem)

    @app.post("/v1/sessions")
    async def log_in(request: Request) -> Response:
        body = await request.json()
        if body.get("email") != central.email or body.get("password") != central.password:
            return JSONResponse({"message": "Could not authenticate with the provided credentials.", "code": 401.2},
                                status_code=401)
        token = secrets.token_urlsafe(48)
        central.tokens.add(token)
        now = datetime.now(UTC)
        return JSONResponse({"createdAt": iso(now), "expiresAt": iso(now + timedelta(hours=24)), "token": token})

    @app.get("/v1/users/current")
    def current_user() -> dict[str, Any]:
        return {"id": 5, "type": "user", "displayName": "Central pull", "email": central.email,
                "createdAt": "2025-01-01T00:00:00.000Z", "updatedAt": None, "deletedAt": None}

    def answer(fn):
        try:
            return fn()
        except Problem as problem:
            return problem_response(problem)

    # Routes ending in .svc / .xml come before the plain ones: "{form_id}" would match "visit_log.svc".
    @app.get("/v1/projects/{project_id}/forms/{form_id}.svc/Submissions")
    def data_document(project_id: int, form_id: str, request: Request):
        def run():
            central._check_form(project_id, form_id)
            root = f"{central.base_url}/v1/projects/{project_id}/forms/{form_id}.svc"
            return JSONResponse(central.odata(form_id, dict(request.query_params), root))
        return answer(run)

    @app.get("/v1/projects/{project_id}/forms/{form_id}.svc")
    def service_document(project_id: int, form_id: str):
        def run():
            central._check_form(project_id, form_id)
            root = f"{central.base_url}/v1/projects/{project_id}/forms/{form_id}.svc"
            return JSONResponse({"@odata.context": f"{root}/$metadata",
                                 "value": [{"name": "Submissions", "kind": "EntitySet", "url": "Submissions"}]},
                                media_type="application/json; odata.metadata=minimal")
        return answer(run)

    @app.get("/v1/projects/{project_id}/forms/{form_id}/submissions/{instance_id}.xml")
    def submission_xml(project_id: int, form_id: str, instance_id: str):
        def run():
            central._check_form(project_id, form_id)
            with central._lock:
                return Response(central._version(form_id, instance_id, None).xml, media_type="application/xml")
        return answer(run)

    @app.get("/v1/projects/{project_id}/forms/{form_id}/submissions/{instance_id}/versions")
    def versions(project_id: int, form_id: str, instance_id: str):
        def run():
            central._check_form(project_id, form_id)
            with central._lock:
                sub = central._get(form_id, instance_id)
                return JSONResponse([
                    {"instanceId": v.instance_id, "instanceName": None, "submitterId": v.submitter_id,
                     "deviceId": v.device_id, "userAgent": "ODK Collect", "createdAt": iso(v.created_at),
                     "current": v is sub.current, "formVersion": _form_version(v.xml)}
                    for v in reversed(sub.versions)])  # "in descending creation order"
        return answer(run)

    @app.get("/v1/projects/{project_id}/forms/{form_id}/submissions/{instance_id}/versions/{version_id}.xml")
    def version_xml(project_id: int, form_id: str, instance_id: str, version_id: str):
        def run():
            central._check_form(project_id, form_id)
            with central._lock:
                return Response(central._version(form_id, instance_id, version_id).xml, media_type="application/xml")
        return answer(run)

    def list_attachments(project_id: int, form_id: str, instance_id: str, version_id: str | None):
        central._check_form(project_id, form_id)
        with central._lock:
            version = central._version(form_id, instance_id, version_id)
            return JSONResponse([{"name": a.name, "exists": a.content is not None}
                                 for a in sorted(version.attachments, key=lambda a: a.name)])

    def download(project_id: int, form_id: str, instance_id: str, version_id: str | None, filename: str):
        central._check_form(project_id, form_id)
        with central._lock:
            version = central._version(form_id, instance_id, version_id)
            found = next((a for a in version.attachments if a.name == filename and a.content is not None), None)
            if found is None:
                raise _not_found()
            headers = {"ETag": f'"{hashlib.md5(found.content).hexdigest()}"',
                       "Content-Disposition": f'attachment; filename="{filename}"'}
            if found.chunked:
                body = found.content
                chunks = (body[i:i + 4096] for i in range(0, len(body), 4096))
                return StreamingResponse(chunks, media_type=found.content_type, headers=headers)
            return Response(found.content, media_type=found.content_type, headers=headers)

    @app.get("/v1/projects/{project_id}/forms/{form_id}/submissions/{instance_id}/attachments")
    def attachments(project_id: int, form_id: str, instance_id: str):
        return answer(lambda: list_attachments(project_id, form_id, instance_id, None))

    @app.get("/v1/projects/{project_id}/forms/{form_id}/submissions/{instance_id}/attachments/{filename}")
    def attachment(project_id: int, form_id: str, instance_id: str, filename: str):
        return answer(lambda: download(project_id, form_id, instance_id, None, filename))

    @app.get("/v1/projects/{project_id}/forms/{form_id}/submissions/{instance_id}/versions/{version_id}/attachments")
    def version_attachments(project_id: int, form_id: str, instance_id: str, version_id: str):
        return answer(lambda: list_attachments(project_id, form_id, instance_id, version_id))

    @app.get("/v1/projects/{project_id}/forms/{form_id}/submissions/{instance_id}/versions/{version_id}"
             "/attachments/{filename}")
    def version_attachment(project_id: int, form_id: str, instance_id: str, version_id: str, filename: str):
        return answer(lambda: download(project_id, form_id, instance_id, version_id, filename))

    @app.get("/v1/projects/{project_id}/forms/{form_id}")
    def form(project_id: int, form_id: str):
        def run():
            central._check_form(project_id, form_id)
            version = central.forms[form_id]
            return JSONResponse({
                "projectId": project_id, "xmlFormId": form_id, "name": form_id, "version": version,
                "enketoId": None, "hash": hashlib.md5(f"{form_id}|{version}".encode()).hexdigest(),
                "keyId": None, "state": "open", "publishedAt": "2025-01-01T00:00:00.000Z",
                "createdAt": "2025-01-01T00:00:00.000Z", "updatedAt": None})
        return answer(run)

    return app


@contextmanager
def served(fake: FakeCentral) -> Iterator[FakeCentral]:
    """``fake`` answered by uvicorn on a free localhost port in a thread; its ``base_url`` set."""
    with serving(create_app(fake), lifespan="off") as base_url:
        fake.base_url = base_url
        yield fake
