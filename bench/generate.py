"""Realistic, seeded benchmark data: a registry of about 5,000 libraries over the 14 provinces'
communes, five years of daily visit logs, the other programme forms, late and duplicate arrivals.

- ``write_registry``: ``libraries.csv`` for ``LIBRARIES_FILE`` — every programme commune gets at
  least one library (a mix of the five types), the rest spread by commune, opening dates back to
  2005, about 70 % in the model.
- ``Workload.arrivals``: submissions in the order a server receives them. Each open day a library
  logs its visits (closed on Mondays and at Tết; seasons as ``services/tools/samples.py``;
  weekends busier; 3–15 % growth a year). Most arrive the same evening; ``late_rate`` of them
  days to weeks later (a phone offline in a mountain commune sends its backlog in one afternoon);
  ``duplicate_rate`` are sent twice (Collect retries after a lost answer); ``edit_rate`` are
  corrected later (``deprecatedID``).
- ``Workload.other_forms``: rotation batches, mobile sessions, reading promotion around the
  yearly occasions, training, donations — the sample generators of ``services/tools/samples.py``
  run over the large registry.
- ``Workload.events``: visit-log events built directly (no XML), for filling a log of millions of
  events to replay.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from services.config import TIMEZONE
from services.domain.events import AdminArea
from services.domain.forms.visit_log import VisitCounts, VisitLogged
from services.domain.reference import REFERENCE_DIR, Library, Reference
from services.tools import samples
from services.tools.submissions import fill_instance

NAMESPACE = uuid.UUID("0b5e3a8e-6a43-4f0c-93f4-9b8f1d3c2a77")
TYPES = {  # type → (share of libraries, average visits on an open day)
    "community_learning_centre": (0.34, 9.0),
    "commune_public_library": (0.22, 14.0),
    "culture_centre": (0.20, 7.0),
    "post_office_culture_point": (0.14, 4.0),
    "law_bookcase": (0.10, 2.0),
}
_TYPE_VI = {
    "community_learning_centre": ("Trung tâm học tập cộng đồng", "Community Learning Centre"),
    "commune_public_library": ("Thư viện xã", "Commune Library"),
    "culture_centre": ("Nhà văn hóa", "Culture Centre"),
    "post_office_culture_point": ("Điểm bưu điện văn hóa xã", "Post Office Culture Point"),
    "law_bookcase": ("Tủ sách pháp luật", "Law Bookcase"),
}
_WEEKDAY = (0.0, 0.9, 0.9, 1.0, 1.0, 1.4, 1.6)  # Monday closed; weekends busier
_TET = {2022: date(2022, 2, 1), 2023: date(2023, 1, 22), 2024: date(2024, 2, 10), 2025: date(2025, 1, 29),
        2026: date(2026, 2, 17), 2027: date(2027, 2, 6)}


def write_registry(path: Path, count: int = 5000, seed: int = 2026, directory: Path = REFERENCE_DIR) -> Path:
    """A registry of ``count`` fictional libraries over the programme's communes (both schemes)."""
    rng = random.Random(f"{seed}:registry")
    with (directory / "commune_mapping.csv").open(encoding="utf-8", newline="") as fh:
        mapping = list(csv.DictReader(fh))
    with (directory / "communes_legacy.csv").open(encoding="utf-8", newline="") as fh:
        legacy = {r["code"]: r for r in csv.DictReader(fh)}
    with (directory / "communes_2025.csv").open(encoding="utf-8", newline="") as fh:
        current = {r["code"]: r for r in csv.DictReader(fh)}
    pairs = sorted({(r["legacy_code"], r["code_2025"]) for r in mapping
                    if r["legacy_code"] in legacy and r["code_2025"] in current})
    if not pairs:
        raise ValueError(f"no commune mapping rows in {directory}")
    chosen = pairs + [rng.choice(pairs) for _ in range(max(0, count - len(pairs)))]
    chosen = chosen[:count]
    types, shares = zip(*((t, s) for t, (s, _) in TYPES.items()), strict=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["library_id", "name_vi", "name_en", "library_type", "commune_code_legacy",
                         "province_code_legacy", "commune_code_2025", "province_code_2025", "latitude", "longitude",
                         "opened_on", "status", "model_joined_on"])
        for n, (legacy_code, code_2025) in enumerate(chosen, start=1):
            kind = rng.choices(types, weights=shares)[0]
            old, new = legacy[legacy_code], current[code_2025]
            opened = date(2005, 1, 1) + timedelta(days=rng.randrange(19 * 365))
            joined = (max(opened, date(2023, 1, 1)) + timedelta(days=rng.randrange(900))
                      if rng.random() < 0.7 else None)
            vi, en = _TYPE_VI[kind]
            writer.writerow([
                f"LIB-{old['province_code']}-{n:05d}", f"{vi} {old['name_vi']}", f"{old['name_en']} {en}", kind,
                legacy_code, old["province_code"], code_2025, new["province_code"],
                f"{21.0 + rng.uniform(0, 2.2):.5f}", f"{103.2 + rng.uniform(0, 3.6):.5f}", opened.isoformat(),
                "operating" if rng.random() > 0.02 else "suspended",
                joined.isoformat() if joined and joined <= date(2026, 6, 30) else ""])
    return path


