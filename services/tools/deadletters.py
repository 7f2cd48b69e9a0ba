"""List dead letters and re-drive them through the intake after a fix.

    thuvien deadletters list [--all]
    thuvien deadletters redrive ID [ID ...] --user OPERATOR --password …
    (or python -m services.tools.deadletters …, the same command)

Reads from the query API (``--query``; default the embedded stack on HOST:PORT, or with
BUS=kafka the query service on HOST:QUERY_PORT) and re-submits the raw XML to the intake
(``--intake``, default HOST:PORT) exactly as ODK Collect would, so the fix is checked by the
same rules; a dead letter counts as resolved once its submission is accepted. The query API
wants a key with the ``admin`` scope (``--api-key``, or the ``OPS_API_KEY`` setting).
Processor-stage dead letters (e.g. an instanceID conflict) carry no raw submission: the
phone must send a corrected edit.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import httpx

from services.config import Settings, load_settings

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


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    """The ``list`` / ``redrive`` command line, on ``parser`` (this module's own, or ``thuvien deadletters``)."""
    intake = f"http://{_local(settings.host)}:{settings.port}"
    query = f"http://{_local(settings.host)}:{settings.query_port}" if settings.bus == "kafka" else intake
    parser.add_argument("--query", default=query, help=f"query API base URL (default: {query})")
    parser.add_argument("--intake", default=intake, help=f"intake (OpenRosa) base URL (default: {intake})")
    parser.add_argument("--api-key", default=settings.ops_api_key or None,
                        help="query API key with the admin scope (default: OPS_API_KEY)")
    sub = parser.add_subparsers(dest="deadletters_command", required=True, metavar="{list,redrive}")
    listing = sub.add_parser("list", help="open dead letters, newest first",
                             description="Open dead letters, newest first: id, time, state, stage, reason, form, "
                                         "instanceID and the reason in English.")
    listing.add_argument("--all", action="store_true", help="include those resolved since")
    again = sub.add_parser("redrive", help="re-submit dead letters through the intake",
                           description="Re-submit each dead letter's raw submission to the intake, as ODK Collect "
                                       "would; exit 1 if any is not accepted (201).")
    again.add_argument("ids", nargs="+", metavar="ID", help="dead letter ids (first column of `list`)")
    again.add_argument("--user", help="intake account (Digest); omit for an open intake")
    again.add_argument("--password", help="that account's password")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except httpx.HTTPStatusError as exc:
        hint = " (pass --api-key or set OPS_API_KEY: a key with the admin scope)" \
            if exc.response.status_code in (401, 403) else ""
        print(f"error: {exc.request.url} answered {exc.response.status_code}{hint}", file=sys.stderr)
    except httpx.TransportError as exc:
        print(f"error: cannot reach {exc.request.url}: {exc} (check --query / --intake)", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace) -> int:
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    with httpx.Client(base_url=args.query, timeout=30, headers=headers) as query:
        if args.deadletters_command == "list":
            rows = list_dead_letters(query, args.all)
            for row in rows:
                state = "resolved" if row.get("resolved") else "open"
                print(f"{row['dead_letter_id']}  {row['recorded_at']}  {state:8}  {row['stage']:9}  "
                      f"{row['reason_code']:24}  {row['form_id']:18}  {row['instance_id']}  {row['reason_en']}")
            print(f"{len(rows)} dead letter(s)" + (" (open and resolved)" if args.all else " open"),
                  file=sys.stderr)
            return 0
        auth = httpx.DigestAuth(args.user, args.password or "") if args.user else None
        with httpx.Client(base_url=args.intake, timeout=30, auth=auth) as intake:
            failures = 0
            for dead_letter_id in args.ids:
                result = redrive(query, intake, dead_letter_id)
                failures += result.status != 201
                print(f"{dead_letter_id}: {result.status} {result.message}")
            return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.tools.deadletters", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, load_settings())
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
