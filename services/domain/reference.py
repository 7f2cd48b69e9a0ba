"""Reference data: admin units under both schemes and the library registry.

Read from the CSV files in ``services/reference/`` (sources and licences in its SOURCES.md).
Codes are only meaningful with their scheme, so every lookup takes one.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from functools import cache, cached_property
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
    district_name_vi: str = ""  # legacy scheme only: legacy names are unique only within a district


@dataclass(frozen=True)
class Library:
    library_id: str
    name_vi: str
    name_en: str
    library_type: str
    areas: tuple[AdminArea, AdminArea]  # legacy, 2025
    opened_on: date | None = None
    latitude: float | None = None  # the registry's coordinates (sample data: the legacy commune's centroid)
    longitude: float | None = None
    model_joined_on: date | None = None
    status: str = "operating"

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
    # legacy commune code → the 2025 commune codes it went into (several when it was split),
    # from commune_mapping.csv; only programme communes appear.
    commune_mapping: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path = REFERENCE_DIR, libraries_file: Path | None = None) -> Reference:
        """Admin units from ``directory``; the library registry from ``libraries_file`` when given
        (same columns as ``libraries.csv``: a deployment's real registry), else the packaged sample."""
        provinces: dict[tuple[Scheme, str], Province] = {}
        communes: dict[tuple[Scheme, str], Commune] = {}
        scheme: Scheme
        for scheme, suffix in (("legacy", "legacy"), ("2025", "2025")):
            for r in _rows(f"provinces_{suffix}.csv", directory):
                provinces[(scheme, r["code"])] = Province(scheme, r["code"], r["name_vi"], r["name_en"])
            for r in _rows(f"communes_{suffix}.csv", directory):
                communes[(scheme, r["code"])] = Commune(scheme, r["code"], r["name_vi"], r["name_en"],
                                                        r["province_code"], r.get("district_name_vi", ""))
        libraries = {}
        registry = libraries_file or directory / "libraries.csv"
        for r in _rows(registry.name, registry.parent):
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
                latitude=float(r["latitude"]) if r.get("latitude") else None,
                longitude=float(r["longitude"]) if r.get("longitude") else None,
                model_joined_on=date.fromisoformat(r["model_joined_on"]) if r.get("model_joined_on") else None,
                status=r.get("status") or "operating",
            )
        mapping: dict[str, tuple[str, ...]] = {}
        for r in _rows("commune_mapping.csv", directory):
            mapping[r["legacy_code"]] = (*mapping.get(r["legacy_code"], ()), r["code_2025"])
        return cls(provinces, communes, libraries, mapping)

    def province(self, scheme: Scheme, code: str) -> Province | None:
        return self.provinces.get((scheme, code))

    def commune(self, scheme: Scheme, code: str) -> Commune | None:
        return self.communes.get((scheme, code))

    def provinces_in(self, scheme: Scheme) -> list[Province]:
        return sorted((p for (s, _), p in self.provinces.items() if s == scheme), key=lambda p: p.code)

    def communes_in(self, scheme: Scheme, province_code: str | None = None) -> list[Commune]:
        """Communes of one scheme (optionally of one province), by code."""
        return sorted((c for (s, _), c in self.communes.items()
                       if s == scheme and (province_code is None or c.province_code == province_code)),
                      key=lambda c: c.code)

    def maps_to(self, legacy_code: str, code_2025: str) -> bool:
        """Whether (part of) legacy commune ``legacy_code`` went into 2025 commune ``code_2025``."""
        return code_2025 in self.commune_mapping.get(legacy_code, ())

    def mapping_pairs(self) -> list[tuple[str, str]]:
        """Every (legacy code, 2025 code) pair of commune_mapping.csv, sorted."""
        return sorted((legacy, new) for legacy, news in self.commune_mapping.items() for new in news)

    def legacy_communes_of(self, code_2025: str) -> list[Commune]:
        """The legacy communes (or parts) that make up 2025 commune ``code_2025``, by code."""
        return [c for legacy, new in self.mapping_pairs() if new == code_2025
                if (c := self.communes.get(("legacy", legacy))) is not None]

    def in_programme(self, code_2025: str) -> bool:
        """A 2025 commune with programme territory: exactly those with mapping rows (see SOURCES.md)."""
        return code_2025 in self._programme_2025

    @cached_property
    def _programme_2025(self) -> frozenset[str]:
        return frozenset(code for news in self.commune_mapping.values() for code in news)


@cache
def default_reference(libraries_file: str = "") -> Reference:
    """The packaged admin units with the registry at ``libraries_file`` (``LIBRARIES_FILE``), or the
    packaged sample registry when it is empty; loaded once per process."""
    return Reference.load(libraries_file=Path(libraries_file) if libraries_file else None)
