"""Reference data: admin units under both schemes and the library registry.

Read from the CSV files in ``services/reference/`` (sources and licences in its SOURCES.md).
Codes are only meaningful with their scheme, so every lookup takes one.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from services.domain.events import AdminArea, Scheme

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"


@dataclass(frozen=True)
class Province:
    scheme: Scheme
    code: str
    name_vi: str
    name_en: str


@dataclass(frozen=True)
class Commune:
    scheme: Scheme
    code: str
    name_vi: str
    name_en: str
    province_code: str


@dataclass(frozen=True)
class Library:
    library_id: str
    name_vi: str
    name_en: str
    library_type: str
    areas: tuple[AdminArea, AdminArea]  # legacy, 2025
    opened_on: date | None = None

    def area(self, scheme: Scheme) -> AdminArea:
        return self.areas[0] if scheme == "legacy" else self.areas[1]


def _rows(name: str, directory: Path) -> list[dict[str, str]]:
    with (directory / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@dataclass(frozen=True)
class Reference:
    provinces: dict[tuple[Scheme, str], Province]
    communes: dict[tuple[Scheme, str], Commune]
    libraries: dict[str, Library]

    @classmethod
    def load(cls, directory: Path = REFERENCE_DIR) -> Reference:
        provinces: dict[tuple[Scheme, str], Province] = {}
        communes: dict[tuple[Scheme, str], Commune] = {}
        scheme: Scheme
        for scheme, suffix in (("legacy", "legacy"), ("2025", "2025")):
            for r in _rows(f"provinces_{suffix}.csv", directory):
                provinces[(scheme, r["code"])] = Province(scheme, r["code"], r["name_vi"], r["name_en"])
            for r in _rows(f"communes_{suffix}.csv", directory):
                communes[(scheme, r["code"])] = Commune(scheme, r["code"], r["name_vi"], r["name_en"],
                                                        r["province_code"])
        libraries = {}
        for r in _rows("libraries.csv", directory):
            libraries[r["library_id"]] = Library(
                library_id=r["library_id"],
                name_vi=r["name_vi"],
                name_en=r["name_en"],
                library_type=r["library_type"],
                areas=(
                    AdminArea(scheme="legacy", province_code=r["province_code_legacy"],
                              commune_code=r["commune_code_legacy"]),
                    AdminArea(scheme="2025", province_code=r["province_code_2025"],
                              commune_code=r["commune_code_2025"]),
                ),
                opened_on=date.fromisoformat(r["opened_on"]) if r.get("opened_on") else None,
            )
        return cls(provinces, communes, libraries)

    def province(self, scheme: Scheme, code: str) -> Province | None:
        return self.provinces.get((scheme, code))

    def commune(self, scheme: Scheme, code: str) -> Commune | None:
        return self.communes.get((scheme, code))

    def provinces_in(self, scheme: Scheme) -> list[Province]:
        return sorted((p for (s, _), p in self.provinces.items() if s == scheme), key=lambda p: p.code)


@cache
def default_reference() -> Reference:
    return Reference.load()
