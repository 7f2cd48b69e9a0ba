"""Realistic sample submissions for every programme form, for the sample library registry.

Deterministic (seeded) and with deterministic instanceIDs (uuid5), so loading them twice is
all resends. Everything is fictional, like the registry it is built on.

- visit_log: one monthly report per library from January 2024 (or its opening) to last month,
  with the shape a mountain commune library has: a dip at Tết, peaks in summer and around the
  April book days, most visitors from ethnic minorities, yearly growth of 5–18 %. Each carries
  when it was sent (``sent_at``): each library has its own habit (on time 50–95 % of months),
  a report on time is sent 1–10 days after its month's end (by the deadline), a late one 11–45
  days after. Drawn from a generator of its own, so the answers are the same with or without it.
- library_registry: every library's joining of the model (registry ``model_joined_on``), a
  coordination agreement for about half of them, a few updates, and a few new libraries
  registered after the 2025 reform (ids ``LIB-NEW-…``).
- rotation_movement: batches dispatched by the provincial library (and a few shared between
  grassroots libraries), received a few days later and returned a few months after that; a
  batch still out at ``until`` has no return yet.
- mobile_session, reading_promotion (around 21/4, 23/4, Lifelong Learning Week, 2/10 and
  holidays), staff_training, donation: a few dozen each over 2024 to ``until``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from services.config import TIMEZONE
from services.domain.periods import month_end as last_day_of_month
from services.domain.periods import months_between
from services.domain.quality import REPORTING_GRACE_DAYS
from services.domain.reference import Library, Reference

_BASE_VISITS = {
    "commune_public_library": 320, "community_learning_centre": 220, "culture_centre": 180,
    "post_office_culture_point": 90, "law_bookcase": 40, "other": 60,
}
_SEASON = {1: 0.9, 2: 0.6, 3: 1.0, 4: 1.25, 5: 1.05, 6: 1.15, 7: 1.3, 8: 1.2, 9: 1.0, 10: 1.15, 11: 1.0, 12: 0.95}
_NAMESPACE = uuid.UUID("6f1d8a52-3b0e-4c55-9a51-8c3c2b0f7e11")


@dataclass(frozen=True)
class SampleReport:
    instance_id: str
    answers: dict[str, str]
    # When the phone sent it (Asia/Ho_Chi_Minh): what a trusted loader gives the intake as its
    # acceptance time (``load_samples.load_in_process``). None: a form without a reporting
    # deadline, accepted when it is loaded.
    sent_at: datetime | None = None


def _split(total: int, shares: list[float], rng: random.Random) -> list[int]:
    parts = [int(total * s * rng.uniform(0.9, 1.1)) for s in shares[:-1]]
    while sum(parts) > total:
        parts[parts.index(max(parts))] -= 1
    return [*parts, total - sum(parts)]


def _months(first: date, last: date) -> Iterator[date]:
    """The last days of the months from ``first``'s to ``last``'s."""
    return (last_day_of_month(month) for month in months_between(first, last))


def _sent_at(rng: random.Random, punctual: float, month_end: date) -> datetime:
    """When a month's report is sent: by the deadline (the month's end + ``REPORTING_GRACE_DAYS``) with
    probability ``punctual``."""
    days = rng.randint(1, REPORTING_GRACE_DAYS) if rng.random() < punctual else \
        rng.randint(REPORTING_GRACE_DAYS + 1, 45)
    return datetime.combine(month_end + timedelta(days=days), time(rng.randint(7, 20), rng.randint(0, 59)),
                            tzinfo=TIMEZONE)


def monthly_reports(library: Library, until: date, seed: int = 2026) -> Iterator[SampleReport]:
    rng = random.Random(f"{seed}:{library.library_id}")
    sending = random.Random(f"{seed}:{library.library_id}:sending")  # its own: the answers do not depend on it
    punctual = sending.uniform(0.5, 0.95)
    base = _BASE_VISITS.get(library.library_type, 60) * rng.uniform(0.7, 1.3)
    growth = rng.uniform(0.05, 0.18)
    start = max(library.opened_on or date(2024, 1, 1), date(2024, 1, 1))
    for month_end in _months(start, until):
        if month_end > until:
            break
        years = (month_end - date(2024, 1, 1)).days / 365.25
        total = max(0, int(base * (1 + growth) ** years * _SEASON[month_end.month] * rng.uniform(0.85, 1.15)))
        children, adults = _split(total, [rng.uniform(0.4, 0.6), 0], rng)
        female, male = _split(total, [rng.uniform(0.47, 0.56), 0], rng)
        learning, information, reading, events = _split(total, [0.3, 0.2, 0.4, 0.1], rng)
        loans = int(total * rng.uniform(0.4, 0.8))
        answers = {
            "province": library.area("2025").province_code,
            "library_id": library.library_id,
            "report_date": month_end.isoformat(),
            "visits_total": total, "visits_children": children, "visits_adults": adults,
            "visits_female": female, "visits_male": male,
            "visits_ethnic_minority": int(total * rng.uniform(0.6, 0.92)),
            "visits_learning": learning, "visits_information": information,
            "visits_reading": reading, "visits_events": events,
            "virtual_visits": int(total * rng.uniform(0.0, 0.08)),
            "loans": loans, "renewals": int(loans * rng.uniform(0.05, 0.15)),
            "new_registrations": int(total * rng.uniform(0.01, 0.05)),
        }
        instance_id = f"uuid:{uuid.uuid5(_NAMESPACE, f'{library.library_id}:{month_end.isoformat()}')}"
        yield SampleReport(instance_id, {k: str(v) for k, v in answers.items()}, _sent_at(sending, punctual, month_end))


def sample_reports(reference: Reference, until: date) -> Iterator[SampleReport]:
    """Every sample library's monthly reports up to ``until`` (the last complete month's end)."""
    for library in sorted(reference.libraries.values(), key=lambda lib: lib.library_id):
        yield from monthly_reports(library, until)


# --- the other programme forms ----------------------------------------------------------------

_FIRST_DAY = date(2024, 1, 1)


def _report(form_id: str, key: str, answers: dict[str, object]) -> SampleReport:
    instance_id = f"uuid:{uuid.uuid5(_NAMESPACE, f'{form_id}:{key}')}"
    return SampleReport(instance_id, {k: str(v) for k, v in answers.items() if v is not None})


def _where(library: Library) -> dict[str, object]:
    return {"province": library.area("2025").province_code, "library_id": library.library_id}


def _open_on(library: Library, day: date) -> bool:
    return library.opened_on is None or library.opened_on <= day


def _day_between(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randint(0, max(0, (last - first).days)))


def _geopoint(latitude: float, longitude: float, rng: random.Random, spread: float) -> str:
    return (f"{latitude + rng.uniform(-spread, spread):.6f} {longitude + rng.uniform(-spread, spread):.6f} "
            f"{rng.randint(150, 1400)}.0 {rng.choice((3.9, 4.8, 6.0, 8.5, 12.0))}")


def _libraries(reference: Reference) -> list[Library]:
    return sorted(reference.libraries.values(), key=lambda lib: lib.library_id)


def _by_province(reference: Reference) -> dict[str, list[Library]]:
    provinces: dict[str, list[Library]] = {}
    for lib in _libraries(reference):
        provinces.setdefault(lib.area("2025").province_code, []).append(lib)
    return provinces


def registry_reports(reference: Reference, until: date, seed: int = 2026) -> Iterator[SampleReport]:
    rng = random.Random(f"{seed}:library_registry")
    for lib in _libraries(reference):
        joined = lib.model_joined_on
        if joined is None or joined > until:
            continue
        yield _report("library_registry", f"{lib.library_id}:model_joined",
                      {"action": "model_joined", **_where(lib), "effective_date": joined.isoformat()})
        agreed = joined + timedelta(days=rng.randint(10, 90))
        if rng.random() < 0.5 and agreed <= until:
            yield _report("library_registry", f"{lib.library_id}:coordination_agreed",
                          {"action": "coordination_agreed", **_where(lib), "effective_date": agreed.isoformat()})
    # A few updates: a status confirmed after the 2025 reform, with the position taken again on site.
    for lib in rng.sample(_libraries(reference), 4):
        day = _day_between(rng, date(2025, 7, 15), until)
        if day > until or lib.latitude is None or lib.longitude is None or not _open_on(lib, day):
            continue
        yield _report("library_registry", f"{lib.library_id}:update:{day.isoformat()}", {
            "action": "update", **_where(lib), "status": "operating",
            "location": _geopoint(lib.latitude, lib.longitude, rng, 0.01), "effective_date": day.isoformat()})
    # New libraries after the reform, in communes without a registered library.
    taken = {lib.area("2025").commune_code for lib in reference.libraries.values()}
    by_province = _by_province(reference)
    for n, province_code in enumerate(sorted(by_province)[::3]):
        opened = _day_between(rng, date(2025, 8, 1), date(2026, 9, 30))
        registered = opened + timedelta(days=rng.randint(0, 30))
        if registered > until:
            continue
        communes = [c for c in reference.communes_in("2025", province_code)
                    if reference.in_programme(c.code) and c.code not in taken]
        commune = rng.choice(communes)
        legacy = rng.choice(reference.legacy_communes_of(commune.code))
        peers = [lib for lib in by_province[province_code] if lib.latitude is not None and lib.longitude is not None]
        latitude = sum(lib.latitude or 0 for lib in peers) / len(peers)
        longitude = sum(lib.longitude or 0 for lib in peers) / len(peers)
        kind, prefix = rng.choice((("commune_public_library", "Thư viện"), ("community_learning_centre",
                                   "Trung tâm học tập cộng đồng"), ("other", "Tủ sách cộng đồng")))
        place = commune.name_vi.split(" ", 1)[1]
        kind_of_place = "phường" if commune.name_vi.startswith("Phường") else "xã"
        yield _report("library_registry", f"register:{n}:{commune.code}", {
            "action": "register", "province": province_code, "name_vi": f"{prefix} {kind_of_place} {place}",
            "library_type": kind, "commune_2025": commune.code, "commune_legacy": legacy.code,
            "location": _geopoint(latitude, longitude, rng, 0.08), "opened_on": opened.isoformat(),
            "effective_date": registered.isoformat()})


def rotation_reports(reference: Reference, until: date, seed: int = 2026) -> Iterator[SampleReport]:
    rng = random.Random(f"{seed}:rotation_movement")
    by_province = _by_province(reference)
    provinces = sorted(by_province)
    sequence: dict[tuple[str, int], int] = {}
    batches = []
    for year in (2024, 2025, 2026):
        for i, province_code in enumerate(provinces):
            if (i + year) % 2:  # each province dispatches every other year or so, in turn
                continue
            dispatched = _day_between(rng, date(year, 2, 15), date(year, 10, 31))
            candidates = [lib for lib in by_province[province_code] if _open_on(lib, dispatched)]
            if not candidates:
                continue
            batches.append((province_code, dispatched, rng.choice(candidates), None))
        # sharing between two grassroots libraries of one province
        province_code = provinces[year % len(provinces)]
        dispatched = _day_between(rng, date(year, 3, 1), date(year, 9, 30))
        open_now = [lib for lib in by_province[province_code] if _open_on(lib, dispatched)]
        if len(open_now) >= 2:
            origin, target = rng.sample(open_now, 2)
            batches.append((province_code, dispatched, target, origin))
    for province_code, dispatched, target, origin in batches:
        seq = sequence[(province_code, dispatched.year)] = sequence.get((province_code, dispatched.year), 0) + 1
        batch_id = f"LC-{province_code}-{dispatched.year}-{seq:03d}"
        titles = rng.randint(30, 120) if origin is None else rng.randint(10, 40)
        copies = int(titles * rng.uniform(1.5, 3.0))
        common = {
            "batch_id": batch_id, **_where(target),
            "origin": "provincial_library" if origin is None else "grassroots_library",
            "origin_province": province_code, "origin_library_id": origin.library_id if origin else None,
            "titles": titles, "copies": copies, "ethnic_language_copies": int(copies * rng.uniform(0.05, 0.25)),
        }
        received = dispatched + timedelta(days=rng.randint(1, 6))
        returned = received + timedelta(days=rng.randint(60, 150))
        steps = (("dispatched", dispatched, 0, 0), ("received", received, 0, rng.choice((0, 0, 1, 2))),
                 ("returned", returned, rng.choice((0, 0, 1, 3)), rng.randint(0, 4)))
        for movement, day, lost, damaged in steps:
            if day > until:
                break
            answers = {**common, "movement": movement, "movement_date": day.isoformat()}
            if movement != "dispatched":
                answers |= {"copies_lost": lost, "copies_damaged": damaged}
            yield _report("rotation_movement", f"{batch_id}:{movement}", answers)


_VILLAGES = ("Thôn Nà Pồng", "Bản Khuổi Lè", "Bản Pác Bó", "Thôn Nặm Cằm", "Bản Phiêng Luông", "Thôn Lũng Vài",
             "Bản Sin Suối Hồ", "Thôn Khau Vai", "Bản Mường Hum", "Thôn Tả Phìn")
_MOBILE_ACTIVITIES = ("book_lending", "reading_space", "storytelling", "book_introduction", "digital_services",
                      "film_screening", "contest")


def mobile_reports(reference: Reference, until: date, seed: int = 2026, sessions: int = 30) -> Iterator[SampleReport]:
    rng = random.Random(f"{seed}:mobile_session")
    libraries = [lib for lib in _libraries(reference) if lib.latitude is not None and lib.longitude is not None]
    for n in range(sessions):
        day = _day_between(rng, _FIRST_DAY, until)
        lib = rng.choice([lib for lib in libraries if _open_on(lib, day)])
        province_code = lib.area("2025").province_code
        nearby = [c for c in reference.communes_in("2025", province_code) if reference.in_programme(c.code)]
        home = reference.commune("2025", lib.area("2025").commune_code)
        stop = home if home is not None and rng.random() < 0.5 else rng.choice(nearby)
        legacy = rng.choice(reference.legacy_communes_of(stop.code))
        place = (rng.choice(_VILLAGES) if rng.random() < 0.6
                 else f"Trường PTDTBT Tiểu học {legacy.name_vi.split(' ', 1)[1]}")
        total = rng.randint(25, 180)
        children = int(total * rng.uniform(0.45, 0.75))
        yield _report("mobile_session", f"{n}:{lib.library_id}:{day.isoformat()}", {
            **_where(lib), "team": f"Đội lưu động số {rng.randint(1, 3)}",
            "vehicle": rng.choice(("library_van", "library_van", "car", "motorbike", "boat")),
            "session_date": day.isoformat(), "stop_commune_2025": stop.code, "stop_commune_legacy": legacy.code,
            "village_or_school": place, "location": _geopoint(lib.latitude or 0, lib.longitude or 0, rng, 0.1),
            "visits_total": total, "visits_children": children, "visits_adults": total - children,
            "loans": int(total * rng.uniform(0.3, 0.9)),
            "activities": " ".join(sorted(rng.sample(_MOBILE_ACTIVITIES, rng.randint(1, 4)))),
        })


# occasion, first and last day (month, day) it is usually celebrated on, events per year
_OCCASIONS = (
    ("book_day_21_04", (4, 15), (4, 21), 5), ("world_book_day_23_04", (4, 22), (4, 25), 2),
    ("lifelong_learning_week", (10, 1), (10, 7), 4), ("study_promotion_day_02_10", (10, 1), (10, 3), 2),
    ("national_holiday", (6, 1), (6, 1), 1), ("national_holiday", (9, 1), (9, 2), 1),
    ("local_holiday", (1, 20), (2, 20), 1), ("other", (7, 1), (8, 15), 1),
)
_OCCASION_DETAIL = {(6, 1): "Tết Thiếu nhi 1/6", (9, 1): "Quốc khánh 2/9", (1, 20): "Lễ hội xuống đồng",
                    (7, 1): "Hè đọc sách cùng thiếu nhi"}
_PARTNERS = ("Trường Tiểu học xã", "Đoàn Thanh niên xã", "Hội Phụ nữ xã", "Trường THCS xã", "Bưu điện văn hóa xã", "")


def reading_promotion_reports(reference: Reference, until: date, seed: int = 2026) -> Iterator[SampleReport]:
    rng = random.Random(f"{seed}:reading_promotion")
    libraries = _libraries(reference)
    for year in (2024, 2025, 2026):
        for occasion, (m1, d1), (m2, d2), per_year in _OCCASIONS:
            for n in range(per_year):
                day = _day_between(rng, date(year, m1, d1), date(year, m2, d2))
                if day > until:
                    continue
                lib = rng.choice([lib for lib in libraries if _open_on(lib, day)])
                children = rng.randint(20, 250)
                partners = ", ".join(p for p in rng.sample(_PARTNERS, 2) if p)
                yield _report("reading_promotion", f"{year}:{occasion}:{m1}:{n}", {
                    **_where(lib),
                    "activity_type": rng.choice(("book_fair", "reading_festival", "storytelling", "book_introduction",
                                                 "contest", "exhibition", "reading_club")),
                    "occasion": occasion, "occasion_detail": _OCCASION_DETAIL.get((m1, d1)),
                    "event_date": day.isoformat(), "participants_children": children,
                    "participants_adults": rng.randint(5, 80), "partners": partners or None,
                    "co_organised_with_provincial_library": "yes" if rng.random() < 0.45 else "no",
                })


_COURSES = (("library_basics", 40.0), ("reading_promotion", 16.0), ("digital_skills", 24.0), ("cataloguing", 32.0),
            ("children_services", 8.0), ("rotation_mobile_service", 12.0), ("library_management", 7.5))


def training_reports(reference: Reference, until: date, seed: int = 2026, workers: int = 24) -> Iterator[SampleReport]:
    rng = random.Random(f"{seed}:staff_training")
    libraries = _libraries(reference)
    for n in range(workers):
        lib = rng.choice(libraries)
        worker_id = f"{lib.library_id.split('-')[1]}-{rng.randint(1, 9999):04d}"
        for course, hours in rng.sample(_COURSES, rng.choice((1, 1, 2))):
            day = _day_between(rng, max(_FIRST_DAY, lib.opened_on or _FIRST_DAY), until)
            yield _report("staff_training", f"{n}:{worker_id}:{course}", {
                **_where(lib), "worker_id": worker_id, "course": course, "hours": f"{hours:g}",
                "completed_on": day.isoformat(),
                "result": rng.choices(("passed", "attended", "failed"), weights=(7, 2, 1))[0],
            })


def donation_reports(reference: Reference, until: date, seed: int = 2026,
                     donations: int = 20) -> Iterator[SampleReport]:
    rng = random.Random(f"{seed}:donation")
    libraries = _libraries(reference)
    for n in range(donations):
        day = _day_between(rng, _FIRST_DAY, until)
        lib = rng.choice([lib for lib in libraries if _open_on(lib, day)])
        kind = rng.choice(("enterprise", "organisation", "individual"))
        books, money = rng.choice(((rng.randint(50, 800), 0), (0, rng.randint(2, 60) * 500_000),
                                   (rng.randint(100, 1500), rng.randint(5, 400) * 1_000_000)))
        if kind == "individual":
            books, money = books // 5, money // 20
        books = max(books, 0 if money else 1)
        yield _report("donation", f"{n}:{lib.library_id}:{day.isoformat()}", {
            **_where(lib), "donor_kind": kind, "donor_origin": "foreign" if rng.random() < 0.15 else "domestic",
            "books": books, "money_vnd": money, "received_on": day.isoformat()})


def all_sample_reports(reference: Reference, until: date) -> Iterator[tuple[str, SampleReport]]:
    """(form_id, report) for every programme form, the visit log first; all dated up to ``until``."""
    generators = (
        ("visit_log", sample_reports), ("library_registry", registry_reports),
        ("rotation_movement", rotation_reports), ("mobile_session", mobile_reports),
        ("reading_promotion", reading_promotion_reports), ("staff_training", training_reports),
        ("donation", donation_reports),
    )
    for form_id, generate in generators:
        for report in generate(reference, until):
            yield form_id, report
