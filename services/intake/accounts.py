"""Team accounts: who may submit, and for which provinces.

Accounts live in a JSON file (``ACCOUNTS_FILE``), never in code. Passwords are not
stored: for Digest each account keeps HA1 = md5(username:realm:password), which is all
the server needs to check a response (``python -m services.intake.accounts add`` writes it).

    {"realm": "thuvien-coso",
     "accounts": {"doi-hg-01": {"ha1": "…", "provinces": ["legacy:02", "2025:08"]},
                  "central-pull": {"ha1": "…", "provinces": ["*"]}}}

A scope entry is ``scheme:code``: codes are reused across schemes, so never bare. ``*``
means every province. An HA1 is as good as the password for Digest, so the file is written
0600 and a file that group or others may read is refused at start-up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from services.config import check_private, write_private_json
from services.domain.events import AdminArea

DEFAULT_REALM = "thuvien-coso"


@dataclass(frozen=True)
class Account:
    username: str
    ha1: str = ""
    provinces: frozenset[str] = frozenset()

    def may_submit_for(self, areas: list[AdminArea]) -> bool:
        if "*" in self.provinces:
            return True
        return any(f"{a.scheme}:{a.province_code}" in self.provinces for a in areas)


ANONYMOUS = Account("anonymous", provinces=frozenset({"*"}))


def ha1(username: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


@dataclass(frozen=True)
class Accounts:
    realm: str
    by_name: dict[str, Account]

    @classmethod
    def load(cls, path: Path) -> Accounts:
        check_private(path, "ACCOUNTS_FILE")
        data = json.loads(path.read_text("utf-8"))
        realm = data.get("realm", DEFAULT_REALM)
        accounts = {name: Account(name, entry["ha1"], frozenset(entry.get("provinces", [])))
                    for name, entry in data.get("accounts", {}).items()}
        return cls(realm, accounts)

    def get(self, username: str) -> Account | None:
        return self.by_name.get(username)


def add_account(path: Path, username: str, password: str, provinces: list[str]) -> None:
    data = json.loads(path.read_text("utf-8")) if path.exists() else {"realm": DEFAULT_REALM, "accounts": {}}
    data["accounts"][username] = {"ha1": ha1(username, data.get("realm", DEFAULT_REALM), password),
                                  "provinces": provinces}
    write_private_json(path, data)


def main() -> None:
    parser = argparse.ArgumentParser(description="Add or update a team account in the accounts file.")
    parser.add_argument("file", type=Path)
    parser.add_argument("username")
    parser.add_argument("password")
    parser.add_argument("provinces", nargs="+", help="scheme:code entries, e.g. legacy:02 2025:08, or *")
    args = parser.parse_args()
    add_account(args.file, args.username, args.password, args.provinces)


if __name__ == "__main__":
    main()
