"""The store: one module for both ClickHouse in process (chDB) and a ClickHouse server.

``STORE_DSN=chdb://PATH`` opens the embedded engine on a data directory (one process
owns a directory: chDB locks it); ``http(s)://HOST:8123/DB`` talks to a server. Both are
clickhouse-connect clients with the same API, so nothing above this module knows which.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import clickhouse_connect
from pydantic import BaseModel

from services.config import TIMEZONE
from services.domain.dead_letters import DeadLetter, Rejection
from services.domain.events import SCHEMES, Envelope, Scheme
from services.domain.report_chains import ChainChange, ChainKind, ReportChain
from services.domain.rotation import REASON_CODE as ROTATION_INVALID
from services.store.migrations import migrate

_CLOSED_BY_PROCESSOR = f"'{ROTATION_INVALID}'"  # reason codes of dead letters only their processor resolves
_DEAD_LETTER_COLUMNS = ["dead_letter_id", "stage", "reason_code", "reason_vi", "reason_en", "instance_id", "form_id",
                        "library_id", "submitter", "content_hash", "raw_xml", "event_json", "recorded_at"]
REJECTION_COLUMNS = ["rejection_id", "form_id", "instance_id", "status", "reason_code", "reason_vi", "reason_en",
                     "submitter", "received_at"]
_EVENT_COLUMNS = ["event_id", "root_id", "deprecated_id", "event_type", "form_id", "form_version", "library_id",
                  "occurred_on", "submitted_at", "source", "submitter", "content_hash", "province_legacy",
                  "commune_legacy", "province_2025", "commune_2025", "payload", "version"]
# A report chain's row (``visit_chain_rows``, ``activity_chain_rows``): these, its kind's values, then the tail.
_CHAIN_HEAD = ["root_id", "event_id", "event_type", "submitted_at", "position", "counted", "library_id", "day",
               "province_legacy", "commune_legacy", "province_2025", "commune_2025"]
_CHAIN_TAIL = ["first_reported_at", "version_ids", "version_hashes", "seq", "history"]


def chain_columns(kind: ChainKind) -> list[str]:
    return [*_CHAIN_HEAD, *kind.columns, *_CHAIN_TAIL]


def normalise_dsn(dsn: str) -> str:
    """``chdb://var/store`` (relative) → ``chdb:///abs/var/store``; the directory is created."""
    if dsn.startswith("chdb://") and not dsn.startswith("chdb:///") and dsn not in ("chdb://memory",):
        path = Path(dsn.removeprefix("chdb://")).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return f"chdb://{path}"
    if dsn.startswith("chdb:///"):
        Path(dsn.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
    return dsn


def string_list(name: str, values: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Thousands of strings (library ids) as one query parameter: joined by commas and split in the
    store, which costs a fraction of an Array parameter (the client spells that out value by value
    and the server parses each literal: ~100 ms for 5,000 ids); an Array when a value has a comma."""
    if any("," in value for value in values):
        return f"{{{name}:Array(String)}}", {name: list(values)}
    return f"splitByChar(',', {{{name}:String}})", {name: ",".join(values)}


def area_column(level: Literal["province", "commune"], scheme: Scheme) -> str:
    """The column of ``level`` codes under ``scheme`` in every table that has areas (``province_legacy``,
    ``commune_2025``…). It names a column in SQL: only the two schemes pass, never other text."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}")
    return f"{level}_{scheme}"


@dataclass(frozen=True)
class AreaFilter:
    """An area under one scheme: the region (no codes), a province, a commune or one library; and,
    when ``library_ids`` is given, only those libraries of it (the libraries of a type)."""

    scheme: Scheme
    province_code: str | None = None
    commune_code: str | None = None
    library_id: str | None = None
    library_ids: tuple[str, ...] | None = None

    @property
    def by_library(self) -> bool:
        """Whether the area is narrowed to some libraries: then only tables with a ``library_id`` can
        answer for it."""
        return self.library_id is not None or self.library_ids is not None

    def where(self) -> tuple[list[str], dict[str, Any]]:
        """SQL conditions on the tables' ``province_<scheme>``/``commune_<scheme>``/``library_id`` columns."""
        clauses, params = [], {}
        for column, value, name in ((area_column("province", self.scheme), self.province_code, "province"),
                                    (area_column("commune", self.scheme), self.commune_code, "commune"),
                                    ("library_id", self.library_id, "library")):
            if value:
                clauses.append(f"{column} = {{{name}:String}}")
                params[name] = value
        if self.library_ids is not None:
            ids, values = string_list("typed_library_ids", self.library_ids)
            clauses.append(f"library_id IN (SELECT arrayJoin({ids}))")
            params |= values
        return clauses, params

    def contains(self, areas: Sequence[Any], library_id: str) -> bool:
        """Whether a library (its areas, one per scheme) lies in this area."""
        if (self.library_id and library_id != self.library_id) or (
                self.library_ids is not None and library_id not in self.library_ids):
            return False
        area = next((a for a in areas if a.scheme == self.scheme), None)
        if area is None:
            return False
        return (not self.province_code or area.province_code == self.province_code) and (
            not self.commune_code or area.commune_code == self.commune_code)

    def row_contains(self, row: Mapping[str, Any]) -> bool:
        """Whether a row with a ``library_id`` and area columns (``province_<scheme>``…) lies in this area."""
        return ((not self.library_id or row["library_id"] == self.library_id)
                and (self.library_ids is None or row["library_id"] in self.library_ids)
                and (not self.province_code or row[area_column("province", self.scheme)] == self.province_code)
                and (not self.commune_code or row[area_column("commune", self.scheme)] == self.commune_code))


def _payload_json(payload: Any) -> str:
    """An event's payload as JSON (a form's pydantic model, or a plain dict)."""
    if isinstance(payload, BaseModel):
        return payload.model_dump_json()
    return json.dumps(payload, ensure_ascii=False, default=str)


def _chain_row(c: ReportChain, kind: ChainKind, sign: int) -> list[Any]:
    return [c.root_id, c.event_id, c.event_type, c.submitted_at, c.position, int(c.counted), c.library_id, c.day,
            c.province_legacy, c.commune_legacy, c.province_2025, c.commune_2025,
            *(c.values.get(name, kind.empty[name]) for name in kind.columns), c.first_reported_at, list(c.versions),
            list(c.versions.values()), c.seq,
            [(h.event_id, int(h.retraction), h.accepted_at, h.submitter, h.source, h.reason_code, h.reason)
             for h in c.history], sign]


def _retried_safely(data: list[list[Any]]) -> dict[str, Any]:
    """The settings that make a chain write, retried after a partial failure, count once: a token
    made from its rows (a chain's ``seq`` grows with every change, so two different writes never
    share one), checked by the chain rows and by each view's table (migration 019)."""
    digest = hashlib.sha256(json.dumps(data, default=str, ensure_ascii=False).encode("utf-8")).hexdigest()
    return {"insert_deduplication_token": digest, "deduplicate_blocks_in_dependent_materialized_views": 1}


def aware(value: datetime) -> datetime:
    """A DateTime64 read back, in Asia/Ho_Chi_Minh (the client may hand it back naive, in UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC).astimezone(TIMEZONE)
    return value.astimezone(TIMEZONE)


class Store:
    def __init__(self, dsn: str):
        self.dsn = normalise_dsn(dsn)
        self._client = clickhouse_connect.get_client(dsn=self.dsn)
        # One chDB engine per process, shared by the intake, processor and query threads.
        self._lock = threading.Lock()
        # Called before every ``select`` (the embedded stack: wait until the processors have folded
        # what was accepted before the read). The processors' own reads (``chains``) skip it.
        self.read_barrier: Callable[[], object] | None = None

    def migrate(self) -> list[int]:
        with self._lock:
            return migrate(self._client)

    def tables(self) -> list[str]:
        return [row["name"] for row in self.select("SHOW TABLES", {})]

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def write_chains(self, table: str, kind: ChainKind, changes: Iterable[tuple[ReportChain | None, ReportChain]]
                     ) -> int:
        """Each changed chain as (the row the store held, or None; its new row), in one insert: the
        held row again with sign -1 (cancelling it), the new one with sign +1. The rollups' views add
        exactly that difference (``schemas/clickhouse/012_visit_rollups.sql``)."""
        data = [_chain_row(chain, kind, sign) for before, after in changes
                for chain, sign in ((before, -1), (after, 1)) if chain is not None]
        if data:
            with self._lock:
                self._client.insert(table, data, column_names=[*chain_columns(kind), "sign"],
                                    settings=_retried_safely(data))
        return len(data)

    def rebuild_rollups(self) -> list[str]:
        """Every table a materialized view feeds (``<table>_mv``), emptied and filled again from the
        view's source rows with the view's own SELECT. ClickHouse does not make an insert and its
        views one: a process killed between them (chDB in the dying process) leaves a rollup short.
        Only while nothing else writes: the runners call it at start, after such a crash."""
        views = self.select("SELECT name, as_select FROM system.tables WHERE database = currentDatabase() "
                            "AND engine = 'MaterializedView' ORDER BY name")
        rebuilt = []
        for view in views:
            target = view["name"].removesuffix("_mv")
            with self._lock:
                self._client.command(f"TRUNCATE TABLE {target}")
                # (every row again, whatever blocks the table remembers: migration 019)
                self._client.command(f"INSERT INTO {target} {view['as_select']} SETTINGS insert_deduplicate = 0")
            rebuilt.append(target)
        return rebuilt

    def existing_roots(self, table: str, root_ids: Iterable[str]) -> set[str]:
        """Which of these chains have a row in ``table``: reads the sort key only, not the rows."""
        wanted = list(root_ids)
        if not wanted:
            return set()
        with self._lock:
            result = self._client.query(f"SELECT DISTINCT root_id FROM {table} WHERE root_id IN {{ids:Array(String)}}",
                                        parameters={"ids": wanted})
        return {row[0] for row in result.result_rows}

    def chains(self, table: str, kind: ChainKind, root_ids: Iterable[str]) -> dict[str, ReportChain]:
        """The chains with these root ids as they stand (a report-chain processor's state)."""
        wanted = list(root_ids)
        if not wanted:
            return {}
        with self._lock:
            result = self._client.query(
                f"SELECT {', '.join(chain_columns(kind))} FROM {table} FINAL "
                "WHERE root_id IN {ids:Array(String)} AND sign = 1",
                parameters={"ids": wanted})
        head, n = len(_CHAIN_HEAD), len(kind.columns)
        chains = {}
        for row in result.result_rows:
            (root_id, event_id, event_type, submitted_at, position, counted, library_id, day, p_legacy, c_legacy,
             p_2025, c_2025), values, (first, ids, hashes, seq, history) = (
                row[:head], row[head:head + n], row[head + n:])
            chains[root_id] = ReportChain(
                root_id=root_id, event_id=event_id, event_type=event_type, submitted_at=aware(submitted_at),
                position=position, counted=bool(counted), library_id=library_id, day=day, province_legacy=p_legacy,
                commune_legacy=c_legacy, province_2025=p_2025, commune_2025=c_2025,
                values=dict(zip(kind.columns, values, strict=True)),
                first_reported_at=aware(first) if first is not None else None,
                versions=dict(zip(ids, hashes, strict=True)), seq=seq,
                history=tuple(ChainChange(**{**change, "retraction": bool(change["retraction"]),
                                             "accepted_at": aware(change["accepted_at"])}) for change in history))
        return chains

    def load_state(self, processor: str, keys: Iterable[str]) -> dict[str, tuple[dict[str, Any], int]]:
        """A processor's state at ``keys`` as it stands: key → (value, seq); missing keys are left out."""
        wanted = list(keys)
        if not wanted:
            return {}
        with self._lock:
            result = self._client.query(
                "SELECT key, value, seq FROM processor_state FINAL "
                "WHERE processor = {p:String} AND key IN {keys:Array(String)}",
                parameters={"p": processor, "keys": wanted})
        return {key: (json.loads(value), seq) for key, value, seq in result.result_rows}

    def save_state(self, processor: str, entries: Iterable[tuple[str, dict[str, Any], int]]) -> int:
        rows = [[processor, key, json.dumps(value, ensure_ascii=False), seq] for key, value, seq in entries]
        return self.insert_rows("processor_state", ["processor", "key", "value", "seq"], rows)

    def record_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        rows = [[getattr(letter, c) for c in _DEAD_LETTER_COLUMNS] for letter in letters]
        if rows:
            with self._lock:
                self._client.insert("dead_letters", rows, column_names=_DEAD_LETTER_COLUMNS)
        return len(rows)

    def record_rejections(self, rejections: Sequence[Rejection]) -> int:
        return self.insert_rows("rejections", REJECTION_COLUMNS,
                                [[getattr(r, c) for c in REJECTION_COLUMNS] for r in rejections])

    def insert_events(self, events: Sequence[tuple[int, Envelope]]) -> int:
        rows = []
        for position, e in events:
            legacy, current = e.area("legacy"), e.area("2025")
            rows.append([e.event_id, e.root_id, e.deprecated_id or "", e.event_type, e.form_id, e.form_version,
                         e.library_id, e.occurred_on, e.submitted_at, e.source, e.submitter, e.content_hash,
                         legacy.province_code, legacy.commune_code, current.province_code, current.commune_code,
                         _payload_json(e.payload), position])
        if rows:
            with self._lock:
                self._client.insert("events", rows, column_names=_EVENT_COLUMNS)
        return len(rows)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE event_type = {t:String}", {"t": event_type}) if event_type else ("", {})
        return self.select(f"SELECT * FROM events FINAL {where} ORDER BY submitted_at, event_id", params)

    def dead_letters(self, open_only: bool = True, limit: int = 1000) -> list[dict[str, Any]]:
        """Dead letters, newest first; open ones have no accepted event with the same id and answers,
        and were not closed by their processor (``resolved`` column, migration 007)."""
        redriven = ("(instance_id, content_hash) IN (SELECT event_id, content_hash FROM events FINAL)")
        # A letter about an accepted event (a rotation movement that does not fit its batch) is
        # closed by its processor only: that its event is archived says nothing.
        resolved = (f"(dead_letters.resolved = 1 OR (reason_code NOT IN ({_CLOSED_BY_PROCESSOR}) AND {redriven}))")
        where = f"WHERE NOT {resolved}" if open_only else ""
        return self.select(
            f"SELECT * EXCEPT (resolved), {resolved} AS resolved FROM dead_letters FINAL {where} "
            "ORDER BY recorded_at DESC LIMIT {limit:UInt32}", {"limit": limit})

    def rejections(self, form_id: str | None, reason_code: str | None, limit: int) -> list[dict[str, Any]]:
        """The intake's recorded rejections, newest first, of one form and one reason when given."""
        clauses, params = [], {"limit": limit}
        for column, value in (("form_id", form_id), ("reason_code", reason_code)):
            if value:
                clauses.append(f"{column} = {{{column}:String}}")
                params[column] = value
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.select(f"SELECT {', '.join(REJECTION_COLUMNS)} FROM rejections FINAL {where} "
                           "ORDER BY received_at DESC, rejection_id LIMIT {limit:UInt32}", params)

    def table_version(self, table: str) -> tuple[Any, ...]:
        """What changes whenever ``table``'s rows may have: its active parts (every insert makes one;
        a merge replaces some). Cheap: read from ``system.parts``, not from the table."""
        row = self.select(
            "SELECT count() AS parts, sum(rows) AS rows, max(modification_time) AS modified, "
            "groupBitXor(cityHash64(name)) AS names FROM system.parts "
            "WHERE database = currentDatabase() AND table = {t:String} AND active", {"t": table})[0]
        return tuple(row.values())

    def select(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a parameterised query (``{name:Type}`` placeholders), as dicts."""
        if self.read_barrier is not None:
            self.read_barrier()
        with self._lock:
            result = self._client.query(sql, parameters=params or {})
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def read(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """``select`` for the processors' own reads: without the read barrier (which waits for them)."""
        with self._lock:
            result = self._client.query(sql, parameters=params or {})
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        if rows:
            with self._lock:
                self._client.insert(table, list(rows), column_names=list(columns))
        return len(rows)
