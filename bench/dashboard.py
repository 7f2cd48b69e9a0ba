"""The dashboard page: navigation → every chart drawn, in headless Chromium.

Given a running query service (with the page, ``services/query/dashboard.py``) and an API key,
the page is opened as ``/dashboard#key=…`` in Debian's Chromium driven by Playwright, as
``tests/test_dashboard_browser.py`` drives it, ``loads`` times: each time in a fresh browser
context (empty cache: a first load), then reloaded in it (the browser revalidates the figures'
answer, 304). The time is from navigation start to the page's ``charts-drawn`` mark (every chart
of the view rendered, ``static/dashboard.js``). Beside it, the bound: the figures' one request,
``/v1/dashboard`` as the page first asks it, alone over HTTP (the page cannot draw before it).

``bench/query.py`` measures it on its filled store; by hand, against any stack::

    .venv/bin/python -m bench.dashboard http://127.0.0.1:8000 "$KEY"
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.measure import percentile
from bench.results import Figure
from services.clock import today_local

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LIMIT_MS = 1500.0  # issue 13: the dashboard opens at once
FIGURES_PATH = "/v1/dashboard"

# What the page's Performance timeline holds once its first view is drawn.
_TIMINGS = """() => {
    const mark = performance.getEntriesByName("charts-drawn")[0];
    const figures = performance.getEntriesByType("resource")
        .filter((entry) => new URL(entry.name).pathname === "/v1/dashboard");
    return {drawn: mark.startTime, figures: figures.map((entry) => ({start: entry.startTime,
        duration: entry.duration, transfer: entry.transferSize, body: entry.encodedBodySize}))};
}"""


@dataclass
class Load:
    drawn_ms: float  # navigation start → charts-drawn
    asked_ms: float  # navigation start → the figures' request sent
    figures_ms: float  # the figures' request as the page saw it
    requests: int  # figures' requests in the load (the page asks once)
    revalidated: bool  # answered 304: only headers crossed the wire


def _timed(page: Any, navigate: Callable[[], object]) -> Load:
    asked: list[str] = []

    def count(request: Any) -> None:
        if httpx.URL(request.url).path == FIGURES_PATH:
            asked.append(request.url)

    page.on("request", count)
    try:
        navigate()
        page.wait_for_function("performance.getEntriesByName('charts-drawn').length > 0", timeout=300_000)
        timings = page.evaluate(_TIMINGS)
    finally:
        page.remove_listener("request", count)
    figures = timings["figures"][-1] if timings["figures"] else {"start": 0.0, "duration": 0.0, "transfer": 0,
                                                                 "body": 0}
    return Load(timings["drawn"], figures["start"], figures["duration"], len(asked),
                0 < figures["transfer"] < figures["body"])


def _alone(base_url: str, key: str, times: int) -> list[float]:
    """The figures' request of the page's first view (the region, this year), alone over HTTP."""
    params = {"scheme": "legacy", "year": str(today_local().year)}
    out = []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as client:
        for _ in range(times):
            t0 = time.perf_counter()
            client.get(FIGURES_PATH, params=params).raise_for_status()
            out.append((time.perf_counter() - t0) * 1000)
    return out


def measure(base_url: str, key: str, *, loads: int = 10, where: str = "") -> list[Figure]:
    """Median and p95 of navigation → all charts drawn, first loads and revalidated loads apart."""
    from playwright.sync_api import sync_playwright  # a dev extra, as for the browser test

    first: list[Load] = []
    again: list[Load] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            for _ in range(loads):
                context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="vi-VN",
                                              timezone_id="Asia/Ho_Chi_Minh")
                page = context.new_page()
                first.append(_timed(page, partial(page.goto, f"{base_url}/dashboard#key={key}")))
                again.append(_timed(page, page.reload))
                context.close()
        finally:
            browser.close()
    return figures(first, again, _alone(base_url, key, loads), where)


def figures(first: list[Load], again: list[Load], alone: list[float], where: str = "") -> list[Figure]:
    out = []
    on = f" ({where})" if where else ""
    for name, label, loads in (("first_load", "first load, empty cache", first),
                               ("revalidated", "reload, figures revalidated", again)):
        drawn = [load.drawn_ms for load in loads]
        details: dict[str, object] = {
            "loads": [asdict(load) for load in loads], "limit_ms": LIMIT_MS,
            "figures_requests_per_load": sorted({load.requests for load in loads}),
            "answered_304": sum(load.revalidated for load in loads),
            "figures_asked_p50_ms": round(percentile([load.asked_ms for load in loads], 50), 1),
            "figures_request_p50_ms": round(percentile([load.figures_ms for load in loads], 50), 1),
            "alone_ms": [round(ms, 1) for ms in alone]}
        for q in (50, 95):
            value = percentile(drawn, q)
            out.append(Figure(
                f"dashboard.{name}.p{q}_ms", f"dashboard: navigation → all charts drawn, {label}, p{q}{on}",
                value, "ms", bound=percentile(alone, q), bound_label=f"its one figures request alone over HTTP, p{q}",
                goal=f"≤ {LIMIT_MS:,.0f} ms", met=value <= LIMIT_MS,
                notes=f"{len(loads)} loads in headless Chromium; the figures' request, sent at "
                      f"{details['figures_asked_p50_ms']} ms, took {details['figures_request_p50_ms']} ms (p50); "
                      f"{details['answered_304']} of {len(loads)} answered 304",
                details=details))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_url", help="the query service, e.g. http://127.0.0.1:8000")
    parser.add_argument("key", help="an API key that reads the whole region (read:all)")
    parser.add_argument("--loads", type=int, default=10)
    args = parser.parse_args(argv)
    for figure in measure(args.base_url.rstrip("/"), args.key, loads=args.loads):
        print(f"{figure.label}: {figure.value:,.0f} ms (bound {figure.bound:,.0f} ms; {figure.notes})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
