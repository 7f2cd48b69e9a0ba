"""The rollups against the oracle, through the report-chain processors and a real chDB store.

Visit logs, mobile sessions, reading events, training records and donations are edited (moving
them to another library, day, month or province), retracted, and arrive late (an edit accepted
earlier than the version it follows in the log); batches are cut anywhere and a crash before the
offsets commit replays a batch, as the runners do. After every run each rollup, read through the
planner, equals the oracle, and equals the sum over the chains. Then, over a store filled the same
way, the planner's choice equals the chain rows' answer for any area, library type, period and
granularity.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.config import TIMEZONE
from services.domain.events import Envelope, Retraction, SubmissionRetracted
from services.domain.forms.donation import Donation, DonationReceived
from services.domain.forms.mobile_session import MobileSession, MobileSessionHeld
from services.domain.forms.reading_promotion import ReadingPromotion, ReadingPromotionHeld
from services.domain.forms.staff_training import StaffTrained, StaffTraining
from services.domain.forms.visit_log import VisitCounts, VisitLogged
from services.domain.reference import default_reference
from services.processors import runner
from services.processors.pipeline import ACTIVITIES, DAILY_VISITS
from services.store import rollups
from services.store.aggregates import Aggregates
from services.store.clickhouse import AreaFilter, Store
from tests.compare import compare_rollups
from tests.oracle import Oracle

REFERENCE = default_reference()
# Libraries in different provinces (legacy and 2025) and communes, so that an edit moves a report
# between provinces, communes and libraries.
LIBRARIES = [lib for lib in sorted(REFERENCE.libraries.values(), key=lambda lib: lib.library_id)
             if lib.area("legacy").province_code in ("02", "12")][::40][:6]
DAYS = [date(2025, 12, 30), date(2026, 1, 2), date(2026, 1, 31), date(2026, 2, 1), date(2026, 3, 15)]
ACTIVITY_ANSWERS = ("mobile_sessions", "reading_promotion", "training", "donations")


def visit(event_id: str, root_id: str, deprecated_id: str | None, library, day: date, total: int,
          accepted: datetime) -> VisitLogged:
    counts = dict.fromkeys(VisitCounts.model_fields, 0) | {
        "visits_total": total, "visits_adults": total, "visits_female": total, "visits_reading": total,
        "loans": total // 2}
    return VisitLogged(
        event_id=event_id, root_id=root_id, deprecated_id=deprecated_id, form_id="visit_log", form_version="1",
        submitted_at=accepted, occurred_on=day, library_id=library.library_id, areas=list(library.areas),
        submitter="t", source="openrosa", content_hash=hashlib.sha256(f"{event_id}{total}".encode()).hexdigest(),
        payload=VisitCounts(**counts))


def activity(event_id: str, root_id: str, deprecated_id: str | None, library, day: date, n: int,
             accepted: datetime, form: str) -> Envelope:
    """A mobile session, reading event, training record or donation; ``n`` sets its figures (and the
    occasion, donor, worker and result they are grouped by)."""
    payloads = {
        "mobile_session": (MobileSessionHeld, MobileSession(
            team="Đội 1", vehicle="car", stop_areas=list(library.areas), village_or_school="Bản Phố",
            latitude=22.5, longitude=104.5, visits_total=n, visits_children=n // 3, visits_adults=n - n // 3,
            loans=n // 2, activities=["book_lending"])),
        "reading_promotion": (ReadingPromotionHeld, ReadingPromotion(
            activity_type="storytelling", occasion=("book_day_21_04", "national_holiday")[n % 2],
            participants_total=n + 1, participants_children=n // 2, participants_adults=n + 1 - n // 2,
            co_organised_with_provincial_library=n % 3 == 0)),
        "staff_training": (StaffTrained, StaffTraining(
            worker_id=f"CB-{100 + n % 4:03d}", course="library_basics", hours=0.5 + n % 7 * 1.25,
            result=("passed", "failed", "attended")[n % 3])),
        "donation": (DonationReceived, Donation(
            donor_kind=("enterprise", "individual")[n % 2], donor_origin=("domestic", "foreign")[n % 3 == 0],
            books=n, money_vnd=n * 50_000)),
    }
    event_class, payload = payloads[form]
    return event_class(
        event_id=event_id, root_id=root_id, deprecated_id=deprecated_id, form_id=form, form_version="1",
        submitted_at=accepted, occurred_on=day, library_id=library.library_id, areas=list(library.areas),
        submitter="t", source="openrosa", content_hash=hashlib.sha256(f"{event_id}{n}".encode()).hexdigest(),
        payload=payload)


FORMS = ("visit_log", "mobile_session", "reading_promotion", "staff_training", "donation")


def retraction(version: Envelope, accepted: datetime) -> SubmissionRetracted:
    base = version.model_dump(exclude={"event_type", "payload", "event_id", "submitted_at", "content_hash",
                                       "deprecated_id"})
    return SubmissionRetracted(**base, event_id=f"{version.root_id}#retracted", submitted_at=accepted,
                               content_hash="f" * 64, payload=Retraction(
                                   retracts_event_type=version.event_type, reason_code="central_rejected",
                                   reason="rejected in review"))


def log_of(rng: random.Random, chains: int, forms: tuple[str, ...] = FORMS) -> list[tuple[int, object]]:
    """A log as the intake writes it: each chain's first version before its edits and retraction;
    chains interleaved; an edit's acceptance time sometimes earlier than the version before it in
    the log (late: the oracle's current version is the one accepted last); now and then a version
    published twice, the copy later in the log but before the chain's next version (a resend after
    the intake's ledger failed: an edit is held until its original is in the ledger)."""
    queues = []
    accepted = datetime(2026, 3, 20, 8, tzinfo=TIMEZONE)
    for n in range(chains):
        root = f"uuid:{rng.getrandbits(64):016x}-{n}"
        form = rng.choice(forms)
        versions: list[object] = []
        previous = None
        for v in range(rng.choice((1, 1, 2, 3))):
            accepted += timedelta(minutes=rng.randrange(0, 3))
            late = timedelta(minutes=-rng.randrange(1, 5)) if v and rng.random() < 0.2 else timedelta()
            event_id = root if v == 0 else f"{root}-v{v + 1}"
            args = (event_id, root, previous.event_id if previous else None, rng.choice(LIBRARIES),
                    rng.choice(DAYS), rng.randrange(0, 40), accepted + late)
            previous = visit(*args) if form == "visit_log" else activity(*args, form=form)
            versions.append(previous)
        if rng.random() < 0.2:
            accepted += timedelta(minutes=1)
            versions.append(retraction(previous, accepted))  # type: ignore[arg-type]
        queues.append(versions)
    log: list[object] = []
    while queues:
        queue = rng.choice(queues)
        event = queue.pop(0)
        log.append(event)
        if rng.random() < 0.1:  # published twice (the ledger failed after the publish; the phone resent it
            queue.insert(0, event)  # before the chain's next version, which waits for its original)
        if not queue:
            queues.remove(queue)
    return list(enumerate(log, start=1))


def run(store: Store, log: list[tuple[int, object]], rng: random.Random) -> None:
    """Fold the log as a runner does: batches of any size; now and then a crash after a batch's write
    and before its offsets, so that the batch (cut again, maybe differently) comes back, marked as
    handed over before."""
    committed = handed = 0
    while committed < len(log):
        batch = log[committed:committed + rng.randrange(1, 8)]
        redelivered = batch[0][0] <= handed
        handed = max(handed, batch[-1][0])
        for processor in (DAILY_VISITS, ACTIVITIES):  # one subscription's processors, as the runners run them
            runner.process(processor, store, batch, redelivered=redelivered)
        if rng.random() < 0.25:
            continue  # crashed before the commit: read again from the committed offset
        committed = batch[-1][0]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(f"chdb://{tmp_path_factory.mktemp('rollups') / 'store'}")
    store.migrate()
    yield store
    store.close()


ROLLUPS = tuple(t for family in (rollups.VISITS, rollups.ACTIVITIES)
                for t in (family.library_month, family.area_day, family.area_month, family.library_day) if t)


def _empty(store: Store) -> None:
    for table in (rollups.VISITS.chains, rollups.ACTIVITIES.chains, *ROLLUPS):
        store.select(f"TRUNCATE TABLE {table}")


def _areas() -> list[AreaFilter]:
    """The region, and a library with its commune and province, under each scheme (the planner test
    below draws the rest)."""
    areas = []
    for scheme, lib in (("legacy", LIBRARIES[0]), ("2025", LIBRARIES[-1])):
        here = lib.area(scheme)
        areas += [AreaFilter(scheme), AreaFilter(scheme, here.province_code),
                  AreaFilter(scheme, None, here.commune_code), AreaFilter(scheme, library_id=lib.library_id)]
    return areas


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), chains=st.integers(1, 30))
def test_every_rollup_equals_the_oracle_after_edits_moves_retractions_and_replays(store: Store, seed: int,
                                                                                    chains: int):
    _empty(store)
    rng = random.Random(seed)
    log = log_of(rng, chains)
    run(store, log, rng)
    oracle = Oracle(log, REFERENCE)
    aggregates = Aggregates(store, REFERENCE)
    for area in _areas():
        for granularity in ("day", "month"):
            for start, end in ((date(2025, 12, 1), date(2026, 3, 31)), (date(2025, 12, 31), date(2026, 3, 15))):
                expected = oracle.visits(area, start, end, granularity)
                for table in rollups.candidates(area, start, end, granularity):
                    assert aggregates.visits(area, start, end, granularity, table=table) == expected, \
                        (area, granularity, start, end, table)
                for name in ACTIVITY_ANSWERS:
                    expected = getattr(oracle, name)(area, start, end, granularity)
                    for table in rollups.candidates(area, start, end, granularity, family=rollups.ACTIVITIES):
                        assert getattr(aggregates, name)(area, start, end, granularity, table=table) == expected, \
                            (name, area, granularity, start, end, table)
    compare_rollups(aggregates)


