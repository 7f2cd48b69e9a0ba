"""Which submission chains make a figure (``/v1/lineage/…``), chosen by the figure's own rules.

Visits (and growth, visits by year) are summed by the planner (``rollups.plan``) from the smallest
table that answers; every table it may pick holds the same sums as the chain rows
(``visit_chain_rows``), and the chain rows are one of them. Lineage asks the planner the figure's
own question answered from the chain rows, and groups by chain where the figure groups by period:
the same conditions, so the chains' contributions sum to the figure by construction. K1 reads
``Aggregates.k1_coverage``, as ``/v1/indicators`` does.

A chain's history (its versions, edits, retractions, who sent each and when) is kept on its chain
row by the processor that folds it (``ReportChain.history``), so a page reads the chain rows only;
the ``events`` archive is read for a chain whose row was written before the history was kept
(migration 018), one page of chains at a time.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.periods import Granularity, label
from services.store import rollups
from services.store.aggregates import RETRACTED, Aggregates, ApprovedRows
from services.store.clickhouse import AreaFilter, aware, string_list


@dataclass(frozen=True)
class Page:
    """Chains (or communes, for K1) in key order; ``more``: whether any follow the last."""

    items: list[dict[str, Any]]
    more: bool


class Lineage:
    def __init__(self, aggregates: Aggregates):
        self.aggregates = aggregates
        self.store = aggregates.store

    # --- visits ---------------------------------------------------------------------------------

    def visits(self, area: AreaFilter, start: date, end: date, granularity: Granularity, *,
               after: str | None = None, limit: int | None = None, approved: ApprovedRows | None = None) -> Page:
        """The counted visit-log chains of ``Aggregates.visits(area, start, end, granularity)``, by
        ``root_id`` after ``after`` (at most ``limit``): each with its period and its counts.

        With ``approved`` (the approved months of the figure and their approved chain rows, in the
        area and dates asked): what makes the approved figure — in those months the approved rows
        (their version and counts when approved, or as applied since), not the live ones."""
        plan = self.aggregates.visits_plan(area, start, end, granularity, table=rollups.CHAINS)
        sums = ", ".join(f"{plan.total(name)} AS {name}" for name in (*COUNT_FIELDS, "reports"))
        newest = "(seq, sign)"  # the chain's current row: its last change's new state
        outside = f" AND toStartOfMonth({plan.date_column}) NOT IN {{approved_months:Array(Date)}}" if approved else ""
        period = rollups.period_sql(plan.date_column, granularity)
        paged = " ORDER BY root_id" + (" LIMIT {limit:UInt64}" if limit is not None else "")
        # The page's chains first, reading only the columns the conditions need; then every column of
        # those chains' rows only. (One pass grouping every chain of the figure with all its columns
        # costs more: 56 against 42 ms for a growth page of 21,000 chains, bench/lineage.py's store.)
        page = (f"SELECT root_id FROM {plan.table} WHERE {plan.where}{outside} AND root_id > {{after:String}} "
                f"GROUP BY root_id, {period} HAVING {plan.total('reports')} > 0{paged}")
        rows = [] if approved and approved.cover(start, end) else self.store.select(
            # (aliases unlike the columns: the WHERE reads the columns)
            f"SELECT root_id, {period} AS period, "
            f"argMax(event_id, {newest}) AS instance_id, argMax(library_id, {newest}) AS current_library, "
            f"argMax(day, {newest}) AS occurred_on, {_HEAD.format(newest=newest)}, {sums} "
            f"FROM {plan.table} WHERE {plan.where}{outside} AND root_id IN ({page}) "
            # reports is 1 for the chain's current state in the question, 0 where a change took it out
            f"GROUP BY root_id, period HAVING reports > 0{paged}",
            {**plan.params, "after": after or "", **({"limit": limit + 1} if limit is not None else {}),
             **({"approved_months": list(approved.months)} if approved else {})})
        if approved:
            rows = sorted([*rows, *_approved_rows(approved, granularity, after, limit)], key=lambda row: row["root_id"])
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        history = self._history(["visit_logged"], plan, rows)
        items = []
        for row in rows:
            changes = history.get(row["root_id"], [])
            versions = [change for change in changes if not change["retraction"]]
            current = next((v for v in versions if v["event_id"] == row["instance_id"]), None)
            items.append({
                "root_id": row["root_id"], "instance_id": row["instance_id"], "period": row["period"],
                "library_id": row["current_library"], "occurred_on": row["occurred_on"],
                "submitter": current["submitter"] if current else None,
                "source": current["source"] if current else None,
                # (an approved row's version may no longer be its chain's current one: its own times)
                "first_accepted_at": aware(versions[0]["accepted_at"]) if versions else None,
                "last_accepted_at": aware(current["accepted_at"]) if current else None,
                "versions": len(versions),
                "edits": [{"instance_id": v["event_id"], "accepted_at": aware(v["accepted_at"])} for v in versions[1:]],
                "retractions": [{"instance_id": c["event_id"], "accepted_at": aware(c["accepted_at"]),
                                 "reason_code": c["reason_code"], "reason": c["reason"]}
                                for c in changes if c["retraction"]],
                "contribution": {name: row[name] for name in (*COUNT_FIELDS, "reports")}})
        return Page(items, more)

    def _history(self, event_types: list[str], plan: rollups.Plan,
                 rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Root → every version and retraction of the chains of ``rows``, in acceptance order, as the
        chain rows keep them (``ReportChain.history``); an approved row (from its approval's snapshot)
        looks its chain's current row up first (``_heads``). A chain whose row was written before
        the history was kept is read from the archive."""
        approved = [row for row in rows if "chain_history" not in row]
        heads = self._heads(plan, approved) if approved else {}
        for row in approved:
            row.update(heads.get(row["root_id"]) or {"chain_versions": [], "chain_history": []})
        told: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            history = row["chain_history"]
            if history and sum(not change["retraction"] for change in history) == len(row["chain_versions"]):
                told[row["root_id"]] = history
        untold = [row for row in rows if row["root_id"] not in told]
        for event in sorted(self._events(event_types, untold) if untold else [],
                            key=lambda e: (e["accepted_at"], e["event_id"])):
            told.setdefault(event["root_id"], []).append(event)
        return told

    def _heads(self, plan: rollups.Plan, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Root → the version ids and history of the chains of (approved) ``rows``, from their chain rows
        as they stand. Looked for among the chains counted now in the figure's area and dates (``plan``)
        whose roots lie between the rows' first and last (a range, not a list of a thousand ids: through
        the by-area-day projection, the area's days only): a chain's current row is there unless an
        edit moved it out since, or it was retracted, and then its rows there cancel out (``sum(sign)``
        0). The rest, by root (the sort key)."""
        head = _HEAD.format(newest="(seq, sign)")
        found = {r["root_id"]: r for r in self.store.select(
            f"SELECT root_id, sum(sign) AS here, {head} FROM {plan.table} WHERE {plan.where} "
            "AND root_id BETWEEN {first_root:String} AND {last_root:String} GROUP BY root_id HAVING here = 1",
            {**plan.params, "first_root": rows[0]["root_id"], "last_root": rows[-1]["root_id"]})}
        moved = [row["root_id"] for row in rows if row["root_id"] not in found]
        if moved:
            roots, params = string_list("roots", moved)
            found |= {r["root_id"]: r for r in self.store.select(
                f"SELECT root_id, {head} FROM {rollups.CHAINS} WHERE root_id IN (SELECT arrayJoin({roots})) "
                "GROUP BY root_id", params)}
        return found

    def _events(self, event_types: list[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The versions (of ``event_types``) and the retractions of the chains of ``rows``, from the
        archive, as a chain's history tells them: each event's highest version, as FINAL would keep
        it, of these events only (FINAL merges the whole table's parts first: seconds at millions of
        events). Versions are read by their ids, the archive's sort key (a chain row keeps every
        version's id: an approved row's chain may have none yet); retractions, few and sorted apart by
        their event type, by chain."""
        roots, params = string_list("roots", [row["root_id"] for row in rows])
        ids, id_params = string_list("ids", sorted({i for row in rows for i in (*row["chain_versions"],
                                                                                  row["instance_id"])}))
        columns = (f"root_id, event_id, event_type = '{RETRACTED}' AS retraction, submitted_at AS accepted_at, "
                   "submitter, source")
        return self.store.select(
            f"SELECT {columns}, '' AS reason_code, '' AS reason FROM events "
            f"WHERE event_type IN {{types:Array(String)}} AND event_id IN (SELECT arrayJoin({ids})) "
            f"AND root_id IN (SELECT arrayJoin({roots})) ORDER BY version DESC LIMIT 1 BY event_type, event_id "
            f"UNION ALL SELECT {columns}, JSONExtractString(payload, 'reason_code') AS reason_code, "
            f"JSONExtractString(payload, 'reason') AS reason FROM events WHERE event_type = '{RETRACTED}' "
            f"AND root_id IN (SELECT arrayJoin({roots})) ORDER BY version DESC LIMIT 1 BY event_type, event_id",
            {**params, **id_params, "types": event_types})

    # --- growth --------------------------------------------------------------------------------

    def growth(self, area: AreaFilter, year: int, *, after: str | None = None, limit: int | None = None,
               approved: ApprovedRows | None = None) -> Page:
        """The chains of ``Aggregates.growth(area, year)``'s two years of visits (``all.visits`` and
        ``all.previous``), each with its year as its period (``approved``: as ``visits``)."""
        return self.visits(area, date(year - 1, 1, 1), date(year, 12, 31), "year", after=after, limit=limit,
                           approved=approved)

    # --- K1 ------------------------------------------------------------------------------------

    def k1(self, area: AreaFilter, day: date, *, after: str | None = None, limit: int | None = None) -> Page:
        """K1's numerator on ``day``: each commune covered (it counts 1), with the libraries of the model
        operating there and the registry chains that made each what it was on the day (none: as the
        reference data has it)."""
        covered, _ = self.aggregates.k1_coverage(area, day)
        changes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for change in self.aggregates.registry_changes():
            if change["occurred_on"] <= day:
                changes[change["library_id"]].append(change)
        communes = [code for code in sorted(covered) if after is None or code > after]
        page = communes[:limit] if limit is not None else communes
        items = [{
            "commune_code": code, "contribution": 1,
            "libraries": [{
                "library_id": lib.library_id, "library_type": lib.library_type, "opened_on": lib.opened_on,
                "model_joined_on": lib.model_joined_on,
                "chains": [_registry_chain(change) for change in changes.get(lib.library_id, [])],
            } for lib in sorted(covered[code], key=lambda lib: lib.library_id)],
        } for code in page]
        return Page(items, len(communes) > len(page))


def _approved_rows(approved: ApprovedRows, granularity: Granularity, after: str | None,
                   limit: int | None) -> list[dict[str, Any]]:
    """The approved rows after ``after`` as the chain query's rows, the first ``limit`` + 1 of them (a
    page and whether more follow): a page is built of those only (the rows are in root_id order)."""
    first = bisect.bisect_right(approved.rows, after or "", key=lambda row: row.root_id)
    page = approved.rows[first:] if limit is None else approved.rows[first:first + limit + 1]
    return [{"root_id": row.root_id, "period": label(row.day, granularity), "instance_id": row.event_id,
             "current_library": row.library_id, "occurred_on": row.day,
             **{name: row.counts.get(name, 0) for name in (*COUNT_FIELDS, "reports")}}
            for row in page]


# What a chain row tells of its chain's history: every version's id, and every version and retraction
# with who sent it, through what, when (``ReportChain.history``; empty on rows written before it was
# kept). (aliases unlike the columns: the other aggregates and the WHERE read the columns)
_HEAD = "argMax(version_ids, {newest}) AS chain_versions, argMax(history, {newest}) AS chain_history"


def _registry_chain(change: dict[str, Any]) -> dict[str, Any]:
    chain = change["chain"]
    return {"root_id": chain["root_id"], "instance_id": chain["event_id"], "action": change["payload"]["action"],
            "occurred_on": change["occurred_on"], "submitter": chain["submitter"],
            "first_accepted_at": aware(chain["first_submitted_at"]), "last_accepted_at": aware(chain["submitted_at"])}
