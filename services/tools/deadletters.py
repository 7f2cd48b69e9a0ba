"""List dead letters and re-drive them through the intake after a fix.

    python -m services.tools.deadletters list [--all]
    python -m services.tools.deadletters redrive ID [ID ...] --user OPERATOR --password …

Reads from the query API (``--query``, default http://127.0.0.1:8000) and re-submits the
raw XML to the intake (``--intake``, same default) exactly as ODK Collect would, so the
fix is checked by the same rules; a dead letter counts as resolved once its submission
is accepted. Processor-stage dead letters (e.g. an instanceID conflict) carry no raw
submission: the phone must send a corrected edit.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import httpx

OPENROSA = {"X-OpenRosa-Version": "1.0"}


@dataclass(frozen=True)
class Redriven:
    dead_letter_id: str
    status: int
    message: str


def list_dead_letters(query: httpx.Client, include_resolved: bool = False) -> list[dict]:
    response = query.get("/v1/dead-letters", params={"include_resolved": include_resolved})
    response.raise_for_status()
    return response.json()


def redrive(query: httpx.Client, intake: httpx.Client, dead_letter_id: str) -> Redriven:
    letter = query.get(f"/v1/dead-letters/{dead_letter_id}")
    if letter.status_code == 404:
        return Redriven(dead_letter_id, 404, "no such dead letter")
    letter.raise_for_status()
    raw = letter.json()["raw_xml"]
    if not raw:
        return Redriven(dead_letter_id, 422, "no raw submission kept (processor stage): send a corrected edit")
    response = intake.post("/submission", headers=OPENROSA,
                           files={"xml_submission_file": ("submission.xml", raw.encode("utf-8"), "text/xml")})
    return Redriven(dead_letter_id, response.status_code, response.text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--query", default="http://127.0.0.1:8000", help="query API base URL")
    parser.add_argument("--intake", default="http://127.0.0.1:8000", help="intake (OpenRosa) base URL")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="open dead letters, newest first")
    listing.add_argument("--all", action="store_true", help="include those resolved since")
    again = sub.add_parser("redrive", help="re-submit dead letters through the intake")
    again.add_argument("ids", nargs="+")
    again.add_argument("--user", help="intake account (Digest); omit for an open intake")
    again.add_argument("--password")
    args = parser.parse_args(argv)

    with httpx.Client(base_url=args.query, timeout=30) as query:
        if args.command == "list":
            for row in list_dead_letters(query, args.all):
                state = "resolved" if row.get("resolved") else "open"
                print(f"{row['dead_letter_id']}  {row['recorded_at']}  {state:8}  {row['stage']:9}  "
                      f"{row['reason_code']:24}  {row['form_id']:18}  {row['instance_id']}  {row['reason_en']}")
            return 0
        auth = httpx.DigestAuth(args.user, args.password or "") if args.user else None
        with httpx.Client(base_url=args.intake, timeout=30, auth=auth) as intake:
            failures = 0
            for dead_letter_id in args.ids:
                result = redrive(query, intake, dead_letter_id)
                failures += result.status != 201
                print(f"{dead_letter_id}: {result.status} {result.message}")
            return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
