"""Compare the store's answers with the oracle's, for every aggregate and indicator."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from services.clock import today_local
from services.domain.reference import default_reference
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
            start, end = date(2024, 1, 1), TODAY
            store_rows, oracle_rows = (aggregates.visits(area, start, end, granularity),
                                       oracle.visits(area, start, end, granularity))
            assert store_rows == oracle_rows, (area, granularity, _first_difference(store_rows, oracle_rows))
        start, end = date(2024, 1, 1), TODAY
        for name in ("mobile_sessions", "reading_promotion", "training", "donations"):
            for granularity in ("month", "year"):
                assert getattr(aggregates, name)(area, start, end, granularity) == \
                    getattr(oracle, name)(area, start, end, granularity), (name, area, granularity)
        for year in (2025, TODAY.year):
            assert aggregates.growth(area, year) == oracle.growth(area, year), (area, year)
            as_of = min(date(year, 12, 31), UNTIL)
            assert aggregates.indicators(area, year, as_of) == oracle.indicators(area, year, as_of), (area, year)
    assert aggregates.visits(AreaFilter("legacy"), date(2024, 1, 1), TODAY, "year",
                             library_type="commune_public_library") == \
        oracle.visits(AreaFilter("legacy"), date(2024, 1, 1), TODAY, "year", library_type="commune_public_library")
    compare_rotation(aggregates, oracle)


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


