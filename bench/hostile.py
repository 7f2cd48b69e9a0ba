"""Hostile bodies: what a 100 MB submission sent chunked (no Content-Length) costs the one-process stack.

``python -m services.embedded`` receives a multipart body whose XML part (a "visit log") or whose
photo is 100 MiB, sent with ``Transfer-Encoding: chunked``. The figures: how much of it the client
could push before the answer (the limit, plus what socket buffers take), and how much the attack
raised the server's peak RSS (its high-water mark, VmHWM). The upper bound beside the first is the
limit itself (``MAX_SUBMISSION_BYTES`` / ``MAX_ATTACHMENT_BYTES``): reading cannot stop earlier.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx

from bench.context import Context
from bench.results import Figure
from bench.servers import Service, env_of
from tests.kafka.broker import free_port

MIB = 1 << 20
BODY_MIB = 100
BOUNDARY = "hostile"


def _body(kind: str, sent: list[int]) -> Iterator[bytes]:
    xml_head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="xml_submission_file"; filename="s.xml"\r\n'
                'Content-Type: text/xml\r\n\r\n<visit_log id="visit_log"><notes>').encode()
    if kind == "xml":
        yield xml_head
    else:
        yield xml_head + (f'</notes></visit_log>\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; '
                          'name="p.jpg"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
    chunk = b"x" * MIB
    for _ in range(BODY_MIB):
        sent[0] += len(chunk)
        yield chunk
    yield (b"</notes></visit_log>" if kind == "xml" else b"") + f"\r\n--{BOUNDARY}--\r\n".encode()


def run(ctx: Context) -> list[Figure]:
    settings = ctx.settings("hostile", port=free_port())
    url = f"http://127.0.0.1:{settings.port}"
    server = Service("services.embedded", env_of(settings), settings.state_dir.parent / "embedded.log",
                     f"{url}/health").start()
    figures = []
    try:
        for kind, limit in (("xml", settings.max_submission_bytes), ("attachment", settings.max_attachment_bytes)):
            before = server.peak_rss_mib()
            sent = [0]
            started = time.perf_counter()
            response = httpx.post(f"{url}/submission", content=_body(kind, sent), timeout=120, headers={
                "X-OpenRosa-Version": "1.0", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
            took = time.perf_counter() - started
            peak = server.peak_rss_mib()
            what = "XML part" if kind == "xml" else "photo"
            details = {"status": response.status_code, "seconds": round(took, 3), "peak_rss_before_mib": before,
                       "peak_rss_after_mib": peak, "body_mib": BODY_MIB}
            figures += [
                Figure(f"hostile.{kind}.sent_mib", f"hostile: MiB a {BODY_MIB} MiB chunked {what} got in before "
                       f"the answer ({response.status_code})", sent[0] / MIB, "MiB", limit / MIB,
                       "the limit (reading cannot stop earlier)", notes=f"answered in {took:.2f} s",
                       details=details),
                Figure(f"hostile.{kind}.peak_rss_growth_mib", f"hostile: rise of the peak RSS from a {BODY_MIB} MiB "
                       f"chunked {what}", peak - before, "MiB", details=details),
            ]
        if not server.alive():
            raise RuntimeError(f"the embedded stack died:\n{server.log_tail()}")
    finally:
        server.stop()
    return figures