def test_a_replay_into_an_empty_store_rebuilds_the_same_rollups(store: Store):
    rng = random.Random(7)
    log = log_of(rng, 60)
    _empty(store)
    run(store, log, random.Random(1))
    live = {t: store.select(f"SELECT * FROM {t} FINAL ORDER BY ALL") for t in ROLLUPS}
    _empty(store)  # (one chDB engine per process: the same store, emptied, stands for a new one)
    run(store, log, random.Random(99))  # the same log, cut into other batches, other crashes
    again = {t: store.select(f"SELECT * FROM {t} FINAL ORDER BY ALL") for t in live}
    assert again == live
    assert all(live.values())


# --- the planner: its choice answers as the chain rows do ------------------------------------------------


@pytest.fixture(scope="module")
def filled(store: Store) -> Aggregates:
    _empty(store)
    rng = random.Random(2026)
    run(store, log_of(rng, 400), rng)
    return Aggregates(store, REFERENCE)


@st.composite
def questions(draw: st.DrawFn) -> tuple[AreaFilter, date, date, str, str | None]:
    scheme = draw(st.sampled_from(("legacy", "2025")))
    lib = draw(st.sampled_from(LIBRARIES))
    here = lib.area(scheme)
    area = draw(st.sampled_from([AreaFilter(scheme), AreaFilter(scheme, here.province_code),
                                 AreaFilter(scheme, here.province_code, here.commune_code),
                                 AreaFilter(scheme, None, here.commune_code),
                                 AreaFilter(scheme, library_id=lib.library_id)]))
    first = draw(st.dates(date(2025, 11, 1), date(2026, 4, 30)))
    last = draw(st.dates(first, date(2026, 5, 31)))
    if draw(st.booleans()):  # whole months: the month rollups can answer
        first = first.replace(day=1)
        last = (last.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    granularity = draw(st.sampled_from(("day", "month", "quarter", "year")))
    library_type = draw(st.sampled_from([None, lib.library_type])) if area.library_id is None else None
    return area, first, last, granularity, library_type


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=questions())
def test_the_planners_table_answers_as_the_facts(filled: Aggregates, question):
    area, start, end, granularity, library_type = question
    planned = filled.visits(area, start, end, granularity, library_type)
    facts = filled.visits(area, start, end, granularity, library_type, table=rollups.CHAINS)
    assert planned == facts, (question, rollups.plan(area, start, end, granularity,  # type: ignore[arg-type]
                                                     [] if library_type else None).table)
    for name in ACTIVITY_ANSWERS:
        answer = getattr(filled, name)
        assert answer(area, start, end, granularity) == answer(area, start, end, granularity,
                                                               table=rollups.ACTIVITIES.chains), (name, question)


