"""How the query API answers: JSON or CSV, HTTP caching, and keyset pagination.

- **JSON** by default; **CSV** with ``format=csv`` or ``Accept: text/csv``: streamed, UTF-8 with a
  byte-order mark (Excel then shows Vietnamese), a header row, every row (no cap). The CSV's rows
  are the JSON's rows, nested fields flattened with dots (``areas.legacy.province_code``). A text
  cell a spreadsheet would run as a formula (it begins with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return: a library's name, an instanceID a phone chose) gets a leading ``'``, OWASP's
  rule against CSV injection; numbers stay numbers.
- **Caching** (aggregates): a strong ``ETag`` computed from the representation, ``Cache-Control:
  private, max-age=60``, ``304 Not Modified`` on a matching ``If-None-Match``.
- **Pagination** of long lists: ``page_size`` and an opaque ``page_token`` (the last sort key of the
  previous page, and a fingerprint of the query it belongs to), ``next_page_token`` in the body
  and ``Link: <…>; rel="next"``. Keyset, not offset: rows added meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse

from services.domain.errors import Reason
from services.problems import PROBLEM_SCHEMA, RequestRefused

Format = Literal["json", "csv"]
FormatParam = Annotated[Format | None, Query(
    description="`json` (default) or `csv` (also chosen by `Accept: text/csv`).")]
PageSize = Annotated[int, Query(ge=1, le=1000, description="Rows per page (1–1000).")]
PageToken = Annotated[str | None, Query(
    max_length=2000, description="`next_page_token` of the previous page (opaque).")]

CACHE_AGGREGATES = "private, max-age=60"
NO_STORE = "no-store"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
_BOM = "\ufeff"
_CSV_CHUNK_ROWS = 500
_VARY = "Accept, Authorization, X-API-Key"

def _problem(description: str) -> dict[str, Any]:
    return {"description": f"{description} (RFC 9457 problem details, `invalid_params` names the parameter).",
            "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}}


LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "JSON, or CSV (`format=csv` / `Accept: text/csv`)."},
    304: {"description": "Not modified (the `If-None-Match` ETag still matches)."},
    400: _problem("Invalid parameter"),
    401: _problem("No or unknown API key"),
    403: _problem("Outside the key's scope"),
    404: _problem("Unknown area"),
}


def documented(model: Any, *, csv: bool = True) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route answering ``model`` as JSON, or CSV (unless ``csv`` is false), with the
    usual errors."""
    if not csv:
        return {**LIST_RESPONSES, 200: {"model": model, "description": "JSON."}}
    return {**LIST_RESPONSES, 200: {**LIST_RESPONSES[200], "model": model}}


# --- values ---------------------------------------------------------------------------------------

def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_bytes(body: Any) -> bytes:
    """Compact UTF-8 JSON (orjson: a lineage page of 1,000 chains in ~1 ms, the standard library's ~12);
    dates and times as ISO 8601, as ``datetime.isoformat`` writes them."""
    return orjson.dumps(body, default=_default, option=orjson.OPT_NON_STR_KEYS)


def plain(value: Any) -> Any:
    """The value as it reads in JSON (dates as ISO strings…): what a row holds once answered."""
    return json.loads(json_bytes(value))


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects → dotted keys; lists stay values (written as JSON in a CSV cell)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}.")
        else:
            out[name] = value
    return out


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def neutralised(text: str) -> str:
    """Text a spreadsheet will show as text, never evaluate: ``'`` before a formula's first character."""
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def cell(value: Any) -> str:
    """A CSV cell: empty for null, true/false, ISO dates, JSON for lists, the number as JSON writes it,
    text neutralised against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return neutralised(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | float | Decimal):
        return json.dumps(value, default=_default)
    return neutralised(json_bytes(value).decode("utf-8"))  # a list: JSON text


# --- content negotiation and caching -----------------------------------------------------------------

def wants_csv(request: Request, fmt: Format | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    best: tuple[float, str] = (0.0, "json")
    for part in request.headers.get("accept", "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        kind = {"text/csv": "csv", "application/json": "json"}.get(media.lower())
        if kind and (q > best[0] or (q == best[0] and kind == "json")):
            best = (q, kind)
    return best[1] == "csv" and best[0] > 0


def _matches(request: Request, etag: str) -> bool:
    """If-None-Match (weak comparison, RFC 9110 §13.1.2): ``*`` or any listed tag equal to ours."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    ours = etag.removeprefix("W/")
    return any(tag.strip() == "*" or tag.strip().removeprefix("W/") == ours for tag in header.split(","))


