"""The intake benchmark's load generator, run as its own process: ``python -m bench.load``.

It fetches the served visit-log XForm from the (first) server under test, fills it for the first
``--count`` arrivals of the generated workload (``bench.generate.Workload``: new, late,
duplicate and edited submissions), and pre-builds each request — multipart body as
``services/tools/submissions.multipart`` names the part, ``X-OpenRosa-Version: 1.0`` — before
any timing starts. Then ``--concurrency`` keep-alive connections send them as fast as the server
answers (closed loop), each on a plain asyncio stream: the generator's own CPU goes to sending,
not to an HTTP client library. With several ``--url`` (intake processes without a proxy in front)
connection i goes to url i mod n, so each process gets an equal share of the connections.
Per request it records the latency (write of the request to the end of the response) and the
status; the summary is one JSON object on stdout.

``--rate`` sends at a steady rate instead (open loop), for the freshness benchmark; with
``--record`` each request's instanceID, library, day, status and time of its answer are written
as JSON lines to that file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.generate import Submission, Workload, load_reference
from services.tools.submissions import multipart

OPENROSA = {"X-OpenRosa-Version": "1.0"}


def build_requests(base_url: str, submissions: list[Submission], xform: bytes) -> list[bytes]:
    """Each submission as the complete HTTP/1.1 request bytes a keep-alive connection sends."""
    host = urlsplit(base_url).netloc
    out = []
    for sub in submissions:
        request = httpx.Request("POST", f"{base_url}/submission", files=multipart(sub.xml(xform)), headers=OPENROSA)
        body = request.read()
        head = (f"POST /submission HTTP/1.1\r\nHost: {host}\r\nX-OpenRosa-Version: 1.0\r\n"
                f"Content-Type: {request.headers['content-type']}\r\nContent-Length: {len(body)}\r\n\r\n")
        out.append(head.encode("ascii") + body)
    return out


async def _response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); return its status."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


class Connection:
    """One keep-alive connection; TLS when ``tls`` (an https URL: a proxy in front), verified against
    the default trust store, which ``SSL_CERT_FILE`` can name (a proxy's local CA)."""

    def __init__(self, host: str, port: int, tls: bool = False):
        self.host, self.port = host, port
        self.tls = ssl.create_default_context() if tls else None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> int:
        for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls)
            try:
                self.writer.write(request)
                await self.writer.drain()
                return await _response(self.reader)  # type: ignore[arg-type]
            except (ConnectionError, asyncio.IncompleteReadError):
                self.writer.close()
                self.writer = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _timed(connection: Connection, requests: list[bytes], i: int, latencies: list[float],
                 statuses: list[int]) -> None:
    """Send request ``i``; record its latency and status (-1: the connection failed)."""
    started = time.perf_counter()
    try:
        statuses[i] = await connection.send(requests[i])
    except (OSError, asyncio.IncompleteReadError):
        statuses[i] = -1
    latencies[i] = time.perf_counter() - started


def _address(base_url: str) -> tuple[str, int, bool]:
    parts = urlsplit(base_url)
    tls = parts.scheme == "https"
    return parts.hostname or "127.0.0.1", parts.port or (443 if tls else 80), tls


