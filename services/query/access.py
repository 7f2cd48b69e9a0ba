"""API keys with scopes, for the query API (``/v1``).

Keys live in a JSON file (``API_KEYS_FILE``) mapping the SHA-256 of each key (hex) to its name
and scopes; the key itself is never stored, only shown once when it is made::

    {"3b1f…e9": {"name": "so-vh-ha-giang", "scopes": ["read:province:legacy:02"]},
     "a07c…41": {"name": "dieu-hanh", "scopes": ["read:all", "admin"]}}

    python -m services.query.access add FILE NAME SCOPE...   # prints the new key once
    python -m services.query.access list FILE
    python -m services.query.access revoke FILE NAME

Scopes:

- ``read:all``: every aggregate, indicator, list, for every area.
- ``read:province:<scheme>:<code>`` (one or more): only those provinces. A province of the other
  scheme is readable when it lies wholly inside them (``read:province:2025:08`` reads legacy 02
  and 08, which make up today's Tuyên Quang; ``read:province:legacy:02`` does not read 2025 08,
  which also holds legacy 08), and so is a commune or library that does. Region-level requests
  and anything outside are refused (403); the lists ``/v1/areas`` and ``/v1/libraries`` are
  filtered to what the key reaches.
- ``admin``: dead letters and intake rejections (``/v1/dead-letters``, ``/v1/rejections``).
- ``approve:province:<scheme>:<code>``: approve a month or a quarter of the visit figures of that
  province, un-approve it, see its held changes and apply or decline them (``/v1/approvals``), and
  mark its data-quality flags "checked, correct" (``/v1/data-quality/…/check``). As
  for reading, a province of the other scheme lying wholly inside is covered (a 2025 province's
  officer approves for its whole area); nothing else is.
- ``approve:region``: accept a provincial approval at the region level, and see every approval's
  held changes.

Requests send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (read in ``deps.py``). The file
is read again when it changes, so a key added or revoked takes effect without a restart.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import re
import secrets
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from services.config import check_private, write_private_json
from services.domain.events import Scheme
from services.domain.reference import REFERENCE_DIR, Reference, default_reference

log = logging.getLogger(__name__)

READ_ALL = "read:all"
ADMIN = "admin"
APPROVE_REGION = "approve:region"
_PROVINCE_SCOPE = re.compile(r"^read:province:(legacy|2025):(\d{2})$")
_APPROVE_SCOPE = re.compile(r"^approve:province:(legacy|2025):(\d{2})$")
SCOPES_HELP = ("read:all, admin, read:province:<legacy|2025>:<code>, approve:province:<legacy|2025>:<code>, "
               "approve:region")
KEY_PREFIX = "tvk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A random key: ``tvk_`` + 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def check_scope(scope: str, reference: Reference | None = None) -> str:
    """The scope if well formed (and its province exists, when ``reference`` is given); else ValueError."""
    if scope in (READ_ALL, ADMIN, APPROVE_REGION):
        return scope
    match = _PROVINCE_SCOPE.match(scope) or _APPROVE_SCOPE.match(scope)
    if not match:
        raise ValueError(f"unknown scope {scope!r}: use {SCOPES_HELP}")
    if reference is not None and reference.province(match.group(1), match.group(2)) is None:  # type: ignore[arg-type]
        raise ValueError(f"no province {match.group(2)} under scheme {match.group(1)}")
    return scope


@cache
def province_mapping(directory: Path = REFERENCE_DIR) -> dict[str, str]:
    """Legacy province code → the 2025 province it lies in (``province_mapping.csv``)."""
    with (directory / "province_mapping.csv").open(encoding="utf-8", newline="") as fh:
        return {row["legacy_code"]: row["code_2025"] for row in csv.DictReader(fh)}


@dataclass(frozen=True)
class Reach:
    """What a key may read: everything, or provinces under each scheme (each wholly inside the scopes)."""

    everything: bool
    legacy: frozenset[str] = frozenset()
    current: frozenset[str] = frozenset()  # 2025 scheme

    def provinces(self, scheme: Scheme) -> frozenset[str]:
        return self.legacy if scheme == "legacy" else self.current

    def province(self, scheme: Scheme, code: str) -> bool:
        return self.everything or code in self.provinces(scheme)

    def commune(self, reference: Reference, scheme: Scheme, code: str) -> bool:
        if self.everything:
            return True
        unit = reference.commune(scheme, code)
        if unit is None:
            return False
        if unit.province_code in self.provinces(scheme):
            return True
        if scheme == "2025":  # a 2025 commune made only of legacy communes the key reaches
            parts = reference.legacy_communes_of(code)
            return bool(parts) and all(p.province_code in self.legacy for p in parts)
        return False

    def library(self, areas: Iterable[Any]) -> bool:
        """A library (its areas, one per scheme) lies where the key reaches."""
        return self.everything or any(a.province_code in self.provinces(a.scheme) for a in areas)


@dataclass(frozen=True)
class Principal:
    """Who is asking: the key's name and scopes."""

    name: str
    scopes: tuple[str, ...]

    @property
    def admin(self) -> bool:
        return ADMIN in self.scopes

    @property
    def reads(self) -> bool:
        return READ_ALL in self.scopes or any(_PROVINCE_SCOPE.match(s) for s in self.scopes)

    @property
    def approves_region(self) -> bool:
        return APPROVE_REGION in self.scopes

    def reach(self) -> Reach:
        """The provinces the key reads."""
        if READ_ALL in self.scopes:
            return Reach(True)
        return _reach([m.groups() for s in self.scopes if (m := _PROVINCE_SCOPE.match(s))])

    def approval_reach(self) -> Reach:
        """The provinces whose periods the key approves (the same rule across schemes as ``reach``)."""
        return _reach([m.groups() for s in self.scopes if (m := _APPROVE_SCOPE.match(s))])


