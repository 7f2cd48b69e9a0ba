"""Approvals in the store: the archive of officer actions (``approval_actions``, written by the
``approvals`` processor from the log: approval actions, and data-quality flags marked checked, whose
``approval_id`` column holds the flag's id) and the live visit-log chain rows an approval is compared
with. The rules are ``services/domain/approvals.py``'s and ``flag_checks.py``'s; this module only reads
and writes rows."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from datetime import date
from typing import Any, TypeVar, get_args

from services.domain import flag_checks
from services.domain.activity_chains import DIMENSIONS
from services.domain.approvals import VALUES, Action, ApprovalAction, Approvals, ChainRow
from services.domain.chain_rows import ACTIVITY_VALUES
from services.domain.events import Scheme
from services.domain.periods import month_end
from services.store import rollups
from services.store.clickhouse import AreaFilter, Store

TABLE = "approval_actions"
COLUMNS = ["action_id", "position", "approval_id", "action", "scheme", "province", "body"]


Folded = TypeVar("Folded")
Derived = TypeVar("Derived")
_DERIVED = 256  # results kept per state of the approvals (a figure's: up to a province-quarter's rows)


def _row(position: int, action: ApprovalAction | flag_checks.FlagCheck) -> list[Any]:
    if isinstance(action, flag_checks.FlagCheck):
        return [action.action_id, position, action.flag_id, action.action, "legacy", action.province,
                action.model_dump_json()]
    return [action.action_id, position, action.approval_id, action.action, action.scheme, action.province,
            action.model_dump_json()]


def write_actions(store: Store, actions: Sequence[tuple[int, ApprovalAction | flag_checks.FlagCheck]]) -> int:
    return store.insert_rows(TABLE, COLUMNS, [_row(position, a) for position, a in actions])


class ApprovalReader:
    """The approvals and the flags' marks as the log made them, each folded once per change of the
    archive."""

    def __init__(self, store: Store, mapping: dict[str, str]):
        self.store, self.mapping = store, mapping
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[tuple[Any, ...], Any]] = {}
        self._derived: dict[Hashable, tuple[Approvals, Any]] = {}  # key → (the approvals it came from, result)

    def _folded(self, kinds: tuple[str, ...], fold: Callable[[list[str]], Folded]) -> Folded:
        """``fold`` of the bodies of the actions of ``kinds``, in log order (an action written twice: once,
        at its first position)."""
        version = self.store.table_version(TABLE)
        name = kinds[0]
        with self._lock:
            cached = self._cached.get(name)
            if cached is not None and cached[0] == version:
                return cached[1]
        rows = self.store.select(f"SELECT any(body) AS body, min(position) AS first FROM {TABLE} "
                                 "WHERE action IN {kinds:Array(String)} GROUP BY action_id ORDER BY first",
                                 {"kinds": list(kinds)})
        folded = fold([r["body"] for r in rows])
        with self._lock:
            self._cached[name] = (version, folded)
        return folded

    def approvals(self) -> Approvals:
        return self._folded(get_args(Action), lambda bodies: Approvals.fold(
            (ApprovalAction.model_validate_json(b) for b in bodies), self.mapping))

    def derived(self, approvals: Approvals, key: Hashable, compute: Callable[[], Derived]) -> Derived:
        """``compute()``, a result of ``approvals`` (as ``approvals()`` folded them: a figure's approved
        rows and their sums), once while they stand: a new action folds new approvals, and the
        results of the old ones are not used again."""
        with self._lock:
            found = self._derived.get(key)
        if found is not None and found[0] is approvals:
            return found[1]
        result = compute()
        with self._lock:
            if len(self._derived) >= _DERIVED:
                self._derived.clear()
            self._derived[key] = (approvals, result)
        return result

    def flag_marks(self) -> dict[str, flag_checks.Mark]:
        """flag_id → its standing "checked, correct" mark (``services/domain/flag_checks.py``)."""
        return self._folded(get_args(flag_checks.CheckAction), lambda bodies: flag_checks.fold(
            flag_checks.FlagCheck.model_validate_json(b) for b in bodies))

    def live_rows(self, area: AreaFilter, months: Sequence[date]) -> list[ChainRow]:
        """The visit-log chains counted now in ``area`` in ``months``: each chain's current row."""
        return self._current(rollups.VISITS, VALUES, (), area, months)

    def activity_rows(self, area: AreaFilter, months: Sequence[date]) -> list[ChainRow]:
        """The activity forms' chains counted now in ``area`` in ``months``: each chain's current row."""
        return self._current(rollups.ACTIVITIES, ACTIVITY_VALUES, ("event_type", *DIMENSIONS), area, months)

    def _current(self, family: rollups.Tables, values: tuple[str, ...], labels: tuple[str, ...], area: AreaFilter,
                 months: Sequence[date]) -> list[ChainRow]:
        if not months:
            return []
        first, last = min(months), max(months)
        plan = rollups.plan(area, first, month_end(last), "day", table=family.chains, family=family)
        newest = "(seq, sign)"
        # (aliases unlike the columns: the WHERE reads the columns)
        columns = ", ".join(f"argMax({c}, {newest}) AS now_{c}" for c in (
            "event_id", "library_id", "day", *_PLACE, *labels))
        sums = ", ".join(f"{plan.total(name)} AS {name}" for name in values)
        rows = self.store.select(f"SELECT root_id, {columns}, {sums} FROM {plan.table} WHERE {plan.where} "
                                 "GROUP BY root_id HAVING reports > 0 ORDER BY root_id", plan.params)
        wanted = set(months)
        return [ChainRow(root_id=r["root_id"], event_id=r["now_event_id"], day=r["now_day"],
                         library_id=r["now_library_id"], **{c: r[f"now_{c}"] for c in _PLACE},
                         **({"event_type": r["now_event_type"],
                             "labels": {d: r[f"now_{d}"] for d in DIMENSIONS}} if labels else {}),
                         counts={name: r[name] for name in values})
                for r in rows if r["now_day"].replace(day=1) in wanted]

    def province_rows(self, scheme: Scheme, province: str, months: Sequence[date]) -> list[ChainRow]:
        """Every report chain (visit logs and activity forms) counted now in the province and months:
        what an approval snapshots and its queue compares with."""
        area = AreaFilter(scheme, province)
        return [*self.live_rows(area, months), *self.activity_rows(area, months)]


_PLACE = ("province_legacy", "commune_legacy", "province_2025", "commune_2025")
