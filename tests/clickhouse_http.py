"""A ClickHouse server for tests: the chDB engine behind ClickHouse's HTTP interface.

No ClickHouse server can be installed on these machines, and chDB is one engine per process.
The distributed mode's workers share one ClickHouse server in production; to test several
workers against one store, this process owns a chDB data directory and answers the subset of
ClickHouse's HTTP protocol that clickhouse-connect's HTTP client speaks (the ``http://`` DSN the
services use in production): queries and commands in the body or the ``query`` parameter,
``param_*`` bound parameters (in the URL or, when long, as form fields), Native inserts
(compressed or not, chunked or not), ``/ping``, and errors as ``Code: N. DB::Exception: …``
with status 500. Every statement runs in the real engine; nothing is emulated but the
transport. Settings sent as URL parameters are ignored.

Run: ``python -m tests.clickhouse_http --path DIR --port N``; tests use ``ClickHouseServer``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import chdb
import httpx
from clickhouse_connect.driver._backend.chdb_backend import _decompress, _trailing_format

from tests.kafka.broker import die_with_parent, free_port

_INSERT_NATIVE = re.compile(rb"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+Native\s*$", re.IGNORECASE | re.DOTALL)


class Engine:
    def __init__(self, path: str):
        self._conn = chdb.connect(path)
        self._lock = threading.Lock()

    def run(self, sql: str, params: dict[str, str], data: bytes | None) -> tuple[bytes, str, dict[str, int]]:
        """(body, format, summary) of one statement; ``data``: Native rows of an INSERT."""
        if data is not None:
            match = _INSERT_NATIVE.match(sql.encode())
            if match is None:
                raise ValueError(f"only FORMAT Native inserts are served: {sql[:200]!r}")
            with tempfile.NamedTemporaryFile(suffix=".native", delete=False) as tmp:
                tmp.write(data)
            try:
                statement = f"{match.group(1).decode()} FROM INFILE '{tmp.name}' FORMAT Native"
                with self._lock:
                    result = self._conn.query(statement, "TabSeparated")
                return b"", "", {"written_rows": result.rows_read()}
            finally:
                os.unlink(tmp.name)
        fmt = _trailing_format(sql) or "TabSeparated"
        with self._lock:
            result = self._conn.query(sql, fmt, params=params)
            body = result.bytes() or b""
        return body, fmt, {"read_rows": result.rows_read(), "read_bytes": result.bytes_read()}


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True).decode()
            for part in message.iter_parts()}


class Handler(BaseHTTPRequestHandler):
    engine: Engine
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(parts)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding")
        return _decompress(body, encoding) if encoding and body else body

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path.rstrip("/") == "/ping":
            self._answer(200, b"Ok.\n", {"Content-Type": "text/plain"})
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):  # long parameters come as form fields
            params |= _form_fields(content_type, body)
            body = b""
        query, data = params.get("query", ""), None
        if query and body:
            if query.lstrip().upper().startswith("INSERT"):
                data = body
            else:
                query = f"{query}\n{body.decode()}"
        elif not query:
            head, newline, rest = body.partition(b"\n")
            if _INSERT_NATIVE.match(head) and newline:
                query, data = head.decode(), rest
            else:
                query = body.decode()
        bound = {k.removeprefix("param_"): v for k, v in params.items() if k.startswith("param_")}
        try:
            out, fmt, summary = self.engine.run(query, bound, data)
        except Exception as exc:  # the engine's message, as a server gives it
            message = str(exc)
            code = re.search(r"Code: (\d+)", message)
            text = message if message.startswith("Code:") else f"Code: 1000. DB::Exception: {message}"
            self._answer(500, text.encode(), {"Content-Type": "text/plain; charset=UTF-8",
                                              "X-ClickHouse-Exception-Code": code.group(1) if code else "1000"})
            return
        headers = {"Content-Type": "application/octet-stream", "X-ClickHouse-Timezone": "UTC",
                   "X-ClickHouse-Summary": json.dumps({k: str(v) for k, v in summary.items()})}
        if fmt:
            headers["X-ClickHouse-Format"] = fmt
        self._answer(200, out, headers)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._handle(b"")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self._handle(self._body())


@dataclass
class ClickHouseServer:
    """This module's server in a child process, on a data directory and a free port."""

    path: str
    process: subprocess.Popen | None = None
    port: int = 0

    @property
    def dsn(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> ClickHouseServer:
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, "-m", "tests.clickhouse_http", "--path", self.path,
                                         "--port", str(self.port)], preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.dsn}/ping", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, "the ClickHouse test server exited"
            assert time.monotonic() < deadline, f"the ClickHouse test server did not answer within {timeout_s}s"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.clickhouse_http", description=__doc__)
    parser.add_argument("--path", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    Handler.engine = Engine(args.path)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
