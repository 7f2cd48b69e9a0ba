"""The state of the ODK Central pull, one model for every reader: the poller writes it, the query API
(``GET /v1/central-pull``), ``thuvien doctor``, ``/metrics`` and the dashboard's operator panel read it.

Where it lives, and why: a small JSON file per (project, form) beside that form's cursor,
``STATE_DIR/central/PROJECT-FORM.state.json``, replaced atomically after each poll (and at its
start). One writer per form (its poller), so no locking; the cursor's directory is already the
pull's own. Embedded, the query API and the poller share one process and one ``STATE_DIR``.
Distributed, ``central-pull`` is another container: the query service mounts the same volume
read-only (``docker-compose.yml``). ``thuvien doctor`` reads it even while a running stack holds
chDB — a store table could not be read then, and the query service does not reach the
intake's PostgreSQL ledger.

Times are written in Asia/Ho_Chi_Minh (ISO 8601 with the offset); a poll's times are this
host's clock, a row's (``newest_row_at``, ``cursors``) Central's.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from services.clock import now_local
from services.config import TIMEZONE

log = logging.getLogger(__name__)

SUFFIX = ".state.json"
OUTCOMES = ("accepted", "replaced", "duplicates", "held", "rejected", "retracted", "retract_noop", "reinstated")
# Lagging: nothing handled and no complete poll for this many poll intervals, and at least LAGGING_FLOOR_S
# (a poll of a large backlog takes a while; the Prometheus alert waits an hour).
LAGGING_INTERVALS = 3
LAGGING_FLOOR_S = 600.0


def _stamp(at: datetime | None) -> str | None:
    return at.astimezone(TIMEZONE).isoformat(timespec="milliseconds") if at else None


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass
class PullState:
    project_id: int
    form_id: str
    central_url: str = ""  # the server's base URL (never its credentials)
    polls: int = 0  # polls finished since the state was first written
    failed_polls: int = 0  # of which stopped early (the cursor kept before the failing row)
    last_poll_started: str | None = None
    last_poll_ended: str | None = None
    last_complete_poll_started: str | None = None  # everything Central had then is handled
    newest_row_at: str | None = None  # Central's time of the newest row handled
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))  # versions, by outcome
    cursors: dict[str, str | None] = field(default_factory=dict)  # stream → newest timestamp handled (Central's)
    backlog: dict[str, int] = field(default_factory=dict)  # stream → rows from the bound at the last poll's start
    last_error: str | None = None  # why the last poll stopped early; None when it completed
    last_error_at: str | None = None  # when a poll last stopped early (kept after a complete one)

    # -- what the poller records ----------------------------------------------------------

    def started(self, at: datetime) -> None:
        self.last_poll_started = _stamp(at)

    def ended(self, at: datetime, *, complete: bool, error: str | None) -> None:
        self.polls += 1
        self.last_poll_ended = _stamp(at)
        if complete:
            self.last_complete_poll_started, self.last_error = self.last_poll_started, None
        else:
            self.failed_polls += 1
            self.last_error, self.last_error_at = error, _stamp(at)

    def handled(self, central_at: datetime) -> None:
        newest = _moment(self.newest_row_at)
        if newest is None or central_at > newest:
            self.newest_row_at = _stamp(central_at)

    # -- what readers derive ----------------------------------------------------------------

    def lag_seconds(self, now: datetime | None = None) -> float:
        """Now − the newest of: the newest row handled, the start of the last complete poll (NaN: neither yet)."""
        marks = [m for m in (_moment(self.newest_row_at), _moment(self.last_complete_poll_started)) if m]
        if not marks:
            return math.nan
        return max(0.0, ((now or now_local()) - max(marks)).total_seconds())

    def health(self, interval_s: float, now: datetime | None = None) -> tuple[bool, str]:
        """(ok, one line): not ok while the last poll failed, before any complete poll, or when lagging."""
        lag = self.lag_seconds(now)
        rows = sum(self.rows.values())
        where = f"project {self.project_id} form {self.form_id}"
        if self.last_error:
            return False, f"{where}: the last poll ({self.last_poll_ended}) stopped: {self.last_error}"
        if math.isnan(lag):
            return False, f"{where}: no complete poll yet" + (f" (started {self.last_poll_started})"
                                                               if self.last_poll_started else "")
        if lag > max(LAGGING_INTERVALS * interval_s, LAGGING_FLOOR_S):
            return False, (f"{where}: lagging {lag:.0f} s (more than {LAGGING_INTERVALS} poll intervals of "
                           f"{interval_s:g} s, and {LAGGING_FLOOR_S:g} s); last poll {self.last_poll_ended}")
        return True, f"{where}: last poll {self.last_poll_ended}, lag {lag:.0f} s, {rows} versions handled"

    def as_json(self, interval_s: float | None = None) -> dict[str, Any]:
        """What the API answers: the file's fields, the lag now and, given the interval, the verdict."""
        lag = self.lag_seconds()
        answer: dict[str, Any] = {**asdict(self), "lag_seconds": None if math.isnan(lag) else round(lag, 1)}
        if interval_s is not None:
            answer["ok"], answer["summary"] = self.health(interval_s)
        return answer

    # -- the file --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(asdict(self), out, ensure_ascii=False, indent=1, sort_keys=True)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, project_id: int, form_id: str) -> PullState:
        """The state in ``path``, or a new one (a file that does not parse is started afresh, and said so)."""
        try:
            data = json.loads(path.read_text("utf-8"))
            if (data.get("project_id"), data.get("form_id")) == (project_id, form_id):
                known = {f.name for f in fields(cls)}
                return cls(**{k: v for k, v in data.items() if k in known})
        except FileNotFoundError:
            pass
        except (ValueError, TypeError) as exc:
            log.warning("central pull state %s does not parse (%s): starting it afresh", path, exc)
        return cls(project_id, form_id)


def state_path(cursor_path: Path) -> Path:
    """The state file beside a cursor: ``3-visit_log.json`` → ``3-visit_log.state.json``."""
    return cursor_path.with_name(cursor_path.stem + SUFFIX)


def read_states(central_dir: Path) -> list[PullState]:
    """Every form's state under ``STATE_DIR/central`` (none when nothing was pulled), by project and form."""
    states = []
    for path in sorted(central_dir.glob("*" + SUFFIX)) if central_dir.is_dir() else []:
        try:
            data = json.loads(path.read_text("utf-8"))
            states.append(PullState.load(path, data["project_id"], data["form_id"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("central pull state %s cannot be read: %s", path, exc)
    return states