def test_the_planner_picks_the_smallest_table():
    region, library = AreaFilter("2025"), AreaFilter("2025", library_id="x")
    months = (date(2021, 1, 1), date(2026, 10, 31))
    assert rollups.plan(region, *months, "day").table == rollups.AREA_DAY
    assert rollups.plan(region, *months, "month").table == rollups.AREA_MONTH
    assert rollups.plan(region, date(2021, 1, 5), date(2026, 10, 31), "month").table == rollups.AREA_DAY
    assert rollups.plan(library, *months, "year").table == rollups.LIBRARY_MONTH
    assert rollups.plan(region, *months, "quarter", library_ids=["x"]).table == rollups.LIBRARY_MONTH
    assert rollups.plan(library, *months, "day").table == rollups.LIBRARY_DAY
    assert rollups.plan(library, *months, "day", family=rollups.ACTIVITIES).table == rollups.ACTIVITIES.chains
    with pytest.raises(ValueError, match="cannot answer"):
        rollups.plan(library, *months, "day", table=rollups.AREA_DAY)


def test_rollups_left_short_by_a_crash_are_rebuilt_from_the_chain_rows(store: Store):
    """A process killed between a chain insert and its views leaves the rollups short (ClickHouse does
    not make them one insert); the runners rebuild them at start. Here a rollup is emptied by hand."""
    _empty(store)
    rng = random.Random(11)
    run(store, log_of(rng, 40), rng)
    aggregates = Aggregates(store, REFERENCE)
    expected = aggregates.visits(AreaFilter("legacy"), date(2025, 12, 1), date(2026, 3, 31), "month")
    assert expected
    store.select(f"TRUNCATE TABLE {rollups.AREA_MONTH}")
    assert aggregates.visits(AreaFilter("legacy"), date(2025, 12, 1), date(2026, 3, 31), "month") != expected
    assert set(store.rebuild_rollups()) == set(ROLLUPS)
    assert aggregates.visits(AreaFilter("legacy"), date(2025, 12, 1), date(2026, 3, 31), "month") == expected
    compare_rollups(aggregates)