def load_reference(registry: Path) -> Reference:
    return Reference.load(libraries_file=registry)


@dataclass(frozen=True)
class Submission:
    """One submission as a phone sends it."""

    form_id: str
    instance_id: str
    answers: dict[str, str]
    arrives_on: date
    kind: str = "new"  # "new", "late", "duplicate" (identical resend), "edit" (deprecatedID)
    deprecated_id: str | None = None

    def xml(self, xform: bytes) -> bytes:
        return fill_instance(xform, self.answers, self.instance_id, self.deprecated_id)


def _split(total: int, shares: tuple[float, ...], rng: random.Random) -> list[int]:
    parts = [min(total, int(total * s * rng.uniform(0.85, 1.15))) for s in shares[:-1]]
    while sum(parts) > total:
        parts[parts.index(max(parts))] -= 1
    return [*parts, total - sum(parts)]


def visit_counts(total: int, rng: random.Random) -> dict[str, int]:
    """A consistent breakdown of ``total`` visits (the form's sums hold)."""
    children, adults = _split(total, (0.45, 0.55), rng)
    female, male = _split(total, (0.55, 0.45), rng)
    learning, information, reading, events = _split(total, (0.2, 0.15, 0.55, 0.1), rng)
    return {"visits_total": total, "visits_children": children, "visits_adults": adults,
            "visits_female": female, "visits_male": male,
            "visits_ethnic_minority": min(total, int(total * rng.uniform(0.5, 0.9))),
            "visits_learning": learning, "visits_information": information, "visits_reading": reading,
            "visits_events": events, "virtual_visits": rng.randrange(3), "loans": int(total * rng.uniform(0.3, 0.8)),
            "renewals": rng.randrange(2), "new_registrations": int(rng.random() < 0.2)}


