"""Regenerate the reference CSVs in this folder from the ``vietnamadminunits`` package.

    python -m services.reference.generate           # rewrite the CSV files
    python -m services.reference.generate --check   # exit 1 if a file would change

Dev-only: ``vietnamadminunits`` is a dev dependency, so this module imports it lazily
(inside ``_load_source``) and no runtime code may import this module. Runtime code reads the
CSV files (see ``services/domain/reference.py``). Sources, licences and caveats: SOURCES.md.

Output is deterministic: rows sorted by code, Vietnamese text NFC-normalised, UTF-8 without
BOM, "\\n" line endings. ``libraries.csv`` is SAMPLE data built from ``SAMPLE_LIBRARIES`` below:
the communes are real, the libraries are illustrative.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACKAGE = "vietnamadminunits"
PACKAGE_VERSION = "1.0.4"  # the version SOURCES.md describes
REGION = "northern_midlands_mountains"
REFORM_DATE = "2025-07-01"

# The 14 programme provinces, legacy (pre-2025-07-01) GSO codes.
LEGACY_PROVINCES = ("02", "04", "06", "08", "10", "11", "12", "14", "15", "17", "19", "20", "24", "25")
# Legacy province -> 2025 province, per Resolution 202/2025/QH15. Cross-checked against the
# package's own province merge table; the generator stops if they disagree.
PROVINCE_MAPPING = {
    "02": "08", "08": "08",  # Hà Giang + Tuyên Quang -> Tuyên Quang
    "10": "15", "15": "15",  # Lào Cai + Yên Bái -> Lào Cai
    "06": "19", "19": "19",  # Bắc Kạn + Thái Nguyên -> Thái Nguyên
    "17": "25", "25": "25",  # Hòa Bình + Phú Thọ (+ Vĩnh Phúc) -> Phú Thọ
    "24": "24",  # Bắc Giang (+ Bắc Ninh) -> Bắc Ninh
    "04": "04", "11": "11", "12": "12", "14": "14", "20": "20",  # unchanged
}
PROVINCES_2025 = tuple(sorted(set(PROVINCE_MAPPING.values())))

UNIT_TYPE_EN = {"Xã": "Commune", "Phường": "Ward", "Thị trấn": "Township"}

# --- sample library registry (fictional libraries in real communes) ---------------------------
# (library_id, legacy province code, legacy district short name, legacy commune full name,
#  type key (see LIBRARY_TYPES), opened_on, model_joined_on or "").
# Ids are written out, not numbered by position, so editing the list never renumbers a library.
# The 2025 commune is derived from the mapping (for a split commune: the package's default).
# A library opened on or after the reform date is named after its 2025 commune, older ones after
# their legacy commune.
SAMPLE_LIBRARIES: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    ("LIB-HG-0001", "02", "Đồng Văn", "Xã Lũng Cú", "library", "2016-04-21", "2024-10-02"),
    ("LIB-HG-0002", "02", "Đồng Văn", "Thị trấn Phố Bảng", "post", "2004-09-02", "2025-04-21"),
    ("LIB-HG-0003", "02", "Quản Bạ", "Xã Tùng Vài", "law", "2012-11-09", ""),
    ("LIB-HG-0004", "02", "Vị Xuyên", "Xã Việt Lâm", "learning", "2010-03-26", "2024-10-02"),
    ("LIB-CB-0001", "04", "Trùng Khánh", "Xã Đàm Thủy", "culture", "2014-08-19", "2025-04-21"),
    ("LIB-CB-0002", "04", "Hà Quảng", "Xã Trường Hà", "library", "2011-05-19", "2024-10-02"),
    ("LIB-CB-0003", "04", "Bảo Lạc", "Thị trấn Bảo Lạc", "learning", "2026-03-12", "2026-04-21"),
    ("LIB-BK-0001", "06", "Ba Bể", "Xã Nam Mẫu", "learning", "2009-10-10", "2024-10-02"),
    ("LIB-BK-0002", "06", "Ba Bể", "Thị trấn Chợ Rã", "library", "2007-06-01", "2025-04-21"),
    ("LIB-BK-0003", "06", "Ngân Sơn", "Xã Bằng Vân", "law", "2015-03-15", ""),
    ("LIB-TQ-0001", "08", "Sơn Dương", "Xã Tân Trào", "library", "2013-08-19", "2024-04-21"),
    ("LIB-TQ-0002", "08", "Yên Sơn", "Xã Thái Bình", "post", "2005-12-22", ""),
    ("LIB-TQ-0003", "08", "Lâm Bình", "Thị trấn Lăng Can", "culture", "2025-09-30", "2026-04-21"),
    ("LIB-LCA-0001", "10", "Bát Xát", "Xã Y Tý", "library", "2018-11-20", "2024-10-02"),
    ("LIB-LCA-0002", "10", "Bắc Hà", "Thị trấn Bắc Hà", "culture", "2006-07-01", ""),
    ("LIB-LCA-0003", "10", "Sa Pa", "Phường Sa Pa", "other", "2019-05-01", "2025-04-21"),
    ("LIB-DB-0001", "11", "Điện Biên Phủ", "Xã Mường Phăng", "library", "2014-05-07", "2024-10-02"),
    ("LIB-DB-0002", "11", "Mường Nhé", "Xã Mường Nhé", "learning", "2011-09-09", "2025-10-02"),
    ("LIB-DB-0003", "11", "Tủa Chùa", "Thị trấn Tủa Chùa", "post", "2003-02-03", ""),
    ("LIB-LCH-0001", "12", "Sìn Hồ", "Thị trấn Sìn Hồ", "library", "2010-10-10", "2024-10-02"),
    ("LIB-LCH-0002", "12", "Phong Thổ", "Xã Pa Vây Sử", "law", "2016-06-20", ""),
    ("LIB-LCH-0003", "12", "Mường Tè", "Thị trấn Mường Tè", "learning", "2026-01-08", ""),
    ("LIB-SL-0001", "14", "Sông Mã", "Xã Chiềng Khương", "learning", "2012-04-02", "2024-10-02"),
    ("LIB-SL-0002", "14", "Quỳnh Nhai", "Xã Mường Giôn", "post", "2005-09-02", ""),
    ("LIB-SL-0003", "14", "Bắc Yên", "Xã Tà Xùa", "library", "2025-03-05", "2025-04-21"),
    ("LIB-YB-0001", "15", "Mù Căng Chải", "Thị trấn Mù Cang Chải", "library", "2011-11-11", "2024-10-02"),
    ("LIB-YB-0002", "15", "Văn Chấn", "Xã Tú Lệ", "culture", "2015-07-27", ""),
    ("LIB-YB-0003", "15", "Văn Chấn", "Xã Suối Giàng", "law", "2013-03-08", "2025-10-02"),
    ("LIB-HB-0001", "17", "Mai Châu", "Xã Đồng Tân", "library", "2012-09-01", "2024-10-02"),
    ("LIB-HB-0002", "17", "Mai Châu", "Xã Pà Cò", "learning", "2010-05-19", ""),
    ("LIB-HB-0003", "17", "Đà Bắc", "Xã Vầy Nưa", "post", "2004-11-20", "2025-04-21"),
    ("LIB-HB-0004", "17", "Đà Bắc", "Xã Mường Chiềng", "culture", "2025-11-20", ""),
    ("LIB-TN-0001", "19", "Định Hóa", "Xã Phú Đình", "library", "2009-05-19", "2024-04-21"),
    ("LIB-TN-0002", "19", "Đại Từ", "Xã La Bằng", "learning", "2014-10-15", "2025-04-21"),
    ("LIB-TN-0003", "19", "Võ Nhai", "Xã Thần Xa", "law", "2011-12-09", ""),
    ("LIB-LS-0001", "20", "Lộc Bình", "Xã Mẫu Sơn", "culture", "2016-09-02", "2024-10-02"),
    ("LIB-LS-0002", "20", "Bắc Sơn", "Thị trấn Bắc Sơn", "library", "2008-10-27", "2025-04-21"),
    ("LIB-LS-0003", "20", "Hữu Lũng", "Xã Hữu Liên", "other", "2021-04-21", ""),
    ("LIB-BG-0001", "24", "Sơn Động", "Xã An Lạc", "learning", "2013-06-12", "2024-10-02"),
    ("LIB-BG-0002", "24", "Lục Ngạn", "Xã Sa Lý", "post", "2006-03-26", ""),
    ("LIB-BG-0003", "24", "Yên Thế", "Thị trấn Phồn Xương", "library", "2026-05-19", "2026-05-19"),
    ("LIB-PT-0001", "25", "Tân Sơn", "Xã Xuân Sơn", "library", "2015-04-21", "2024-10-02"),
    ("LIB-PT-0002", "25", "Tân Sơn", "Xã Thu Cúc", "law", "2012-08-08", ""),
    ("LIB-PT-0003", "25", "Thanh Sơn", "Xã Thượng Cửu", "culture", "2010-02-03", "2025-10-02"),
)

LIBRARY_TYPES = {  # short key used in SAMPLE_LIBRARIES -> library_type
    "library": "commune_public_library",
    "learning": "community_learning_centre",
    "culture": "culture_centre",
    "post": "post_office_culture_point",
    "law": "law_bookcase",
    "other": "other",
}

LIBRARY_NAME_TEMPLATES = {  # type -> (Vietnamese, English); {t}/{T} = unit type, {n} = commune name
    "commune_public_library": ("Thư viện {t} {n}", "{n} {T} Library"),
    "community_learning_centre": ("Trung tâm học tập cộng đồng {t} {n}", "{n} {T} Community Learning Centre"),
    "culture_centre": ("Nhà văn hóa {t} {n}", "{n} {T} Culture House"),
    "post_office_culture_point": ("Điểm bưu điện văn hóa {t} {n}", "{n} {T} Post Office Culture Point"),
    "law_bookcase": ("Tủ sách pháp luật {t} {n}", "{n} {T} Law Bookcase"),
    "other": ("Tủ sách cộng đồng {t} {n}", "{n} {T} Community Bookshelf"),
}

HEADERS = {
    "provinces_legacy.csv": ("code", "name_vi", "name_en", "region"),
    "provinces_2025.csv": ("code", "name_vi", "name_en", "region"),
    "communes_legacy.csv": ("code", "name_vi", "name_en", "district_name_vi", "province_code"),
    "communes_2025.csv": ("code", "name_vi", "name_en", "province_code", "in_programme"),
    "commune_mapping.csv": ("legacy_code", "code_2025", "whole", "is_default"),
    "province_mapping.csv": ("legacy_code", "code_2025"),
    "libraries.csv": (
        "library_id", "name_vi", "name_en", "library_type", "commune_code_legacy", "province_code_legacy",
        "commune_code_2025", "province_code_2025", "latitude", "longitude", "opened_on", "status",
        "model_joined_on",
    ),
}


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def ascii_name(text: str) -> str:
    """Vietnamese -> ASCII: drop the tone and vowel marks, map đ/Đ (a letter, not a mark) to d/D.

    Written out rather than using ``unidecode`` so that the result does not depend on that
    library's tables: for Vietnamese, NFD + dropping combining marks is exact.
    """
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    out = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    if not out.isascii():
        raise ValueError(f"cannot fold to ASCII: {text!r}")
    return out


@dataclass(frozen=True)
class Unit:
    code: str
    name: str  # full official name, e.g. "Xã Lũng Cú"
    short: str  # the name without its type, e.g. "Lũng Cú"
    unit_type: str  # Xã / Phường / Thị trấn
    province_code: str
    district: str = ""  # legacy only, full name
    district_short: str = ""
    lat: float = math.nan
    lon: float = math.nan
    province_bounds: str = ""  # legacy only: "lat,lon – lat,lon"


@dataclass
class Source:
    legacy: dict[str, Unit]  # the 14 programme provinces, by commune code
    new: dict[str, Unit]  # the 10 current provinces, by commune code
    legacy_province_names: dict[str, str]
    new_province_names: dict[str, str]
    # (legacy commune code, 2025 commune code, whole, is_default) for every programme legacy commune
    pairs: list[tuple[str, str, int, int]]
    legacy_to_new_province: dict[str, str]


def _short_name(name: str, unit_type: str) -> str:
    """"Xã Lũng Cú" -> "Lũng Cú". Not the package's ``wardShort``, which adds "(Xã)"/"(Thị trấn)"
    where a commune and a township share a name in one district (e.g. Mường Tè, Đình Lập)."""
    name, unit_type = nfc(name), nfc(unit_type)
    if not name.startswith(unit_type + " "):
        raise SystemExit(f"unit name {name!r} does not start with its type {unit_type!r}")
    return name[len(unit_type) + 1:]


@dataclass
class _Scheme:
    """One scheme's rows as the converter's database holds them."""

    units: dict[str, Unit]  # the programme provinces' communes, by code
    by_key: dict[Any, str]  # the converter's key of a commune → its code
    province_names: dict[str, str]  # every province, by code
    province_by_key: dict[str, str]


def _read_scheme(rows: Iterable[dict[str, Any]], scheme: str, provinces: Collection[str],
                 key_of: Callable[[dict[str, Any]], Any]) -> _Scheme:
    read = _Scheme({}, {}, {}, {})
    for r in rows:
        read.province_names[r["provinceCode"]] = nfc(r["provinceShort"])
        read.province_by_key[r["provinceKey"]] = r["provinceCode"]
        if r["provinceCode"] not in provinces:
            continue
        unit = Unit(
            code=r["wardCode"], name=nfc(r["ward"]), short=_short_name(r["ward"], r["wardType"]),
            unit_type=nfc(r["wardType"]), province_code=r["provinceCode"], lat=r["wardLat"], lon=r["wardLon"],
            district=nfc(r.get("district", "")), district_short=nfc(r.get("districtShort", "")),
            province_bounds=r.get("provinceBounds", ""),
        )
        if unit.code in read.units:
            raise SystemExit(f"duplicate {scheme} commune code {unit.code}")
        read.units[unit.code] = unit
        read.by_key[key_of(r)] = unit.code
    return read


def _load_source() -> Source:
    # Lazy, dev-only imports: see the module docstring.
    from vietnamadminunits.converter.converter_2025 import (
        DICT_PROVINCE,
        DICT_PROVINCE_WARD_DIVIDED,
        DICT_PROVINCE_WARD_NO_DIVIDED,
    )
    from vietnamadminunits.database import query

    version = metadata.version(PACKAGE)
    if version != PACKAGE_VERSION:
        print(f"warning: {PACKAGE} {version} installed, SOURCES.md describes {PACKAGE_VERSION}; "
              "review the diff and update SOURCES.md", file=sys.stderr)

    # The converter names a legacy commune "<provinceKey>_<districtKey>_<wardKey>", a 2025 one by its
    # (provinceKey, wardKey).
    legacy = _read_scheme(query(
        "SELECT provinceShort, provinceCode, provinceKey, provinceBounds, district, districtShort,"
        " districtKey, ward, wardType, wardCode, wardKey, wardLat, wardLon FROM admin_units_legacy"
    ), "legacy", LEGACY_PROVINCES, lambda r: f"{r['provinceKey']}_{r['districtKey']}_{r['wardKey']}")
    new = _read_scheme(query(
        "SELECT provinceShort, provinceCode, provinceKey, ward, wardType, wardCode, wardKey,"
        " wardLat, wardLon FROM admin_units"
    ), "2025", PROVINCES_2025, lambda r: (r["provinceKey"], r["wardKey"]))
    legacy_by_key, new_by_key = legacy.by_key, new.by_key
    legacy_province_by_key, new_province_by_key = legacy.province_by_key, new.province_by_key

    legacy_to_new_province = {
        legacy_province_by_key[old_key]: new_province_by_key[new_key]
        for new_key, old_keys in DICT_PROVINCE.items()
        for old_key in old_keys
    }

    pairs: list[tuple[str, str, int, int]] = []
    for new_pkey, wards in DICT_PROVINCE_WARD_NO_DIVIDED.items():
        for new_wkey, old_keys in wards.items():
            for old_key in old_keys:
                if old_key in legacy_by_key:
                    pairs.append((legacy_by_key[old_key], new_by_key.get((new_pkey, new_wkey), "?"), 1, 1))
    for new_pkey, olds in DICT_PROVINCE_WARD_DIVIDED.items():
        for old_key, targets in olds.items():
            if old_key not in legacy_by_key:
                continue
            for t in targets:
                pairs.append((legacy_by_key[old_key], new_by_key.get((new_pkey, t["newWardKey"]), "?"), 0,
                              int(bool(t["isDefaultNewWard"]))))
    return Source(legacy.units, new.units, legacy.province_names, new.province_names, pairs,
                  legacy_to_new_province)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"source data check failed: {message}")


def _in_bounds(lat: float, lon: float, bounds: str) -> bool:
    (lat1, lon1), (lat2, lon2) = (map(float, corner.split(",")) for corner in bounds.split(" – "))
    return min(lat1, lat2) <= lat <= max(lat1, lat2) and min(lon1, lon2) <= lon <= max(lon1, lon2)


def build_tables(src: Source) -> dict[str, list[tuple[str, ...]]]:
    """All output tables, header row first, rows sorted."""
    _check(set(LEGACY_PROVINCES) <= set(src.legacy_province_names), "legacy province codes")
    _check(set(PROVINCES_2025) <= set(src.new_province_names), "2025 province codes")
    for old, new in PROVINCE_MAPPING.items():
        _check(src.legacy_to_new_province.get(old) == new, f"province {old} -> {new} per Resolution 202")

    legacy, new = src.legacy, src.new
    # A 2025 commune holds programme territory iff some programme legacy commune maps into it.
    pairs = sorted(set(src.pairs))
    programme_targets = {p[1] for p in pairs}
    by_legacy: dict[str, list[tuple[str, str, int, int]]] = defaultdict(list)
    for p in pairs:
        by_legacy[p[0]].append(p)
    _check(set(by_legacy) == set(legacy), "every programme legacy commune has a 2025 commune")
    for code, rows in by_legacy.items():
        whole = {r[2] for r in rows}
        _check(len(whole) == 1, f"{code} both whole and split")
        _check(len(rows) == 1 if whole == {1} else len(rows) >= 2, f"{code} whole/split row count")
        _check(sum(r[3] for r in rows) == 1, f"{code} has exactly one default 2025 commune")
        for r in rows:
            _check(r[1] in new, f"{code} -> {r[1]} outside the 10 provinces")
            _check(PROVINCE_MAPPING[legacy[code].province_code] == new[r[1]].province_code,
                   f"{code} -> {r[1]} crosses the province mapping")

    tables: dict[str, list[tuple[str, ...]]] = {}
    tables["provinces_legacy.csv"] = [
        (code, src.legacy_province_names[code], ascii_name(src.legacy_province_names[code]), REGION)
        for code in sorted(LEGACY_PROVINCES)
    ]
    tables["provinces_2025.csv"] = [
        (code, src.new_province_names[code], ascii_name(src.new_province_names[code]), REGION)
        for code in PROVINCES_2025
    ]
    tables["communes_legacy.csv"] = [
        (u.code, u.name, ascii_name(u.name), u.district, u.province_code) for _, u in sorted(legacy.items())
    ]
    tables["communes_2025.csv"] = [
        (u.code, u.name, ascii_name(u.name), u.province_code, "1" if u.code in programme_targets else "0")
        for _, u in sorted(new.items())
    ]
    tables["commune_mapping.csv"] = [(a, b, str(w), str(d)) for a, b, w, d in pairs]
    tables["province_mapping.csv"] = sorted(PROVINCE_MAPPING.items())
    tables["libraries.csv"] = _libraries(legacy, new, by_legacy)
    return {name: [HEADERS[name], *rows] for name, rows in tables.items()}


def _libraries(legacy: dict[str, Unit], new: dict[str, Unit],
               by_legacy: dict[str, list[tuple[str, str, int, int]]]) -> list[tuple[str, ...]]:
    index = {(u.province_code, u.district_short, u.name): u for u in legacy.values()}
    rows = []
    for lib_id, prov, district, commune, type_key, opened_on, joined_on in SAMPLE_LIBRARIES:
        lib_type = LIBRARY_TYPES[type_key]
        unit = index.get((prov, nfc(district), nfc(commune)))
        if unit is None:
            raise SystemExit(f"{lib_id}: no legacy commune {commune}, {district}, province {prov}")
        _check(not joined_on or joined_on >= opened_on, f"{lib_id}: joined the model before opening")
        _check(_in_bounds(unit.lat, unit.lon, unit.province_bounds), f"{lib_id}: outside its province")
        # Split commune: take the package's default ("main") 2025 commune.
        code_2025 = next(r[1] for r in by_legacy[unit.code] if r[3] == 1)
        named_after = new[code_2025] if opened_on >= REFORM_DATE else unit
        vi_template, en_template = LIBRARY_NAME_TEMPLATES[lib_type]
        name_vi = vi_template.format(t=named_after.unit_type.lower(), n=named_after.short)
        name_en = en_template.format(T=UNIT_TYPE_EN[named_after.unit_type], n=ascii_name(named_after.short))
        rows.append((
            lib_id, nfc(name_vi), name_en, lib_type, unit.code, unit.province_code, code_2025,
            new[code_2025].province_code, f"{unit.lat:.5f}", f"{unit.lon:.5f}", opened_on, "operating",
            joined_on,
        ))
    return sorted(rows)


def render(rows: list[tuple[str, ...]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(rows)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if any file would change")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this package)")
    args = parser.parse_args(argv)

    tables = build_tables(_load_source())
    changed = []
    for name, rows in tables.items():
        path = args.out / name
        text = render(rows)
        old = path.read_bytes().decode("utf-8") if path.exists() else None
        if old != text:
            changed.append(name)
            if not args.check:
                path.write_text(text, encoding="utf-8", newline="")
        print(f"{name}: {len(rows) - 1} rows{' (changed)' if old != text else ''}")
    if args.check and changed:
        print(f"out of date: {', '.join(changed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