async def closed_loop(base_urls: str | list[str], requests: list[bytes],
                      concurrency: int) -> tuple[list[float], list[int], float]:
    """Send every request over ``concurrency`` connections, each as soon as the previous answer came;
    connection i goes to ``base_urls[i % n]``."""
    addresses = [_address(url) for url in ([base_urls] if isinstance(base_urls, str) else base_urls)]
    latencies: list[float] = [0.0] * len(requests)
    statuses: list[int] = [0] * len(requests)
    next_index = 0

    async def run(k: int) -> None:
        nonlocal next_index
        connection = Connection(*addresses[k % len(addresses)])
        try:
            while next_index < len(requests):
                i = next_index
                next_index += 1
                await _timed(connection, requests, i, latencies, statuses)
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(run(k) for k in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


async def open_loop(base_url: str, requests: list[bytes], rate: float, concurrency: int,
                    on_answer) -> tuple[list[float], list[int], float]:
    """Send request i at ``i / rate`` seconds (or as soon as a connection is free after it)."""
    latencies: list[float] = [0.0] * len(requests)
    statuses: list[int] = [0] * len(requests)
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def run() -> None:
        connection = Connection(*_address(base_url))
        try:
            while (i := await queue.get()) is not None:
                await _timed(connection, requests, i, latencies, statuses)
                on_answer(i, statuses[i], time.time())
        finally:
            connection.close()

    workers = [asyncio.create_task(run()) for _ in range(concurrency)]
    started = time.perf_counter()
    for i in range(len(requests)):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(i)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, statuses, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))] if ordered else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, action="append",
                        help="server under test, e.g. http://127.0.0.1:8000; repeated: connections spread over them")
    parser.add_argument("--form-url", default="", help="where to GET the visit-log XForm (default: --url)")
    parser.add_argument("--registry", type=Path, required=True, help="LIBRARIES_FILE the workload is drawn from")
    parser.add_argument("--count", type=int, default=10_000, help="submissions to send (timed)")
    parser.add_argument("--warmup", type=int, default=0, help="submissions sent first, not timed")
    parser.add_argument("--skip", type=int, default=0, help="arrivals to skip (another run sent them)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=0.0, help="steady submissions/s (open loop); 0: closed loop")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 3, 3))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--record", type=Path, default=None, help="JSON lines: each request and its answer")
    parser.add_argument("--ready", type=Path, default=None, help="file made once the bodies are built, before sending")
    args = parser.parse_args(argv)

    reference = load_reference(args.registry)
    form_url = args.form_url or args.url[0]
    xform = httpx.get(f"{form_url}/forms/visit_log.xml", headers=OPENROSA, timeout=30).raise_for_status().content
    wanted = args.skip + args.warmup + args.count
    workload = Workload(reference, args.start, date(args.start.year + 5, 12, 31), seed=args.seed)
    submissions: list[Submission] = []
    for sub in workload.arrivals():
        submissions.append(sub)
        if len(submissions) >= wanted:
            break
    submissions = submissions[args.skip:]
    t_build = time.perf_counter()
    requests = build_requests(args.url[0], submissions, xform)
    build_s = time.perf_counter() - t_build
    warm, timed = requests[:args.warmup], requests[args.warmup:]

    record = args.record.open("w", encoding="utf-8") if args.record else None
    subs = submissions[args.warmup:]

    def on_answer(i: int, status: int, at: float) -> None:
        if record is not None:
            s = subs[i]
            record.write(json.dumps({"i": i, "instance_id": s.instance_id, "library_id": s.answers["library_id"],
                                     "day": s.answers["report_date"], "kind": s.kind, "status": status,
                                     "answered_at": at}) + "\n")
            record.flush()

    if warm:
        asyncio.run(closed_loop(args.url, warm, args.concurrency))
    if args.ready is not None:
        args.ready.touch()
    load_before = os.getloadavg()[0]  # the machine is shared: a high load says "measure again"
    if args.rate > 0:
        latencies, statuses, elapsed = asyncio.run(open_loop(args.url[0], timed, args.rate, args.concurrency,
                                                             on_answer))
    else:
        latencies, statuses, elapsed = asyncio.run(closed_loop(args.url, timed, args.concurrency))
    if record is not None:
        record.close()
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    kinds: dict[str, int] = {}
    for sub in subs:
        kinds[sub.kind] = kinds.get(sub.kind, 0) + 1
    ok = [lat for lat, st in zip(latencies, statuses, strict=True) if st == 201]
    json.dump({"sent": len(timed), "warmup": len(warm), "concurrency": args.concurrency, "elapsed_s": elapsed,
               "per_s": len(timed) / elapsed if elapsed else 0.0, "statuses": counts, "kinds": kinds,
               "p50_ms": percentile(ok, 50) * 1000, "p99_ms": percentile(ok, 99) * 1000,
               "max_ms": max(ok, default=0.0) * 1000, "build_s": build_s, "urls": args.url,
               "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
               "body_bytes_mean": sum(len(r) for r in timed) / max(1, len(timed))}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