class Workload:
    """Visit logs of every library in ``reference`` over [start, end], in arrival order."""

    def __init__(self, reference: Reference, start: date, end: date, seed: int = 2026, *,
                 late_rate: float = 0.08, duplicate_rate: float = 0.02, edit_rate: float = 0.01) -> None:
        self.reference, self.start, self.end, self.seed = reference, start, end, seed
        self.late_rate, self.duplicate_rate, self.edit_rate = late_rate, duplicate_rate, edit_rate
        self.libraries = sorted(reference.libraries.values(), key=lambda lib: lib.library_id)
        self._level = {lib.library_id: self._base(lib) for lib in self.libraries}

    def shard(self, index: int, count: int) -> Workload:
        """The workload of every ``count``-th library from ``index``, for generating in parallel processes.

        Shards are disjoint by library and seeded by their index, so their union is reproducible
        and as realistic as the whole — though not the same values as the unsharded workload."""
        part = Workload(self.reference, self.start, self.end, self.seed + index, late_rate=self.late_rate,
                        duplicate_rate=self.duplicate_rate, edit_rate=self.edit_rate)
        part.libraries = self.libraries[index::count]
        return part

    def _base(self, library: Library) -> tuple[float, float]:
        rng = random.Random(f"{self.seed}:{library.library_id}")
        return TYPES.get(library.library_type, (0, 3.0))[1] * rng.uniform(0.5, 1.6), rng.uniform(0.03, 0.15)

    def _open(self, library: Library, day: date) -> bool:
        tet = _TET.get(day.year)
        return (library.status == "operating" and (library.opened_on is None or library.opened_on <= day)
                and day.weekday() != 0 and not (tet is not None and 0 <= (day - tet).days < 5))

    def total(self, library: Library, day: date, rng: random.Random) -> int:
        level, growth = self._level[library.library_id]
        years = (day - date(2022, 1, 1)).days / 365.25
        mean = level * samples._SEASON[day.month] * _WEEKDAY[day.weekday()] * (1 + growth) ** years
        return max(0, round(rng.gauss(mean, mean * 0.3 + 0.5)))

    def answers(self, library: Library, day: date, total: int, rng: random.Random) -> dict[str, str]:
        counts = visit_counts(total, rng)
        return {"province": library.area("2025").province_code, "library_id": library.library_id,
                "report_date": day.isoformat(), **{k: str(v) for k, v in counts.items()}}

    def instance_id(self, library: Library, day: date, version: int = 0) -> str:
        return f"uuid:{uuid.uuid5(NAMESPACE, f'{self.seed}:{library.library_id}:{day}:{version}')}"

    def days(self) -> Iterator[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)

    def arrivals(self) -> Iterator[Submission]:
        """Every visit-log submission in the order the server receives them (by arrival day)."""
        rng = random.Random(f"{self.seed}:arrivals")
        pending: list[tuple[date, int, Submission]] = []  # late ones, resends and edits, by arrival
        n = 0
        for day in self.days():
            while pending and pending[0][0] <= day:
                yield heapq.heappop(pending)[2]
            for library in self.libraries:
                if not self._open(library, day):
                    continue
                first = Submission("visit_log", self.instance_id(library, day),
                                   self.answers(library, day, self.total(library, day, rng), rng), day)
                r = rng.random()
                if r < self.late_rate:
                    later = day + timedelta(days=rng.choice((1, 2, 3, 7, 14, 30, 45)))
                    first = Submission(first.form_id, first.instance_id, first.answers, later, "late")
                    n += 1
                    heapq.heappush(pending, (later, n, first))
                else:
                    yield first
                if r > 1 - self.duplicate_rate:
                    again = first.arrives_on + timedelta(days=rng.choice((0, 0, 1)))
                    n += 1
                    heapq.heappush(pending, (again, n, Submission(first.form_id, first.instance_id, first.answers,
                                                                  again, "duplicate")))
                elif self.late_rate <= r < self.late_rate + self.edit_rate:
                    fixed = self.answers(library, day, self.total(library, day, rng), rng)
                    when = first.arrives_on + timedelta(days=rng.randrange(1, 10))
                    n += 1
                    heapq.heappush(pending, (when, n, Submission("visit_log", self.instance_id(library, day, 1),
                                                                 fixed, when, "edit", first.instance_id)))
        while pending:
            yield heapq.heappop(pending)[2]

    def other_forms(self, sessions_per_library: float = 0.2) -> Iterator[Submission]:
        """The other six forms over the registry, from the sample generators, scaled to its size."""
        scale = max(1, len(self.libraries) // 44)
        generators = (
            ("library_registry", lambda ref, until: samples.registry_reports(ref, until, self.seed)),
            ("rotation_movement", lambda ref, until: samples.rotation_reports(ref, until, self.seed)),
            ("mobile_session", lambda ref, until: samples.mobile_reports(
                ref, until, self.seed, sessions=int(len(self.libraries) * sessions_per_library))),
            ("reading_promotion", lambda ref, until: samples.reading_promotion_reports(ref, until, self.seed)),
            ("staff_training", lambda ref, until: samples.training_reports(ref, until, self.seed, workers=24 * scale)),
            ("donation", lambda ref, until: samples.donation_reports(ref, until, self.seed, donations=20 * scale)),
        )
        for form_id, generate in generators:
            for report in generate(self.reference, self.end):
                yield Submission(form_id, report.instance_id, report.answers, self.end)

    def events(self, submitter: str = "bench") -> Iterator[VisitLogged]:
        """Visit-log events as the intake would publish them, without XML: for multi-million logs.

        Built with ``model_construct`` (the values are consistent by construction), arrival time
        the evening of the arrival day; duplicates are left out (the intake never publishes them).
        """
        for sub in self.arrivals():
            if sub.kind == "duplicate":
                continue
            library = self.reference.libraries[sub.answers["library_id"]]
            counts = {k: int(v) for k, v in sub.answers.items() if k in VisitCounts.model_fields}
            yield VisitLogged.model_construct(
                event_type="visit_logged", schema_version=1, event_id=sub.instance_id,
                root_id=sub.deprecated_id or sub.instance_id, deprecated_id=sub.deprecated_id,
                form_id="visit_log", form_version="bench", occurred_on=date.fromisoformat(sub.answers["report_date"]),
                submitted_at=datetime.combine(sub.arrives_on, time(19, 30), TIMEZONE),
                library_id=library.library_id, areas=list(_areas(library)), submitter=submitter, source="openrosa",
                content_hash=hashlib.sha256(repr(sorted(sub.answers.items())).encode()).hexdigest(),
                attachments=[], payload=VisitCounts.model_construct(**counts))

    def event_records(self, submitter: str = "bench") -> Iterator[tuple[str, bytes]]:
        """``(partition key, JSON)`` of the same events as ``events``, built without pydantic: the
        wire format ``services.bus.codec.encode`` writes (checked by ``bench/replay.py``), about
        ten times faster, for logs of ten million events."""
        areas = {lib.library_id: [a.model_dump() for a in _areas(lib)] for lib in self.libraries}
        counts = tuple(VisitCounts.model_fields)
        for sub in self.arrivals():
            if sub.kind == "duplicate":
                continue
            answers = sub.answers
            record = {
                "schema_version": 1, "event_type": "visit_logged", "event_id": sub.instance_id,
                "root_id": sub.deprecated_id or sub.instance_id, "deprecated_id": sub.deprecated_id,
                "form_id": "visit_log", "form_version": "bench",
                "submitted_at": f"{sub.arrives_on.isoformat()}T19:30:00+07:00", "occurred_on": answers["report_date"],
                "library_id": answers["library_id"], "areas": areas[answers["library_id"]], "submitter": submitter,
                "source": "openrosa",
                "content_hash": hashlib.sha256(repr(sorted(answers.items())).encode()).hexdigest(),
                "attachments": [], "payload": {k: int(answers[k]) for k in counts}}
            # keyed as services.bus.topics.key_for keys it: by the chain's root_id
            yield record["root_id"], json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _areas(library: Library) -> tuple[AdminArea, AdminArea]:
    return library.areas


# --- visit facts generated inside ClickHouse (the query benchmark's millions of rows) ---------------

FACT_LIBRARIES_TABLE = "bench_libraries"  # idx, library_id, areas under both schemes, level, growth


def fact_libraries(reference: Reference, count: int, seed: int = 2026) -> list[list[object]]:
    """``count`` rows for ``FACT_LIBRARIES_TABLE``: the registry's libraries in a seeded order (so any
    prefix spreads over the provinces), then, beyond the registry, more libraries in the same communes
    (``LIB-<province>-<n>`` with n past the registry's numbers: the country growing)."""
    rng = random.Random(f"{seed}:facts")
    registry = sorted(reference.libraries.values(), key=lambda lib: lib.library_id)
    rng.shuffle(registry)
    rows: list[list[object]] = []
    for idx in range(count):
        lib = registry[idx % len(registry)]
        legacy, current = lib.area("legacy"), lib.area("2025")
        library_id = lib.library_id if idx < len(registry) else f"LIB-{legacy.province_code}-{idx + 1:05d}"
        level = TYPES.get(lib.library_type, (0, 3.0))[1] * rng.uniform(0.5, 1.6)
        rows.append([idx, library_id, legacy.province_code, legacy.commune_code, current.province_code,
                     current.commune_code, level, rng.uniform(0.03, 0.15)])
    return rows


def fact_libraries_ddl() -> str:
    return (f"CREATE TABLE IF NOT EXISTS {FACT_LIBRARIES_TABLE} (idx UInt32, library_id String, "
            "province_legacy String, commune_legacy String, province_2025 String, commune_2025 String, "
            "level Float64, growth Float64) ENGINE = MergeTree ORDER BY idx")


def visit_facts_sql(first: int, count: int, days: int, start: date, seed: int = 2026) -> str:
    """A SELECT of visit facts ``first`` … ``first + count - 1``: fact n is library ``n // days`` (a row
    of ``FACT_LIBRARIES_TABLE``) on its ``n % days``-th open day from ``start`` (a Monday; closed on
    Mondays), visits as ``Workload.total`` (level × season × weekday × yearly growth, Gaussian noise
    from seeded hashes), the form's breakdowns consistent with the total, 8 % sent days to weeks late.
    Columns: the ``visits_library_daily`` ones, plus ``n``, ``h`` (a seeded hash of n), ``event_id``
    and ``submitted_at`` (evening of the day, or the late arrival's)."""
    season = "[" + ", ".join(str(samples._SEASON[m]) for m in range(1, 13)) + "]"
    weekday = "[" + ", ".join(str(w) for w in _WEEKDAY) + "]"  # toDayOfWeek: 1 = Monday
    return f"""
SELECT n, library_id, day, province_legacy, commune_legacy, province_2025, commune_2025, h,
       level * {season}[toMonth(day)] * {weekday}[toDayOfWeek(day)]
           * pow(1 + growth, dateDiff('day', toDate('2022-01-01'), day) / 365.25) AS mean,
       toUInt32(greatest(0, round(mean + sqrt(-2 * log(u1)) * cos(2 * pi() * u2) * (mean * 0.3 + 0.5))))
           AS visits_total,
       toUInt32(round(visits_total * 0.45)) AS visits_children,
       toUInt32(visits_total - visits_children) AS visits_adults,
       toUInt32(round(visits_total * 0.55)) AS visits_female,
       toUInt32(visits_total - visits_female) AS visits_male,
       toUInt32(floor(visits_total * (0.5 + 0.4 * u3))) AS visits_ethnic_minority,
       toUInt32(floor(visits_total * 0.2)) AS visits_learning,
       toUInt32(floor(visits_total * 0.15)) AS visits_information,
       toUInt32(floor(visits_total * 0.1)) AS visits_events,
       toUInt32(visits_total - visits_learning - visits_information - visits_events) AS visits_reading,
       toUInt32(h % 3) AS virtual_visits,
       toUInt32(floor(visits_total * (0.3 + 0.5 * u4))) AS loans,
       toUInt32(bitShiftRight(h, 8) % 2) AS renewals,
       toUInt32(bitShiftRight(h, 16) % 5 = 0) AS new_registrations,
       toUInt32(1) AS reports,
       toUInt64(n + 1) AS version,
       concat('uuid:', toString(reinterpretAsUUID(sipHash128({seed}, library_id, day)))) AS event_id,
       toDateTime64(day, 3, 'Asia/Ho_Chi_Minh') + toIntervalMinute(19 * 60 + 30)
           + toIntervalDay(if(bitShiftRight(h, 24) % 100 < 8,
                              [1, 2, 3, 7, 14, 30, 45][1 + bitShiftRight(h, 32) % 7], 0)) AS submitted_at
FROM (
    SELECT number AS n, intDiv(number, {days}) AS idx, number % {days} AS k,
           toDate('{start.isoformat()}') + intDiv(k, 6) * 7 + 1 + k % 6 AS day,
           sipHash64({seed}, number) AS h,
           (sipHash64({seed}, number, 1) % 1000003 + 1) / 1000004 AS u1,
           (sipHash64({seed}, number, 2) % 1000003) / 1000003 AS u2,
           (sipHash64({seed}, number, 3) % 1000003) / 1000003 AS u3,
           (sipHash64({seed}, number, 4) % 1000003) / 1000003 AS u4
    FROM numbers({first}, {count})
) AS f
INNER JOIN {FACT_LIBRARIES_TABLE} AS lib USING (idx)
"""
