"""Aggregates and indicators read from the store, as defined in ``schemas/AGGREGATES.md``.

SQL does the summing: visits and the activity forms over the smallest table that answers
(``services/store/rollups.py``: the rollups the store keeps of the report-chain processors' rows,
or those rows), the registry and the inputs of K2 and K3 over the ``current_facts`` view (current
version of every submission chain); the ratios, the registry at a date and the targets are plain
domain code (``services/domain``). Indicators are summed in SQL:
what comes back is a handful of numbers, never a row per library and month.
"""

from __future__ import annotations

import calendar
import dataclasses
import functools
import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.domain.approvals import add_visit_sums, visit_sums
from services.domain.chain_rows import ChainRow
from services.domain.events import AdminArea
from services.domain.forms import donation, mobile_session, reading_promotion, staff_training
from services.domain.indicators import Indicator, cagr, change, growth_indicator, ratio
from services.domain.periods import ALL_TIME, Granularity, month_end, months_between
from services.domain.reference import Reference
from services.domain.registry import LibraryAt, registry_at, registry_change
from services.store import rollups
from services.store.clickhouse import AreaFilter, Store, string_list


@dataclass(frozen=True)
class ApprovedRows:
    """The months of a figure approved for its whole area, and their approved chain rows of the figure's
    form in its area and dates: a figure reads these in place of the live rows of those months
    (``services/query/approvals_api.py``, ``figure_approvals``)."""

    months: tuple[date, ...]
    rows: tuple[ChainRow, ...]  # in root_id order (lineage pages them)
    # (the rows' visit sums by granularity: an ApprovedRows is kept while the approvals stand)
    _sums: dict[str, dict[str, list[int]]] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def cover(self, start: date, end: date) -> bool:
        """Whether every month from ``start`` to ``end`` is approved: nothing live is then read."""
        return set(months_between(start, end)) <= set(self.months)

    def visit_sums(self, granularity: Granularity) -> dict[str, list[int]]:
        """The approved visit logs summed by period (``services.domain.approvals.visit_sums``), once."""
        if granularity not in self._sums:
            self._sums[granularity] = visit_sums(self.rows, granularity)
        return self._sums[granularity]

    def as_json(self, event_type: str) -> str:
        return json.dumps([row.model_dump(mode="json") for row in self.rows if row.event_type == event_type],
                          ensure_ascii=False)

RETRACTED = "submission_retracted"
_COORDINATION_FORMS = ("rotation_moved", "mobile_session_held", "reading_promotion_held")


def current_facts(*event_types: str, chains: str = "") -> str:
    """The ``current_facts`` view (``schemas/clickhouse/005_current_facts.sql``) as a subquery over the
    chains of ``event_types`` only, optionally only those matching ``chains`` (a condition on
    ``events``' columns, e.g. on ``root_id``; it must keep every event of a chain it keeps).

    Same rows as ``current_facts WHERE event_type IN event_types``: every version of a chain has
    its form's event type, or is a retraction. The view's own filter sits outside its GROUP BY, so
    ClickHouse aggregates every chain of every form before filtering; here the filter is inside,
    and ``events``' sort key (``event_type`` first) skips the other forms' rows.
    """
    types = ", ".join(f"'{t}'" for t in (*event_types, RETRACTED))
    where = f"event_type IN ({types})" + (f" AND ({chains})" if chains else "")
    return (
        "(SELECT root_id, argMax(event_id, v) AS event_id, argMax(event_type, v) AS event_type, "
        "argMax(form_id, v) AS form_id, argMax(library_id, v) AS library_id, "
        "argMax(occurred_on, v) AS occurred_on, max(ts) AS submitted_at, min(ts) AS first_submitted_at, "
        "argMax(province_legacy, v) AS province_legacy, argMax(commune_legacy, v) AS commune_legacy, "
        "argMax(province_2025, v) AS province_2025, argMax(commune_2025, v) AS commune_2025, "
        "argMax(payload, v) AS payload, argMax(submitter, v) AS submitter "
        "FROM (SELECT *, submitted_at AS ts, (submitted_at, version) AS v FROM events FINAL "
        f"WHERE {where}) GROUP BY root_id HAVING event_type != '{RETRACTED}') AS current_facts"
    )