def _reach(granted: list[tuple[str, ...]]) -> Reach:
    """Provinces granted as (scheme, code), and those of the other scheme wholly inside them."""
    mapping = province_mapping()
    current = {code for scheme, code in granted if scheme == "2025"}
    legacy = {code for scheme, code in granted if scheme == "legacy"}
    legacy |= {old for old, new in mapping.items() if new in current}
    # A 2025 province is reached when every programme province that went into it is.
    for new in set(mapping.values()):
        if all(old in legacy for old, n in mapping.items() if n == new):
            current.add(new)
    return Reach(False, frozenset(legacy), frozenset(current))


@dataclass
class ApiKeys:
    """The keys of ``API_KEYS_FILE`` (read again when it changes) and keys held only in memory."""

    path: Path | None = None
    in_memory: dict[str, Principal] = field(default_factory=dict)  # sha256 → principal
    _loaded: dict[str, Principal] = field(default_factory=dict, init=False, repr=False)
    _stamp: tuple[int, int] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.path is not None:
            self._loaded = read_keys_file(self.path)  # fails at start-up if the file is missing or wrong
            self._stamp = _stamp(self.path)

    @classmethod
    def demo(cls) -> tuple[ApiKeys, str]:
        """A random key kept only in this process's memory: ``read:all``, ``admin``, and the approval of
        every programme province under the 2025 scheme (which covers the legacy provinces inside them)
        plus ``approve:region``, so that the demo (``make run``) shows approval of periods too."""
        key = new_key()
        approves = tuple(f"approve:province:2025:{code}" for code in sorted(set(province_mapping().values())))
        return cls(in_memory={hash_key(key): Principal("demo", (READ_ALL, ADMIN, *approves, APPROVE_REGION))}), key

    def lookup(self, key: str) -> Principal | None:
        digest = hash_key(key)
        if digest in self.in_memory:
            return self.in_memory[digest]
        self._refresh()
        return self._loaded.get(digest)

    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            stamp = _stamp(self.path)
        except OSError:
            log.error("API_KEYS_FILE %s cannot be read: keeping the keys loaded before", self.path)
            return
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                self._loaded = read_keys_file(self.path)
            except (OSError, ValueError) as exc:
                log.error("API_KEYS_FILE %s is invalid (%s): keeping the keys loaded before", self.path, exc)
            self._stamp = stamp


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def read_keys_file(path: Path) -> dict[str, Principal]:
    check_private(path, "API_KEYS_FILE")
    data = json.loads(path.read_text("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("the API keys file must be a JSON object: sha256(key) → {name, scopes}")
    keys = {}
    for digest, entry in data.items():
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"not a SHA-256 hex digest: {digest[:12]}…")
        scopes = tuple(check_scope(s) for s in entry.get("scopes", []))
        keys[digest] = Principal(str(entry["name"]), scopes)
    return keys


def describe(principal: Principal, reference: Reference) -> dict[str, Any]:
    """``/v1/me``: the key's name, scopes and the provinces it reaches (with names)."""
    reach = principal.reach()
    scheme: Scheme
    provinces: dict[str, list[dict[str, str]]] = {}
    for scheme in ("legacy", "2025"):
        provinces[scheme] = [{"scheme": scheme, "code": p.code, "name_vi": p.name_vi, "name_en": p.name_en}
                             for p in reference.provinces_in(scheme) if reach.province(scheme, p.code)]
    approves = principal.approval_reach()
    return {"name": principal.name, "scopes": list(principal.scopes), "admin": principal.admin,
            "read_all": reach.everything, "provinces": provinces,
            "approves": {scheme: [p.code for p in reference.provinces_in(scheme) if approves.province(scheme, p.code)]
                         for scheme in ("legacy", "2025")},
            "approves_region": principal.approves_region}


# --- the command line ------------------------------------------------------------------------------

def add_key(path: Path, name: str, scopes: list[str], reference: Reference | None = None) -> str:
    """Add a key named ``name`` with ``scopes`` to the file; return the key (shown once, never stored)."""
    reference = reference or default_reference()
    checked = [check_scope(s, reference) for s in scopes]
    if not checked:
        raise ValueError("give at least one scope")
    data = json.loads(path.read_text("utf-8")) if path.exists() else {}
    key = new_key()
    data[hash_key(key)] = {"name": name, "scopes": checked}
    write_private_json(path, data)
    return key


def revoke_key(path: Path, name: str) -> int:
    data = json.loads(path.read_text("utf-8"))
    kept = {digest: entry for digest, entry in data.items() if entry.get("name") != name}
    write_private_json(path, kept)
    return len(data) - len(kept)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="API keys of the query API (API_KEYS_FILE).")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="make a key and print it once (only its SHA-256 is stored)")
    add.add_argument("file", type=Path)
    add.add_argument("name")
    add.add_argument("scopes", nargs="+", help=SCOPES_HELP)
    listing = sub.add_parser("list", help="names and scopes of the keys in the file")
    listing.add_argument("file", type=Path)
    revoke = sub.add_parser("revoke", help="remove every key with this name")
    revoke.add_argument("file", type=Path)
    revoke.add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.command == "add":
            print(add_key(args.file, args.name, args.scopes))
        elif args.command == "list":
            for principal in read_keys_file(args.file).values():
                print(f"{principal.name}\t{' '.join(principal.scopes)}")
        else:
            print(f"revoked {revoke_key(args.file, args.name)} key(s)")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
