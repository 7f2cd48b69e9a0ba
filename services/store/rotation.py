"""Book rotation in the store: writes of the rotation processor, and the reports of
schemas/AGGREGATES.md ("Book rotation") at a date D.

Tables (``schemas/clickhouse/006_rotation.sql``): ``rotation_batches`` (one row per batch, its
state from its valid movements) and ``rotation_movements`` (every current movement, valid or
not, with its reason). Reports at D read a batch as it stood at D by event time: dispatched,
received, returned if the date of that step is on or before D; copies lost and damaged from the
valid movements dated on or before D. A batch's area is its holder's (the library it was
dispatched to), under the scheme asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from services.domain.dead_letters import DeadLetter
from services.domain.events import Scheme
from services.domain.rotation import LetterChange, RotationBatchRow, RotationMovementRow
from services.store.clickhouse import AreaFilter, Store, area_column

BATCH_COLUMNS = ["batch_id", "status", "origin", "origin_province", "origin_library_id", "library_id",
                 "province_legacy", "commune_legacy", "province_2025", "commune_2025", "dispatched_on", "received_on",
                 "returned_on", "titles", "copies", "ethnic_language_copies", "copies_lost", "copies_damaged",
                 "valid_movements", "invalid_movements", "version"]
MOVEMENT_COLUMNS = ["batch_id", "root_id", "event_id", "movement", "library_id", "occurred_on", "submitted_at", "seq",
                    "valid", "reason_code", "reason_vi", "reason_en", "copies", "copies_lost", "copies_damaged",
                    "is_deleted", "version"]
_LETTER_COLUMNS = [name for name in DeadLetter.model_fields if name != "event_type"]


def _value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def upsert_batches(store: Store, rows: Sequence[RotationBatchRow]) -> int:
    return store.insert_rows("rotation_batches", BATCH_COLUMNS,
                             [[_value(getattr(r, c)) for c in BATCH_COLUMNS] for r in rows])


def upsert_movements(store: Store, rows: Sequence[RotationMovementRow]) -> int:
    return store.insert_rows("rotation_movements", MOVEMENT_COLUMNS,
                             [[_value(getattr(r, c)) for c in MOVEMENT_COLUMNS] for r in rows])


def record_letters(store: Store, changes: Sequence[LetterChange]) -> int:
    """Dead letters opened (``resolved = 0``) or closed (``resolved = 1``) by the rotation processor."""
    rows = [[getattr(c.letter, name) for name in _LETTER_COLUMNS] + [int(c.resolved)] for c in changes]
    return store.insert_rows("dead_letters", [*_LETTER_COLUMNS, "resolved"], rows)


# --- reading ---------------------------------------------------------------------------------------


def batch(store: Store, batch_id: str) -> dict[str, Any] | None:
    """One batch's row as it stands (all movements, whatever their date)."""
    rows = store.select("SELECT * FROM rotation_batches FINAL WHERE batch_id = {b:String}", {"b": batch_id})
    return rows[0] if rows else None


def movements(store: Store, batch_id: str) -> list[dict[str, Any]]:
    """A batch's current movements in walk order."""
    return store.select("SELECT * FROM rotation_movements FINAL WHERE batch_id = {b:String} ORDER BY seq",
                        {"b": batch_id})


def _as_of(area: AreaFilter, as_of: date) -> tuple[str, dict[str, Any]]:
    """Batches dispatched on or before D in ``area``, as they stood at D (columns ``*_at``)."""
    clauses, params = area.where()
    where = " AND ".join(["ifNull(dispatched_on <= {d:Date}, 0)", *clauses])
    sql = f"""
        SELECT batch_id, origin, origin_province, origin_library_id, library_id, province_legacy, commune_legacy,
               province_2025, commune_2025, titles, copies, ethnic_language_copies,
               dispatched_on AS dispatched_at,
               if(ifNull(received_on <= {{d:Date}}, 0), received_on, NULL) AS received_at,
               if(ifNull(returned_on <= {{d:Date}}, 0), returned_on, NULL) AS returned_at,
               multiIf(returned_at IS NOT NULL, 'returned', received_at IS NOT NULL, 'received',
                       'dispatched') AS status_at,
               if(received_at IS NULL, NULL,
                  dateDiff('day', received_at, ifNull(returned_at, {{d:Date}}))) AS days_held_at,
               ifNull(m.lost, 0) AS lost_at, ifNull(m.damaged, 0) AS damaged_at,
               greatest(toInt64(copies) - toInt64(lost_at), 0) AS left_at
        FROM (SELECT * FROM rotation_batches FINAL WHERE {where}) AS b
        LEFT JOIN (SELECT batch_id, sum(copies_lost) AS lost, sum(copies_damaged) AS damaged
                   FROM rotation_movements FINAL WHERE valid = 1 AND occurred_on <= {{d:Date}}
                   GROUP BY batch_id) AS m USING (batch_id)
        SETTINGS join_use_nulls = 1"""
    return sql, {**params, "d": as_of}