def _etag(digest: str) -> str:
    return f'"{digest}"'


# --- answering --------------------------------------------------------------------------------------

def respond(request: Request, body: Any, rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
            fmt: Format | None, filename: str, *, cache: bool = True,
            headers: Mapping[str, str] | None = None) -> Response:
    """The answer as JSON (``body``) or CSV (``rows`` under ``columns``), with ETag and caching headers."""
    extra = {"Vary": _VARY, "Cache-Control": CACHE_AGGREGATES if cache else NO_STORE, **(headers or {})}
    if wants_csv(request, fmt):
        digest = hashlib.sha256(b"csv\n" + json_bytes(list(columns)))
        for row in rows:
            digest.update(json_bytes(row))
        extra["ETag"] = _etag(digest.hexdigest())
        if cache and _matches(request, extra["ETag"]):
            return Response(status_code=304, headers=extra)
        extra["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
        return StreamingResponse(_csv_chunks(rows, columns), media_type=CSV_MEDIA_TYPE, headers=extra)
    data = json_bytes(body)
    extra["ETag"] = _etag(hashlib.sha256(data).hexdigest())
    if cache and _matches(request, extra["ETag"]):
        return Response(status_code=304, headers=extra)
    return Response(data, media_type="application/json", headers=extra)


def _csv_chunks(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(_BOM)
    writer.writerow(columns)
    for index, row in enumerate(rows, start=1):
        flat = flatten(row)
        writer.writerow([cell(flat.get(column)) for column in columns])
        if index % _CSV_CHUNK_ROWS == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


# --- pagination -------------------------------------------------------------------------------------

_NOT_THE_QUERY = ("page_token", "page_size", "format")


def _fingerprint(request: Request) -> str:
    """The query a token belongs to: path and parameters, except the page's own and the format."""
    items = sorted((k, v) for k, v in request.query_params.multi_items() if k not in _NOT_THE_QUERY)
    return hashlib.sha256(json_bytes([request.url.path, items])).hexdigest()[:16]


def encode_token(request: Request, after: str) -> str:
    raw = json_bytes({"a": after, "q": _fingerprint(request)})
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_token(request: Request, token: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after, query = data["a"], data["q"]
        if not isinstance(after, str) or not isinstance(query, str):
            raise ValueError("wrong types")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise RequestRefused(400, "Invalid page token", Reason(
            "invalid_page_token", "page_token không phải mã trang do API này cấp",
            "page_token is not a token this API gave out", "page_token")) from exc
    if query != _fingerprint(request):
        raise RequestRefused(400, "Invalid page token", Reason(
            "page_token_of_another_query", "page_token thuộc một truy vấn khác: giữ mọi tham số trừ page_token và "
            "page_size như ở trang đầu", "page_token belongs to another query: keep every parameter but page_token "
            "and page_size as on the first page", "page_token"))
    return after


def paginate(request: Request, rows: Sequence[Mapping[str, Any]], key: str, page_size: int | None,
             page_token: str | None) -> tuple[list[Mapping[str, Any]], str | None, dict[str, str]]:
    """One page of ``rows`` (sorted by ``key``, unique): the rows after the token's key, at most
    ``page_size`` of them (all when None: CSV), the next token and its ``Link`` header."""
    after = decode_token(request, page_token) if page_token else None
    ordered = sorted(rows, key=lambda row: str(row[key]))
    rest = [row for row in ordered if after is None or str(row[key]) > after]
    if page_size is None or len(rest) <= page_size:
        return rest, None, {}
    page = rest[:page_size]
    token = encode_token(request, str(page[-1][key]))
    link = str(request.url.include_query_params(page_token=token))
    return page, token, {"Link": f'<{link}>; rel="next"'}


def respond_page(request: Request, body: dict[str, Any], rows: Sequence[Mapping[str, Any]], key: str,
                 columns: Sequence[str], fmt: Format | None, filename: str, page_size: int,
                 page_token: str | None) -> Response:
    """A list's answer: ``body`` with one page of ``rows`` (``items``) and ``next_page_token`` as JSON;
    every row after the token as CSV (no cap)."""
    page, token, links = paginate(request, rows, key, None if wants_csv(request, fmt) else page_size, page_token)
    return respond(request, {**body, "items": page, "next_page_token": token}, page, columns, fmt, filename,
                   headers=links)
