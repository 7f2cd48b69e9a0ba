"""The data-quality rules on plain data (services/domain/quality.py): each fires on a crafted month and
stays silent on a normal one; the robust z-score's edge cases (short history, MAD = 0)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from services.config import TIMEZONE
from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.quality import (
    MIN_HISTORY_MONTHS,
    ChainFacts,
    Checks,
    add_months,
    evaluate,
    reporting_deadline,
    robust_z,
)

pytestmark = pytest.mark.unit

AREAS = ("02", "00001", "08", "00002")


def chain(root: str, day: date, total: int, accepted: date | None = None, **counts: int) -> ChainFacts:
    values = dict.fromkeys(COUNT_FIELDS, 0) | {"visits_total": total, "visits_children": total // 2,
                                               "visits_adults": total - total // 2, "visits_female": total,
                                               "visits_reading": total} | counts
    when = accepted or date(day.year + (day.month == 12), day.month % 12 + 1, 2)
    return ChainFacts(root, f"{root}-v", "LIB", day, values, datetime(when.year, when.month, when.day, 9,
                                                                      tzinfo=TIMEZONE), AREAS)


def history(values: list[int], first: date = date(2025, 1, 1)) -> list[ChainFacts]:
    return [chain(f"h{i}", add_months(first, i).replace(day=15), v) for i, v in enumerate(values)]


def run(chains: list[ChainFacts], month: date, operating=lambda _day: True, threshold: float = 3.5):
    return {f.rule: f for f in evaluate(chains, [month], operating, threshold)}


def test_a_normal_month_raises_nothing():
    past = history([100, 104, 98, 101, 99, 103, 97, 102, 100, 105, 96, 101])
    assert run([*past, chain("now", date(2026, 1, 10), 103)], date(2026, 1, 1)) == {}


def test_an_outlier_fires_with_the_figures_it_saw_and_names_the_month_s_chains():
    past = history([100, 104, 98, 101, 99, 103, 97, 102, 100, 105, 96, 101])
    flag = run([*past, chain("a", date(2026, 1, 3), 400), chain("b", date(2026, 1, 20), 20)], date(2026, 1, 1))[
        "outlier"]
    assert flag.root_ids == ("a", "b") and flag.instance_ids == ("a-v", "b-v")
    assert flag.figures["visits_total"] == 420 and flag.figures["median"] == 100.5 and flag.figures["z"] > 3.5
    assert flag.figures["history_months"] == 12 and "01/2026" in flag.message_vi and "01/2026" in flag.message_en


def test_with_too_short_a_history_a_month_is_not_judged():
    past = history([100] * (MIN_HISTORY_MONTHS - 1) + [101], first=date(2025, 7, 1))
    assert "outlier" not in run([*past[1:], chain("now", date(2026, 1, 10), 5000)], date(2026, 1, 1))
    assert "outlier" in run([*past, chain("now", date(2026, 1, 10), 5000)], date(2026, 1, 1))


def test_mad_zero_falls_back_to_the_mean_absolute_deviation_and_a_constant_history_flags_nothing():
    z, median, mad = robust_z(200, [100] * 11 + [110])
    assert mad == 0 and median == 100 and z is not None and z > 3.5
    assert robust_z(200, [100] * 12) == (None, 100, 0)


def test_zero_visits_late_breakdown_and_closed_day_each_fire_on_their_case():
    month = date(2026, 3, 1)
    assert reporting_deadline(month) == date(2026, 4, 10)
    zero = run([chain("z", date(2026, 3, 5), 0)], month)["zero_visits"]
    assert zero.root_ids == ("z",)
    assert "zero_visits" not in run([chain("v", date(2026, 3, 5), 0, virtual_visits=4)], month)
    on_time, late = chain("t", date(2026, 3, 5), 10, accepted=date(2026, 4, 10)), chain(
        "l", date(2026, 3, 6), 10, accepted=date(2026, 4, 11))
    flag = run([on_time, late], month)["late_report"]
    assert flag.root_ids == ("l",) and flag.figures["deadline"] == "2026-04-10"
    broken = chain("b", date(2026, 3, 7), 10, visits_children=9)
    flag = run([on_time, broken], month)["breakdown_mismatch"]
    assert flag.root_ids == ("b",) and flag.figures["fields"] == ["visits_children"]
    flag = run([on_time, chain("c", date(2026, 3, 20), 10)], month, operating=lambda d: d < date(2026, 3, 15))[
        "closed_day"]
    assert flag.root_ids == ("c",) and flag.figures["days"] == ["2026-03-20"]


def test_checks_merge_per_library_and_a_visit_reaches_the_months_whose_history_holds_it():
    checks = Checks()
    checks.visit_changed("A", date(2025, 3, 9))
    checks.visit_changed("A", date(2025, 1, 31))
    checks.registry_changed("B")
    checks.visit_changed("B", date(2025, 3, 9))
    assert checks.ranges == {"A": (date(2025, 1, 1), date(2026, 3, 1)), "B": (date(2000, 1, 1), None)}
