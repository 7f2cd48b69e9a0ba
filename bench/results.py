"""Figures and how they are written: ``bench/results/<time>.json`` and ``.md``, ``latest.md``,
and the README's table between the ``bench:start`` / ``bench:end`` markers."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from services.config import REPO_ROOT, TIMEZONE

RESULTS_DIR = REPO_ROOT / "bench" / "results"
README = REPO_ROOT / "README.md"


@dataclass
class Figure:
    """One measured figure, with the upper bound measured beside it in the same run (if any)."""

    name: str  # stable key, e.g. "intake.submissions_per_s"
    label: str  # what a reader sees, e.g. "intake: OpenRosa submissions/s"
    value: float
    unit: str
    bound: float | None = None  # the upper bound's value, same unit
    bound_label: str = ""
    goal: str = ""  # as the issue states it, e.g. "≥ 1,000/s; ≥ 50 % of the bound"
    met: bool | None = None  # None: no goal
    notes: str = ""
    details: dict[str, object] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.bound in (None, 0):
            return None
        return self.value / self.bound  # type: ignore[operator]


@dataclass
class Run:
    scale: str
    machine: dict[str, object]
    started_at: str = field(default_factory=lambda: datetime.now(TIMEZONE).isoformat(timespec="seconds"))
    figures: list[Figure] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # benchmark → what stopped it


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def markdown(run: Run) -> str:
    m = run.machine
    lines = [
        f"Measured {run.started_at} (scale `{run.scale}`, commit `{m.get('commit')}`) on {m.get('cpu')}, "
        f"{m.get('cores')} cores, {m.get('memory_gib')} GiB, {m.get('os')}, Python {m.get('python')}, "
        f"chDB {m.get('chdb')}, faust-streaming {m.get('faust_streaming')}.",
        "",
        "| figure | measured | upper bound (same run) | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in run.figures:
        ratio = f"{f.ratio:.0%}" if f.ratio is not None else "—"
        bound = f"{_number(f.bound, f.unit)} ({f.bound_label})" if f.bound is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[f.met]
        lines.append(f"| {f.label} | {_number(f.value, f.unit)} | {bound} | {ratio} | {f.goal or '—'} | {met} |")
    notes = [f"- {f.label}: {f.notes}" for f in run.figures if f.notes]
    if notes:
        lines += ["", *notes]
    if run.errors:
        lines += ["", "Benchmarks that did not finish:", *[f"- `{k}`: {v}" for k, v in run.errors.items()]]
    return "\n".join(lines) + "\n"


def write(run: Run, update_readme: bool = True) -> Path:
    """The run as JSON and Markdown; with ``update_readme`` (a whole run) also ``latest.md`` and README's table."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = run.started_at.replace(":", "").replace("+0700", "")
    data = {"scale": run.scale, "machine": run.machine, "started_at": run.started_at, "errors": run.errors,
            "figures": [asdict(f) | {"ratio": f.ratio} for f in run.figures]}
    (RESULTS_DIR / f"{stamp}.json").write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", "utf-8")
    table = markdown(run)
    (RESULTS_DIR / f"{stamp}.md").write_text(table, "utf-8")
    if not update_readme:
        return RESULTS_DIR / f"{stamp}.md"
    (RESULTS_DIR / "latest.md").write_text(table, "utf-8")
    if README.exists():
        text = README.read_text("utf-8")
        block = re.compile(r"(<!-- bench:start -->\n).*?(<!-- bench:end -->)", re.S)
        if block.search(text):
            README.write_text(block.sub(lambda mt: mt.group(1) + table + mt.group(2), text), "utf-8")
    return RESULTS_DIR / f"{stamp}.md"
