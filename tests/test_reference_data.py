"""Sanity checks on the reference CSVs in services/reference/ (stdlib csv only, no package imports)."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # make check: no broker, browser, ClickHouse or Java

REF = Path(__file__).resolve().parents[1] / "services" / "reference"

LEGACY_PROVINCES = {"02", "04", "06", "08", "10", "11", "12", "14", "15", "17", "19", "20", "24", "25"}
PROVINCES_2025 = {"08", "15", "19", "25", "24", "04", "20", "12", "11", "14"}
LIBRARY_TYPES = {
    "commune_public_library", "community_learning_centre", "culture_centre",
    "post_office_culture_point", "law_bookcase", "other",
}
FILES = {
    "provinces_legacy.csv": ["code", "name_vi", "name_en", "region"],
    "provinces_2025.csv": ["code", "name_vi", "name_en", "region"],
    "communes_legacy.csv": ["code", "name_vi", "name_en", "district_name_vi", "province_code"],
    "communes_2025.csv": ["code", "name_vi", "name_en", "province_code", "in_programme"],
    "commune_mapping.csv": ["legacy_code", "code_2025", "whole", "is_default"],
    "province_mapping.csv": ["legacy_code", "code_2025"],
    "libraries.csv": [
        "library_id", "name_vi", "name_en", "library_type", "commune_code_legacy", "province_code_legacy",
        "commune_code_2025", "province_code_2025", "latitude", "longitude", "opened_on", "status",
        "model_joined_on",
    ],
}


def load(name: str) -> list[dict[str, str]]:
    with (REF / name).open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == FILES[name], name
        return list(reader)


def by_code(name: str, key: str = "code") -> dict[str, dict[str, str]]:
    rows = load(name)
    index = {r[key]: r for r in rows}
    assert len(index) == len(rows), f"duplicate {key} in {name}"
    return index


@pytest.mark.parametrize("name", sorted(FILES))
def test_text_is_nfc_and_name_en_is_ascii(name: str) -> None:
    raw = (REF / name).read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf"), "no BOM"
    text = raw.decode("utf-8")
    assert unicodedata.normalize("NFC", text) == text
    for row in load(name):
        assert row.get("name_en", "").isascii(), row


def test_provinces() -> None:
    legacy = by_code("provinces_legacy.csv")
    current = by_code("provinces_2025.csv")
    assert set(legacy) == LEGACY_PROVINCES
    assert set(current) == PROVINCES_2025
    assert legacy["15"]["name_vi"] == "Yên Bái" and current["15"]["name_vi"] == "Lào Cai"
    assert legacy["24"]["name_vi"] == "Bắc Giang" and current["24"]["name_vi"] == "Bắc Ninh"
    for row in [*legacy.values(), *current.values()]:
        assert row["region"] == "northern_midlands_mountains"


def test_communes() -> None:
    legacy = by_code("communes_legacy.csv")
    current = by_code("communes_2025.csv")
    for code, row in legacy.items():
        assert re.fullmatch(r"\d{5}", code)
        assert row["province_code"] in LEGACY_PROVINCES
        assert row["district_name_vi"]
    for code, row in current.items():
        assert re.fullmatch(r"\d{5}", code)
        assert row["province_code"] in PROVINCES_2025
        assert row["in_programme"] in {"0", "1"}
    assert {r["province_code"] for r in legacy.values()} == LEGACY_PROVINCES
    assert {r["province_code"] for r in current.values()} == PROVINCES_2025
    # Counts of the generated snapshot (see SOURCES.md for why 2,269 and not 2,276).
    assert len(legacy) == 2269
    assert len(current) == 841


def test_commune_mapping() -> None:
    legacy = by_code("communes_legacy.csv")
    current = by_code("communes_2025.csv")
    provinces = {r["legacy_code"]: r["code_2025"] for r in load("province_mapping.csv")}
    assert set(provinces) == LEGACY_PROVINCES
    assert set(provinces.values()) == PROVINCES_2025

    rows = load("commune_mapping.csv")
    assert len({(r["legacy_code"], r["code_2025"]) for r in rows}) == len(rows)
    targets: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        assert r["legacy_code"] in legacy, r
        assert r["code_2025"] in current, r
        assert r["whole"] in {"0", "1"} and r["is_default"] in {"0", "1"}
        # The legacy commune's province maps to the 2025 commune's province.
        assert provinces[legacy[r["legacy_code"]]["province_code"]] == current[r["code_2025"]]["province_code"]
        targets[r["legacy_code"]].append(r)

    assert set(targets) == set(legacy), "every legacy commune has at least one mapping row"
    for code, rs in targets.items():
        if rs[0]["whole"] == "1":
            assert len(rs) == 1 and rs[0]["is_default"] == "1", code
        else:
            assert len(rs) >= 2 and all(r["whole"] == "0" for r in rs), code
            assert sum(r["is_default"] == "1" for r in rs) == 1, code

    # in_programme = 1 exactly for the 2025 communes that hold programme (legacy) territory.
    holding = {r["code_2025"] for r in rows}
    assert {c for c, r in current.items() if r["in_programme"] == "1"} == holding


def test_libraries() -> None:
    legacy = by_code("communes_legacy.csv")
    current = by_code("communes_2025.csv")
    provinces = {r["legacy_code"]: r["code_2025"] for r in load("province_mapping.csv")}
    mapping = {(r["legacy_code"], r["code_2025"]): r for r in load("commune_mapping.csv")}
    libraries = by_code("libraries.csv", "library_id")

    per_province = Counter(r["province_code_legacy"] for r in libraries.values())
    assert set(per_province) == LEGACY_PROVINCES
    assert all(2 <= n <= 4 for n in per_province.values()), per_province

    for lib_id, r in libraries.items():
        assert re.fullmatch(r"LIB-[A-Z]{2,3}-\d{4}", lib_id)
        assert r["library_type"] in LIBRARY_TYPES
        assert r["status"] == "operating"
        commune = legacy[r["commune_code_legacy"]]
        assert commune["province_code"] == r["province_code_legacy"]
        assert current[r["commune_code_2025"]]["province_code"] == r["province_code_2025"]
        assert provinces[r["province_code_legacy"]] == r["province_code_2025"]
        pair = mapping[(r["commune_code_legacy"], r["commune_code_2025"])]
        assert pair["is_default"] == "1", "a split commune's library sits in its main 2025 commune"
        assert 20.0 <= float(r["latitude"]) <= 23.5 and 102.0 <= float(r["longitude"]) <= 107.5
        opened = date.fromisoformat(r["opened_on"])
        if r["model_joined_on"]:
            assert date.fromisoformat(r["model_joined_on"]) >= opened

    opened_years = {r["opened_on"][:4] for r in libraries.values()}
    assert opened_years & {"2025", "2026"}, "some libraries are new"
    assert any(not r["model_joined_on"] for r in libraries.values()), "some libraries are not in the model"