class Aggregates:
    def __init__(self, store: Store, reference: Reference):
        self.store = store
        self.reference = reference
        self._registry_cache: dict[str, dict[str, LibraryAt]] = {}
        self._cache_lock = threading.Lock()  # request threads share the caches
        self._masks_cache: dict[tuple[Any, ...], tuple[tuple[dict[str, LibraryAt], ...], dict[str, int]]] = {}
        self._event_reads: dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = {}  # key → (events' version, value)
        self._area_cache: dict[tuple[int, AreaFilter], tuple[dict[str, LibraryAt], list[LibraryAt]]] = {}

    # --- what a query is about --------------------------------------------------------------

    def libraries_of_type(self, library_type: str, day: date) -> list[str]:
        return sorted(lib.library_id for lib in self.registry(day).values() if lib.library_type == library_type)

    def of_type(self, area: AreaFilter, library_type: str | None, day: date) -> AreaFilter:
        """``area`` narrowed to its libraries of ``library_type`` (the registry at ``day``), if one is given."""
        if not library_type:
            return area
        return dataclasses.replace(area, library_ids=tuple(self.libraries_of_type(library_type, day)))

    # --- aggregates ---------------------------------------------------------------------------

    def visits(self, area: AreaFilter, start: date, end: date, granularity: Granularity,
               library_type: str | None = None, table: str | None = None,
               approved: ApprovedRows | None = None) -> list[dict[str, Any]]:
        """Visits by period, from the smallest table that answers (``table``: one the planner allows);
        the ``approved`` months from their approved rows."""
        plan = self.visits_plan(area, start, end, granularity, library_type, table)
        if approved is None or not approved.months:
            return self.store.select(rollups.series_sql(plan, granularity), plan.params)
        plan = plan.without_months(approved.months)
        live = [] if approved.cover(start, end) else self.store.select(rollups.series_sql(plan, granularity),
                                                                       plan.params)
        return add_visit_sums(live, approved.visit_sums(granularity))  # type: ignore[arg-type,return-value]

    def visits_plan(self, area: AreaFilter, start: date, end: date, granularity: Granularity,
                    library_type: str | None = None, table: str | None = None) -> rollups.Plan:
        """Where ``visits(…)`` reads, and on what conditions (``services/store/lineage.py`` reads the
        same conditions from the chain rows)."""
        libraries = self.libraries_of_type(library_type, end) if library_type else None
        return rollups.plan(area, start, end, granularity, libraries, table)

    def _activity(self, event_type: str, area: AreaFilter, start: date, end: date, granularity: Granularity,
                  table: str | None, approved: ApprovedRows | None) -> rollups.Plan:
        """Where an activity form's figures are read: the smallest table, or (``approved``) the chain rows
        with the approved months' rows in place of the live ones."""
        if approved is None or not approved.months:
            return rollups.plan(area, start, end, granularity, table=table, family=rollups.ACTIVITIES,
                                event_type=event_type)
        plan = rollups.plan(area, start, end, granularity, table=rollups.ACTIVITIES.chains,
                            family=rollups.ACTIVITIES, event_type=event_type)
        return rollups.activities_with_approved(plan, approved.months, approved.as_json(event_type))

    def mobile_sessions(self, area: AreaFilter, start: date, end: date, granularity: Granularity,
                        table: str | None = None, approved: ApprovedRows | None = None) -> list[dict[str, Any]]:
        plan = self._activity(mobile_session.EVENT_TYPE, area, start, end, granularity, table, approved)
        columns = [("sessions", "reports"), *((c, c) for c in ("visits_total", "visits_children", "visits_adults",
                                                                "loans"))]
        return self.store.select(rollups.grouped_sql(plan, granularity, columns), plan.params)

    def reading_promotion(self, area: AreaFilter, start: date, end: date, granularity: Granularity,
                          table: str | None = None, approved: ApprovedRows | None = None) -> list[dict[str, Any]]:
        plan = self._activity(reading_promotion.EVENT_TYPE, area, start, end, granularity, table, approved)
        columns = [("events", "reports"), *((c, c) for c in ("participants_total", "participants_children",
                                                              "participants_adults", "co_organised"))]
        return self.store.select(rollups.grouped_sql(plan, granularity, columns, by=("occasion",)), plan.params)

    def training(self, area: AreaFilter, start: date, end: date, granularity: Granularity,
                 table: str | None = None, approved: ApprovedRows | None = None) -> list[dict[str, Any]]:
        plan = self._activity(staff_training.EVENT_TYPE, area, start, end, granularity, table, approved)
        rows = self.store.select(rollups.training_sql(plan, granularity), plan.params)
        return [{**row, "hours": round(row["hours"], 6)} for row in rows]

    def donations(self, area: AreaFilter, start: date, end: date, granularity: Granularity,
                  table: str | None = None, approved: ApprovedRows | None = None) -> list[dict[str, Any]]:
        plan = self._activity(donation.EVENT_TYPE, area, start, end, granularity, table, approved)
        columns = [("donations", "reports"), ("books", "books"), ("money_vnd", "money_vnd")]
        return self.store.select(rollups.grouped_sql(plan, granularity, columns, by=("donor_kind", "donor_origin")),
                                 plan.params)

    # --- growth -------------------------------------------------------------------------------

    def _yearly(self, area: AreaFilter, approved: ApprovedRows | None) -> dict[int, int]:
        """Year → visits in ``area``, for the years with a counted visit log (``approved``: as ``growth``)."""
        plan = self.visits_plan(area, *ALL_TIME, "year").without_months(approved.months if approved else ())
        rows = self.store.select(f"SELECT toYear({plan.date_column}) AS year, {plan.total('visits_total')} AS visits, "
                                 f"{plan.total('reports')} AS reports FROM {plan.table} WHERE {plan.where} "
                                 "GROUP BY year", plan.params)
        years = {row["year"]: [row["visits"], row["reports"]] for row in rows}
        for chain in approved.rows if approved else ():
            into = years.setdefault(chain.day.year, [0, 0])
            into[0] += int(chain.counts.get("visits_total", 0))
            into[1] += int(chain.counts.get("reports", 0))
        return {year: visits for year, (visits, reports) in years.items() if reports > 0}

    def _like_for_like(self, area: AreaFilter, year: int, approved: ApprovedRows | None) -> dict[str, int]:
        """Visits in ``year`` and the year before, over the libraries of ``area`` with a counted visit log
        in both (summed per library in the library-month rollup, with ``approved`` as ``growth`` says,
        then over the libraries)."""
        plan = rollups.plan(area, date(year - 1, 1, 1), date(year, 12, 31), "year", table=rollups.LIBRARY_MONTH)
        plan = plan.without_months(approved.months if approved else ())
        rows = self.store.select(
            "SELECT library_id, toInt64(sumIf(visits_total, toYear(month) = {year:UInt16})) AS now, "
            "toInt64(sumIf(visits_total, toYear(month) = {year:UInt16} - 1)) AS before, "
            "toInt64(sumIf(reports, toYear(month) = {year:UInt16})) AS reports_now, "
            "toInt64(sumIf(reports, toYear(month) = {year:UInt16} - 1)) AS reports_before "
            f"FROM {plan.table} WHERE {plan.where} GROUP BY library_id", {**plan.params, "year": year})
        libraries = {row["library_id"]: row for row in rows}
        for chain in approved.rows if approved else ():
            if chain.day.year not in (year, year - 1):
                continue
            into = libraries.setdefault(chain.library_id, {"now": 0, "before": 0, "reports_now": 0,
                                                           "reports_before": 0})
            which = "now" if chain.day.year == year else "before"
            into[which] += int(chain.counts.get("visits_total", 0))
            into[f"reports_{which}"] += int(chain.counts.get("reports", 0))
        both = [row for row in libraries.values() if row["reports_now"] > 0 and row["reports_before"] > 0]
        return {"visits": sum(row["now"] for row in both), "previous": sum(row["before"] for row in both),
                "libraries": len(both)}

    def growth(self, area: AreaFilter, year: int, baseline_year: int | None = None,
               approved: ApprovedRows | None = None) -> dict[str, Any]:
        """``/v1/growth``'s figures; the ``approved`` months (over every year) from their approved rows."""
        by_year = self._yearly(area, approved)
        same = self._like_for_like(area, year, approved)
        now, before = by_year.get(year, 0), by_year.get(year - 1, 0)
        years_with_visits = sorted(y for y, visits in by_year.items() if visits > 0)
        baseline = baseline_year if baseline_year is not None else (years_with_visits[0] if years_with_visits
                                                                    else None)
        average = None
        if baseline is not None and baseline < year:
            average = cagr(now, by_year.get(baseline, 0), year - baseline)
        return {
            "year": year,
            "all": {"visits": now, "previous": before, "yoy": change(now, before)},
            "like_for_like": {"visits": same["visits"], "previous": same["previous"],
                              "yoy": change(same["visits"], same["previous"]), "libraries": same["libraries"]},
            "cagr": {"baseline_year": baseline, "value": average},
        }

    # --- registry and indicators ----------------------------------------------------------------

    @contextmanager
    def one_reading(self) -> Iterator[None]:
        """Within this block (one request's thread), what no area changes — the registry's changes,
        the libraries coordinating in a window, the training records — is read once, however many
        areas are asked (a dashboard view asks the indicators of every province)."""
        token = _ONE_READING.set({})
        try:
            yield
        finally:
            _ONE_READING.reset(token)

    def _once(self, key: tuple[Any, ...], read: Callable[[], Any]) -> Any:
        """``read()``, a read of ``events`` (the registry's changes, K2's and K3's inputs): kept while
        the table's parts are the same (any insert makes a part), and once per ``one_reading``."""
        memo = _ONE_READING.get()
        if memo is not None and key in memo:
            return memo[key]
        version = self.store.table_version("events")
        with self._cache_lock:
            cached = self._event_reads.get(key)
        if cached is not None and cached[0] == version:
            value = cached[1]
        else:
            value = read()
            with self._cache_lock:
                self._event_reads[key] = (version, value)
                while len(self._event_reads) > _CACHED_READS:
                    self._event_reads.pop(next(iter(self._event_reads)))
        if memo is not None:
            memo[key] = value
        return value

    def registry_changes(self) -> list[dict[str, Any]]:
        return self._once(("registry_changes",), self._registry_changes)

    def _registry_changes(self) -> list[dict[str, Any]]:
        return read_registry_changes(self.store.select)

    def registry(self, day: date, changes: list[dict[str, Any]] | None = None) -> dict[str, LibraryAt]:
        """The registry at ``day``: the reference plus the registry form's changes dated on or before it.
        Built once per distinct set of changes applied, and kept (the last few): every indicator, and
        every province of a dashboard view, reads the same registry."""
        changes = self.registry_changes() if changes is None else changes
        key = _fingerprint([change for change in changes if change["occurred_on"] <= day])
        with self._cache_lock:
            registry = self._registry_cache.pop(key, None)
        if registry is None:
            registry = registry_at(self.reference.libraries.values(), changes, day)
        with self._cache_lock:
            self._registry_cache[key] = registry  # most recently used last
            while len(self._registry_cache) > _CACHED_REGISTRIES:
                self._registry_cache.pop(next(iter(self._registry_cache)))
        return registry

    def _in_area(self, area: AreaFilter, registry: dict[str, LibraryAt]) -> list[LibraryAt]:
        """The libraries of ``registry`` in ``area``, worked out once per registry and area."""
        key = (id(registry), area)
        with self._cache_lock:
            found = self._area_cache.get(key)
        if found is None or found[0] is not registry:
            found = (registry, [lib for lib in registry.values() if area.contains(lib.areas, lib.library_id)])
            with self._cache_lock:
                self._area_cache[key] = found
                while len(self._area_cache) > _CACHED_AREAS:
                    self._area_cache.pop(next(iter(self._area_cache)))
        return found[1]

    def _libraries_in(self, area: AreaFilter, registry: dict[str, LibraryAt], day: date) -> list[LibraryAt]:
        return [lib for lib in self._in_area(area, registry) if lib.operating_on(day)]

    def _communes_in(self, area: AreaFilter, registry: dict[str, LibraryAt]) -> frozenset[str] | set[str]:
        if area.library_id:  # a library's "area" is its own commune
            library = registry.get(area.library_id)
            return {library.area(area.scheme).commune_code} if library else set()
        return self._reference_communes(area.scheme, area.province_code, area.commune_code)

    @functools.lru_cache(maxsize=256)  # noqa: B019 (the reference never changes while the service runs)
    def _reference_communes(self, scheme: str, province_code: str | None, commune_code: str | None
                            ) -> frozenset[str]:
        area = AreaFilter(scheme, province_code, commune_code)  # type: ignore[arg-type]
        communes = set()
        for (unit_scheme, code), commune in self.reference.communes.items():
            if unit_scheme != area.scheme:
                continue
            if area.scheme == "2025" and not self.reference.in_programme(code):
                continue
            if area.province_code and commune.province_code != area.province_code:
                continue
            if area.commune_code and code != area.commune_code:
                continue
            communes.add(code)
        return frozenset(communes)

    def k1_coverage(self, area: AreaFilter, day: date, registry: dict[str, LibraryAt] | None = None
                    ) -> tuple[dict[str, list[LibraryAt]], int]:
        """K1's numerator and denominator: the communes of the area with a library of the model operating
        on ``day`` (each with those libraries), and how many communes the area has. ``/v1/indicators``
        and ``/v1/lineage/k1`` both read it, so a traced K1 is the K1 served."""
        registry = self.registry(day) if registry is None else registry
        communes = self._communes_in(area, registry)
        covered: dict[str, list[LibraryAt]] = defaultdict(list)
        for lib in self._libraries_in(area, registry, day):
            if lib.in_model_on(day) and lib.area(area.scheme).commune_code in communes:
                covered[lib.area(area.scheme).commune_code].append(lib)
        return dict(covered), len(communes)

    def indicators(self, area: AreaFilter, year: int, as_of: date | None = None,
                   approved_visits: ApprovedRows | None = None) -> dict[str, dict[str, Any]]:
        """K1–K4, completeness and timeliness (``approved_visits``: ``growth``'s ``approved``, for K4)."""
        day = as_of or date(year, 12, 31)
        changes = self.registry_changes()
        registry = self.registry(day, changes)
        operating = self._libraries_in(area, registry, day)

        covered, communes = self.k1_coverage(area, day, registry)
        k1 = ratio(len(covered), communes, "K1", year)

        # K2: operating libraries with a coordination activity in the 12 months ending on the day.
        window_start = day - timedelta(days=365)
        active = self._coordinating(window_start, day) | {
            lib.library_id for lib in registry.values()
            if lib.coordination_agreed_on and any(window_start < d <= day for d in lib.coordination_agreed_on)}
        k2 = ratio(sum(lib.library_id in active for lib in operating), len(operating), "K2", year)

        k3 = self._trained_workers(area, day, year)
        growth = self.growth(area, year, approved=approved_visits)
        k4 = growth_indicator(growth["like_for_like"]["visits"], growth["like_for_like"]["previous"], year)
        completeness, timeliness = self._reporting(area, year, day, changes)
        return {name: indicator.as_dict() for name, indicator in (
            ("K1", k1), ("K2", k2), ("K3", k3), ("K4", k4), ("completeness", completeness),
            ("timeliness", timeliness))}

    def _expected_months(self, area: AreaFilter, months: tuple[tuple[int, date], ...],
                         registries: dict[date, dict[str, LibraryAt]]) -> dict[str, int]:
        """Library → the months (bit m - 1) it is expected to report in: operating at the month's end
        (``months``: (month, its end or D)). Worked out once per area, months and registries."""
        key = (area, months, tuple(id(registries[end]) for _, end in months))
        with self._cache_lock:
            found = self._masks_cache.get(key)
        if found is not None and all(a is b for a, b in zip(found[0], (registries[e] for _, e in months),
                                                              strict=True)):
            return found[1]
        masks: dict[str, int] = defaultdict(int)
        for month, end in months:
            for lib in self._in_area(area, registries[end]):
                if lib.operating_on(end):
                    masks[lib.library_id] |= 1 << (month - 1)
        with self._cache_lock:
            self._masks_cache[key] = (tuple(registries[e] for _, e in months), dict(masks))
            while len(self._masks_cache) > _CACHED_AREAS:
                self._masks_cache.pop(next(iter(self._masks_cache)))
        return masks

    def _coordinating(self, after: date, until: date) -> set[str]:
        return self._once(("coordinating", after, until), lambda: self._read_coordinating(after, until))

    def _read_coordinating(self, after: date, until: date) -> set[str]:
        rows = self.store.select(
            f"SELECT DISTINCT library_id FROM {current_facts(*_COORDINATION_FORMS)} "
            "WHERE occurred_on > {after:Date} AND occurred_on <= {until:Date} AND ("
            "(event_type = 'rotation_moved' AND JSONExtractString(payload, 'movement') = 'received') "
            "OR event_type = 'mobile_session_held' "
            "OR (event_type = 'reading_promotion_held' "
            "    AND JSONExtractBool(payload, 'co_organised_with_provincial_library')))",
            {"after": after, "until": until})
        return {row["library_id"] for row in rows}

    def _training_records(self, day: date) -> list[dict[str, Any]]:
        return self._once(("training", day), lambda: self.store.select(
            "SELECT JSONExtractString(payload, 'worker_id') AS worker, library_id, occurred_on, submitted_at, "
            "JSONExtractString(payload, 'result') AS result, province_legacy, commune_legacy, province_2025, "
            f"commune_2025 FROM {current_facts('staff_trained')} WHERE event_type = 'staff_trained' "
            "AND occurred_on <= {day:Date} "
            "ORDER BY occurred_on, submitted_at", {"day": day}))

    def _trained_workers(self, area: AreaFilter, day: date, year: int) -> Indicator:
        rows = self._training_records(day)
        window_start = _months_before(day, 24)
        latest: dict[str, dict[str, Any]] = {}
        recent: set[str] = set()
        passed: set[str] = set()
        for row in rows:
            latest[row["worker"]] = row
            if row["occurred_on"] > window_start:
                recent.add(row["worker"])
            if row["result"] == "passed":
                passed.add(row["worker"])
        active = {w for w in recent if area.row_contains(latest[w])}
        return ratio(len(active & passed), len(active), "K3", year)

    def _reporting(self, area: AreaFilter, year: int, day: date,
                   changes: list[dict[str, Any]]) -> tuple[Indicator, Indicator]:
        """Completeness and timeliness: of the (library, month) pairs expected (operating at the month's
        end, or at D), those with a counted visit log, and those whose first was accepted by the
        deadline (the month's end + 10 days: ``on_time_reports`` in the library-month rollup)."""
        months = [m for m in range(1, 13) if date(year, m, 1) <= day]
        ends = [min(month_end(date(year, month, 1)), day) for month in months]
        registries = {end: self.registry(end, changes) for end in ends}  # months with the same changes share one
        masks = self._expected_months(area, tuple(zip(months, ends, strict=True)), registries)
        expected = sum(mask.bit_count() for mask in masks.values())
        if not masks:
            return ratio(0, 0), ratio(0, 0)
        # One query for the year: each library's mask beside its id.
        ids, id_params = string_list("ids", list(masks))
        bits, bit_params = string_list("masks", [str(mask) for mask in masks.values()])
        row = self.store.select(
            "SELECT toInt64(countIf(reports > 0)) AS received, toInt64(countIf(on_time > 0)) AS on_time "
            "FROM (SELECT library_id, month, sum(reports) AS reports, sum(on_time_reports) AS on_time "
            f"FROM {rollups.LIBRARY_MONTH} WHERE month BETWEEN {{first:Date}} AND {{last:Date}} "
            f"AND bitTest(transform(toString(library_id), {ids}, arrayMap(x -> toUInt16(x), {bits}), toUInt16(0)), "
            "toMonth(month) - 1) GROUP BY library_id, month)",
            {"first": date(year, 1, 1), "last": date(year, 12, 1), **id_params, **bit_params})[0]
        received, on_time = row["received"], row["on_time"]
        return ratio(received, expected), ratio(on_time, expected)


