"""Approvals in the store: the archive of approval actions (``approval_actions``, written by the
``approvals`` processor from the log) and the live visit-log chain rows an approval is compared with.
The rules are ``services/domain/approvals.py``'s; this module only reads and writes rows."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from services.domain.approvals import VALUES, ApprovalAction, Approvals, ChainRow
from services.domain.events import Scheme
from services.store import rollups
from services.store.clickhouse import AreaFilter, Store

TABLE = "approval_actions"
COLUMNS = ["action_id", "position", "approval_id", "action", "scheme", "province", "body"]


def write_actions(store: Store, actions: Sequence[tuple[int, ApprovalAction]]) -> int:
    return store.insert_rows(TABLE, COLUMNS, [[a.action_id, position, a.approval_id, a.action, a.scheme, a.province,
                                               a.model_dump_json()] for position, a in actions])


class ApprovalReader:
    """The approvals as the log made them, folded once per change of the archive."""

    def __init__(self, store: Store, mapping: dict[str, str]):
        self.store, self.mapping = store, mapping
        self._lock = threading.Lock()
        self._cached: tuple[tuple[Any, ...], Approvals] | None = None

    def approvals(self) -> Approvals:
        version = self.store.table_version(TABLE)
        with self._lock:
            if self._cached is not None and self._cached[0] == version:
                return self._cached[1]
        rows = self.store.select(f"SELECT any(body) AS body, min(position) AS first FROM {TABLE} "
                                 "GROUP BY action_id ORDER BY first")
        folded = Approvals.fold((ApprovalAction.model_validate_json(r["body"]) for r in rows), self.mapping)
        with self._lock:
            self._cached = (version, folded)
        return folded

    def live_rows(self, area: AreaFilter, months: Sequence[date]) -> list[ChainRow]:
        """The visit-log chains counted now in ``area`` in ``months``: each chain's current row."""
        if not months:
            return []
        first, last = min(months), max(months)
        end = date(last.year + last.month // 12, last.month % 12 + 1, 1) - timedelta(days=1)
        plan = rollups.plan(area, first, end, "day", table=rollups.CHAINS)
        newest = "(seq, sign)"
        # (aliases unlike the columns: the WHERE reads the columns)
        columns = ", ".join(f"argMax({c}, {newest}) AS now_{c}" for c in (
            "event_id", "library_id", "day", "province_legacy", "commune_legacy", "province_2025", "commune_2025"))
        sums = ", ".join(f"{plan.total(name)} AS {name}" for name in VALUES)
        rows = self.store.select(f"SELECT root_id, {columns}, {sums} FROM {plan.table} WHERE {plan.where} "
                                 "GROUP BY root_id HAVING reports > 0 ORDER BY root_id", plan.params)
        wanted = set(months)
        return [ChainRow(root_id=r["root_id"], event_id=r["now_event_id"], day=r["now_day"],
                         library_id=r["now_library_id"], province_legacy=r["now_province_legacy"],
                         commune_legacy=r["now_commune_legacy"], province_2025=r["now_province_2025"],
                         commune_2025=r["now_commune_2025"], counts={name: r[name] for name in VALUES})
                for r in rows if r["now_day"].replace(day=1) in wanted]

    def province_rows(self, scheme: Scheme, province: str, months: Sequence[date]) -> list[ChainRow]:
        return self.live_rows(AreaFilter(scheme, province), months)