def batches(store: Store, area: AreaFilter, as_of: date) -> list[dict[str, Any]]:
    """Every batch of ``area`` dispatched on or before ``as_of``, as it stood then, by batch_id."""
    base, params = _as_of(area, as_of)
    return store.select(f"""
        SELECT batch_id, status_at AS status, origin, origin_province, origin_library_id, library_id,
               province_legacy, commune_legacy, province_2025, commune_2025, dispatched_at AS dispatched_on,
               received_at AS received_on, returned_at AS returned_on, titles, copies, ethnic_language_copies,
               lost_at AS copies_lost, damaged_at AS copies_damaged, days_held_at AS days_held
        FROM ({base}) ORDER BY batch_id""", params)


def on_hand_by_library(store: Store, area: AreaFilter, as_of: date) -> list[dict[str, Any]]:
    """Per holder library: batches received and not returned at ``as_of``, their copies (less those
    recorded lost), ethnic-language copies, and days held (summed over the batches, and the longest)."""
    base, params = _as_of(area, as_of)
    return store.select(f"""
        SELECT library_id, any(province_legacy) AS province_legacy, any(commune_legacy) AS commune_legacy,
               any(province_2025) AS province_2025, any(commune_2025) AS commune_2025,
               count() AS batches_on_hand, sum(left_at) AS copies_on_hand,
               sum(least(toInt64(ethnic_language_copies), left_at)) AS ethnic_language_copies_on_hand,
               sum(days_held_at) AS days_held, max(days_held_at) AS longest_held_days
        FROM ({base}) WHERE status_at = 'received'
        GROUP BY library_id ORDER BY library_id""", params)


def province_rotation(store: Store, scheme: Scheme, as_of: date, loan_days: int) -> list[dict[str, Any]]:
    """Per province of the holders (under ``scheme``) at ``as_of``: batches and copies dispatched so
    far, copies in circulation (dispatched or received, not returned; less those recorded lost),
    batches overdue (dispatched more than ``loan_days`` before ``as_of``, not returned), copies lost
    and damaged, loss rate = lost ÷ copies dispatched (None when nothing was dispatched)."""
    base, params = _as_of(AreaFilter(scheme), as_of)
    province = area_column("province", scheme)
    rows = store.select(f"""
        SELECT {province} AS province_code, count() AS batches_dispatched, sum(copies) AS copies_dispatched,
               countIf(status_at != 'returned') AS batches_in_circulation,
               sumIf(left_at, status_at != 'returned') AS copies_in_circulation,
               countIf(status_at != 'returned'
                       AND dateDiff('day', dispatched_at, {{d:Date}}) > {{loan:UInt32}}) AS batches_overdue,
               sum(lost_at) AS copies_lost, sum(damaged_at) AS copies_damaged
        FROM ({base}) GROUP BY province_code ORDER BY province_code""", {**params, "loan": loan_days})
    for row in rows:
        row["loss_rate"] = row["copies_lost"] / row["copies_dispatched"] if row["copies_dispatched"] else None
    return rows


def report_overdue(store: Store, loan_days: int, today: date | None = None) -> None:
    """Refresh the rotation_batches_overdue gauge (per 2025-scheme province) for Prometheus alerts."""
    from services import metrics
    from services.clock import today_local

    for row in province_rotation(store, "2025", today or today_local(), loan_days):
        metrics.ROTATION_OVERDUE.labels(province=row["province_code"]).set(row["batches_overdue"])
