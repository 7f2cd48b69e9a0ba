"""Compare the store's answers with the oracle's, for every aggregate and indicator."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from services.clock import today_local
from services.domain.activity_chains import DIMENSIONS, MEASURES
from services.domain.reference import default_reference
from services.store import rollups
from services.store.aggregates import Aggregates
from services.store.clickhouse import AreaFilter
from tests.oracle import Oracle

TODAY = today_local()
UNTIL = TODAY.replace(day=1) - timedelta(days=1)
AREAS = [AreaFilter("legacy"), AreaFilter("2025"), AreaFilter("legacy", "02"), AreaFilter("2025", "08"),
         AreaFilter("legacy", "24"), AreaFilter("2025", "24"), AreaFilter("legacy", "12")]


def _first_difference(store_rows: list[dict], oracle_rows: list[dict]) -> str:
    by_period = {r["period"]: r for r in oracle_rows}
    for row in store_rows:
        other = by_period.pop(row["period"], None)
        if row != other:
            return f"store {row} != oracle {other}"
    return f"oracle only: {list(by_period.values())[:1]}"


def compare(aggregates: Aggregates, oracle: Oracle, areas=AREAS) -> None:
    """Assert the store and the oracle agree on every aggregate and indicator, for each area."""
    reference = default_reference()
    some_library = sorted(reference.libraries)[0]
    lib_area = replace(AreaFilter("legacy"), library_id=some_library)
    commune = reference.libraries[some_library].area("2025")
    for area in [*areas, lib_area, AreaFilter("2025", commune.province_code, commune.commune_code)]:
        for granularity in ("day", "month", "quarter", "year"):
            # to today (days: the area-day rollup or the chains), and to the last whole month (any rollup)
            for start, end in ((date(2024, 1, 1), TODAY), (date(2024, 1, 1), UNTIL)):
                oracle_rows = oracle.visits(area, start, end, granularity)
                for table in rollups.candidates(area, start, end, granularity):  # each answers alike
                    store_rows = aggregates.visits(area, start, end, granularity, table=table)
                    assert store_rows == oracle_rows, (area, granularity, table,
                                                       _first_difference(store_rows, oracle_rows))
        for name in ("mobile_sessions", "reading_promotion", "training", "donations"):
            for granularity in ("day", "month", "year"):
                for start, end in ((date(2024, 1, 1), TODAY), (date(2024, 1, 1), UNTIL)):
                    expected = getattr(oracle, name)(area, start, end, granularity)
                    for table in rollups.candidates(area, start, end, granularity, family=rollups.ACTIVITIES):
                        assert getattr(aggregates, name)(area, start, end, granularity, table=table) == expected, \
                            (name, area, granularity, table)
        for year in (2025, TODAY.year):
            assert aggregates.growth(area, year) == oracle.growth(area, year), (area, year)
            as_of = min(date(year, 12, 31), UNTIL)
            assert aggregates.indicators(area, year, as_of) == oracle.indicators(area, year, as_of), (area, year)
    for end in (TODAY, UNTIL):
        expected = oracle.visits(AreaFilter("legacy"), date(2024, 1, 1), end, "year",
                                 library_type="commune_public_library")
        for table in rollups.candidates(AreaFilter("legacy"), date(2024, 1, 1), end, "year", by_library=True):
            assert aggregates.visits(AreaFilter("legacy"), date(2024, 1, 1), end, "year",
                                     library_type="commune_public_library", table=table) == expected, table
    compare_rollups(aggregates)
    compare_rotation(aggregates, oracle)


def compare_rollups(aggregates: Aggregates) -> None:
    """Every row of every rollup equals the sum over the chains as they stand (which the comparisons
    above hold to the oracle): nothing left over where a chain moved away or was withdrawn, nothing
    counted twice."""
    on_time = "toDate(first_reported_at, 'Asia/Ho_Chi_Minh') <= addDays(toLastDayOfMonth(day), 10)"
    areas = ("ARRAY JOIN [('', 'region', ''), ('legacy', 'province', toString(province_legacy)), "
             "('legacy', 'commune', commune_legacy), ('2025', 'province', toString(province_2025)), "
             "('2025', 'commune', commune_2025)] AS a")
    for family, values, extra, dims in (
            (rollups.VISITS, rollups.VALUES, f", toInt64(counted AND {on_time}) AS on_time_reports", ""),
            (rollups.ACTIVITIES, (*MEASURES, "reports"), "", f", {', '.join(DIMENSIONS)}")):
        chains = (f"(SELECT *, toInt64(counted) AS reports{extra}, toStartOfMonth(day) AS month "
                  f"FROM {family.chains} FINAL WHERE counted AND sign = 1)")
        sums = ", ".join(f"round(sum({c}), 6) AS {c}" for c in values)
        for table, keys, source in (
                (family.library_month, "event_type, library_id, month, province_legacy, commune_legacy, "
                 "province_2025, commune_2025", chains),
                (family.area_day, "event_type, a.1 AS scheme, a.2 AS level, a.3 AS code, day", f"{chains} {areas}"),
                (family.area_month, "event_type, a.1 AS scheme, a.2 AS level, a.3 AS code, month",
                 f"{chains} {areas}"),
                (family.library_day, "event_type, library_id, day, province_legacy, commune_legacy, province_2025, "
                 "commune_2025", chains)):
            if table is None:
                continue
            if family is rollups.VISITS:  # the visit rollups have no event_type: one form
                keys = keys.removeprefix("event_type, ")
            keys += dims
            names = ", ".join(k.split(" AS ")[-1] for k in keys.split(", "))
            stored = aggregates.store.select(
                f"SELECT {names}, {sums} FROM {table} GROUP BY {names} HAVING "
                f"{' OR '.join(f'{c} != 0' for c in values)} ORDER BY {names}")
            expected = aggregates.store.select(f"SELECT {keys}, {sums} FROM {source} GROUP BY {names} ORDER BY {names}")
            assert stored == expected, (table, next((s, e) for s, e in zip(stored, expected, strict=False) if s != e)
                                        if len(stored) == len(expected) else (len(stored), len(expected)))


def compare_rotation(aggregates: Aggregates, oracle: Oracle) -> None:
    """Every rotation batch in the store is the oracle's, and no other."""
    columns = ("status", "library_id", "dispatched_on", "received_on", "returned_on", "copies_lost", "copies_damaged",
               "valid_movements", "invalid_movements")
    rows = aggregates.store.select(f"SELECT batch_id, {', '.join(columns)} FROM rotation_batches FINAL")
    # A batch whose movements were all withdrawn keeps a row with none: for the oracle, it is no batch.
    stored = {row.pop("batch_id"): row for row in rows if row["valid_movements"] + row["invalid_movements"]}
    expected = oracle.rotation_batches()
    assert stored.keys() == expected.keys(), (f"only in the store: {sorted(stored.keys() - expected.keys())[:5]}, "
                                              f"only in the oracle: {sorted(expected.keys() - stored.keys())[:5]}")
    wrong = {b: (stored[b], expected[b]) for b in expected if stored[b] != expected[b]}
    assert not wrong, f"{len(wrong)} rotation batches differ, e.g. {next(iter(wrong.items()))}"