@pytest.mark.parametrize("lost", [rollups.AREA_MONTH, rollups.CHAINS])
def test_a_chain_write_retried_after_a_partial_failure_counts_once(store: Store, lost: str):
    """ClickHouse does not make a chain insert and its views' inserts one: a store failing between them
    (a full disk) keeps some blocks and loses others, and the processor retries the same write until
    the store takes it (``retry.until_written``). Here the visit chains' write reached the chain rows
    and every view, then one table's block is lost (emptied by hand): a rollup's, or the chain rows'
    while every rollup kept its own (what a full disk did in test_faults_kafka). The retried write
    puts back exactly the lost block and doubles nothing (migration 019)."""
    _empty(store)
    rng = random.Random(12)
    log = log_of(rng, 20)
    folded = DAILY_VISITS.fold(log, None, DAILY_VISITS.load(store, log, True), datetime.now(TIMEZONE))
    DAILY_VISITS.write(store, folded)
    aggregates = Aggregates(store, REFERENCE)
    area, start, end = AreaFilter("legacy"), date(2025, 12, 1), date(2026, 3, 31)
    expected = Oracle(log, REFERENCE).visits(area, start, end, "month")
    assert aggregates.visits(area, start, end, "month", table=rollups.CHAINS) == expected
    store.select(f"TRUNCATE TABLE {lost}")
    assert aggregates.visits(area, start, end, "month", table=lost) != expected
    DAILY_VISITS.write(store, folded)  # the retry: the same rows
    for table in rollups.candidates(area, start, end, "month"):
        assert aggregates.visits(area, start, end, "month", table=table) == expected, table
    compare_rollups(aggregates)