def read_registry_changes(select: Callable[..., list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The registry form's current chains as ``registry_at`` folds them, read by ``select``."""
    rows = select(
        "SELECT library_id, occurred_on, submitted_at, first_submitted_at, root_id, event_id, submitter, payload, "
        "province_legacy, commune_legacy, "
        f"province_2025, commune_2025 FROM {current_facts('library_registered')} "
        "WHERE event_type = 'library_registered' "
        "ORDER BY submitted_at, root_id")
    changes = []
    for order, row in enumerate(rows):
        change = registry_change(
            root_id=row["root_id"], library_id=row["library_id"], occurred_on=row["occurred_on"],
            payload=json.loads(row["payload"]), order=order,
            areas=(AdminArea(scheme="legacy", province_code=row["province_legacy"],
                             commune_code=row["commune_legacy"]),
                   AdminArea(scheme="2025", province_code=row["province_2025"],
                             commune_code=row["commune_2025"])))
        # the chain that made the change (what /v1/lineage/k1 lists; not part of the fingerprint)
        change["chain"] = {key: row[key] for key in ("root_id", "event_id", "submitter", "first_submitted_at",
                                                     "submitted_at")}
        changes.append(change)
    return changes


_CACHED_REGISTRIES = 8
# What ``Aggregates.one_reading`` has read in this context (None outside one).
_ONE_READING: ContextVar[dict[tuple[Any, ...], Any] | None] = ContextVar("aggregates_one_reading", default=None)
_CACHED_READS = 64  # reads of events kept across requests (years × windows asked)
_CACHED_AREAS = 64  # the region and every province under both schemes, for a registry or two


def _fingerprint(changes: list[dict[str, Any]]) -> str:
    """What identifies a set of registry changes (ids, dates, order and answers)."""
    text = json.dumps([[c["library_id"], c["occurred_on"], c["order"], c["payload"],
                        [a.model_dump() for a in c["areas"]]] for c in changes],
                      sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _months_before(day: date, months: int) -> date:
    """The same day ``months`` months earlier (the month's last day if it is shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
