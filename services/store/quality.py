"""Data-quality flags in the store (``quality_flags``, ``schemas/clickhouse/016_quality_flags.sql``):
what the ``quality`` processor reads to evaluate a library's months, writes, and what
``GET /v1/data-quality`` lists. The rules are ``services/domain/quality.py``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.domain.flag_checks import fingerprint
from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.periods import add_months
from services.domain.quality import HISTORY_MONTHS, ChainFacts, Flag
from services.domain.reference import Reference
from services.domain.registry import registry_at
from services.store.aggregates import read_registry_changes
from services.store.clickhouse import AreaFilter, Store, aware, string_list
from services.store.rollups import CHAINS

Ranges = Mapping[str, tuple[date, date | None]]  # library → (first month, last month or None: every later)
FLAG_COLUMNS = ["library_id", "month", "rule", "holds", "province_legacy", "commune_legacy", "province_2025",
                "commune_2025", "message_vi", "message_en", "figures", "root_ids", "instance_ids", "seq"]


def _range_clause(ranges: Ranges, column: str, before: int = 0) -> tuple[str, dict[str, Any]]:
    """``(library_id, column)`` within each library's range (its first month ``before`` months earlier)."""
    ids, params = string_list("q_ids", list(ranges))
    firsts, first_params = string_list("q_firsts", [add_months(f, -before).isoformat() for f, _ in ranges.values()])
    lasts, last_params = string_list("q_lasts", [(add_months(last, 1) if last else date(9999, 1, 1)).isoformat()
                                                 for _, last in ranges.values()])
    pick = f"indexOf({ids}, toString(library_id))"
    clause = (f"library_id IN (SELECT arrayJoin({ids})) AND {column} >= toDate(arrayElement({firsts}, {pick})) "
              f"AND {column} < toDate(arrayElement({lasts}, {pick}))")
    return clause, params | first_params | last_params


def chains(store: Store, ranges: Ranges) -> dict[str, list[ChainFacts]]:
    """Each library's counted visit-log chains in its range and the ``HISTORY_MONTHS`` before it."""
    if not ranges:
        return {}
    clause, params = _range_clause(ranges, "day", HISTORY_MONTHS)
    rows = store.read(
        "SELECT root_id, event_id, library_id, day, first_reported_at, province_legacy, commune_legacy, "
        f"province_2025, commune_2025, {', '.join(COUNT_FIELDS)} FROM {CHAINS} FINAL "
        f"WHERE sign = 1 AND counted AND {clause}", params)
    found: dict[str, list[ChainFacts]] = {}
    for row in rows:
        first = row["first_reported_at"]
        found.setdefault(row["library_id"], []).append(ChainFacts(
            row["root_id"], row["event_id"], row["library_id"], row["day"], {n: row[n] for n in COUNT_FIELDS},
            aware(first) if first is not None else None,
            (row["province_legacy"], row["commune_legacy"], row["province_2025"], row["commune_2025"])))
    return found


def stored_flags(store: Store, ranges: Ranges) -> dict[tuple[str, date, str], dict[str, Any]]:
    """The flags in the ranges as they stand, by (library, month, rule), with their ``seq``: those that no
    longer hold too, so that a flag raised again is written above them."""
    if not ranges:
        return {}
    clause, params = _range_clause(ranges, "month")
    rows = store.read(f"SELECT {', '.join(FLAG_COLUMNS)} FROM quality_flags FINAL WHERE {clause}", params)
    return {(row["library_id"], row["month"], row["rule"]): row for row in rows}


def operating_days(store: Store, reference: Reference) -> Callable[[str], Callable[[date], bool]]:
    """library → whether the registry (the reference and the registry form's chains) had it operating on a
    day. A library not yet registered at a day counts as operating from the opening date it was
    registered with."""
    changes = read_registry_changes(store.read)
    by_library: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        by_library.setdefault(change["library_id"], []).append(change)

    def of(library_id: str) -> Callable[[date], bool]:
        own = by_library.get(library_id, [])
        known = [lib for lib in reference.libraries.values() if lib.library_id == library_id]
        latest = registry_at(known, own, date.max).get(library_id)

        def operating(day: date) -> bool:
            at = registry_at(known, own, day).get(library_id)
            if at is None:
                return latest is not None and latest.opened_on is not None and latest.opened_on <= day
            return at.operating_on(day)
        return operating
    return of


def flag_row(flag: Flag, holds: bool, seq: int) -> list[Any]:
    return [flag.library_id, flag.month, flag.rule, int(holds), *flag.areas, flag.message_vi, flag.message_en,
            json.dumps(flag.figures, ensure_ascii=False, sort_keys=True), list(flag.root_ids),
            list(flag.instance_ids), seq]


def write_flags(store: Store, rows: Sequence[Sequence[Any]]) -> int:
    return store.insert_rows("quality_flags", FLAG_COLUMNS, rows)


@dataclass(frozen=True)
class FlagQuery:
    area: AreaFilter
    start: date
    end: date
    rules: tuple[str, ...] | None = None


def flags(store: Store, q: FlagQuery) -> list[dict[str, Any]]:
    """The flags that hold for libraries of the area whose month overlaps the period, by library,
    month and rule (``flag_id`` = ``library_id/YYYY-MM/rule``, the key pages are cut by), each with its
    ``fingerprint`` (what a "checked" mark is given to)."""
    where, params = q.area.where()
    clauses = ["holds", "month BETWEEN toStartOfMonth({start:Date}) AND {end:Date}", *where]
    params |= {"start": q.start, "end": q.end}
    if q.rules is not None:
        clauses.append("rule IN {rules:Array(String)}")
        params["rules"] = list(q.rules)
    rows = store.select(
        "SELECT library_id, month, rule, message_vi, message_en, figures, root_ids, instance_ids, province_legacy, "
        f"commune_legacy, province_2025, commune_2025 FROM quality_flags FINAL WHERE {' AND '.join(clauses)}", params)
    for row in rows:
        row["month"] = f"{row['month']:%Y-%m}"
        row["flag_id"] = f"{row['library_id']}/{row['month']}/{row['rule']}"
        row["figures"] = json.loads(row["figures"])
        row["reports"] = len(row["root_ids"])
        row["fingerprint"] = fingerprint(row["figures"], row["instance_ids"])
    rows.sort(key=lambda row: row["flag_id"])
    return rows


def flag(store: Store, library_id: str, month: date, rule: str) -> dict[str, Any] | None:
    """One flag that holds (as ``flags`` lists it), or None."""
    found = flags(store, FlagQuery(AreaFilter("legacy", library_id=library_id), month, month, (rule,)))
    return found[0] if found else None
