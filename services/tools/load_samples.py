"""Load the sample submissions of every programme form into an intake, two ways.

- ``load_in_process`` (what ``make run`` does: ``python -m services.embedded --load-samples``):
  straight to the ``IntakeService`` of the process, ``source="samples"``, each accepted at the
  time its sample says it was sent (``SampleReport.sent_at``: most visit logs by their month's
  deadline, some late), so the dashboard's timeliness is what a real province would see. That is
  the trusted path the ODK Central pull uses for Central's ``submissionDate``; no HTTP caller
  can choose its acceptance time.
- ``load`` (``python -m services.tools.load_samples [BASE_URL]``, default http://127.0.0.1:8000):
  over HTTP to a running intake, as ODK Collect would. Each form is downloaded from
  ``/formList`` and its samples are filled into it, so they follow the served form's structure.
  The OpenRosa intake never takes a sending time from the phone, so every sample is accepted
  when it is sent: timeliness shows 0 % for past months.

Both are safe to run twice: the instanceIDs are deterministic, so a second run is all resends.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import httpx

from services.clock import now_local, today_local
from services.domain.errors import Refused
from services.domain.reference import default_reference
from services.intake.accounts import Account
from services.intake.service import IntakeService
from services.tools.samples import all_sample_reports
from services.tools.submissions import fill_instance, multipart

log = logging.getLogger(__name__)
OPENROSA = {"X-OpenRosa-Version": "1.0"}
SAMPLES_ACCOUNT = Account("samples", provinces=frozenset({"*"}))
_FORM_ENTRY = re.compile(r"<formID>([^<]+)</formID>.*?<downloadUrl>([^<]+)</downloadUrl>", re.S)


def last_month_end(today: date) -> date:
    return today.replace(day=1) - timedelta(days=1)


def download_urls(form_list: str) -> dict[str, str]:
    """form_id → downloadUrl, from an OpenRosa xforms list."""
    return {form_id: url.replace("&amp;", "&") for form_id, url in _FORM_ENTRY.findall(form_list)}


def load(base_url: str, until: date | None = None) -> Counter[int]:
    """POST every sample submission; return how many got each HTTP status."""
    statuses: Counter[int] = Counter()
    per_form: dict[str, Counter[int]] = {}
    with httpx.Client(base_url=base_url, headers=OPENROSA, timeout=30) as client:
        urls = download_urls(client.get("/formList").raise_for_status().text)
        if "visit_log" not in urls:
            raise RuntimeError("the server does not offer the visit_log form")
        xforms: dict[str, bytes | None] = {}
        for form_id, report in all_sample_reports(default_reference(), until or last_month_end(today_local())):
            if form_id not in xforms:
                if form_id not in urls:
                    log.warning("the server does not offer the %s form: its samples are skipped", form_id)
                    xforms[form_id] = None
                else:
                    xforms[form_id] = client.get(urls[form_id]).raise_for_status().content
            xform = xforms[form_id]
            if xform is None:
                continue
            xml = fill_instance(xform, report.answers, report.instance_id)
            response = client.post("/submission", files=multipart(xml))
            statuses[response.status_code] += 1
            per_form.setdefault(form_id, Counter())[response.status_code] += 1
            if response.status_code != 201:
                log.warning("%s %s → %s %s", form_id, report.instance_id, response.status_code, response.text)
    for form_id, counts in per_form.items():
        log.info("samples %s: %s", form_id, dict(counts))
    return statuses


def load_in_process(service: IntakeService, forms_dir: Path, until: date | None = None) -> Counter[str]:
    """Submit every sample to ``service``, each accepted at its ``sent_at`` (now, if that is still to
    come); the XForms are the built ones in ``forms_dir`` (``<form_id>.xml``). Returns how many
    got each outcome (``new``, ``duplicate``, or a refusal's reason code)."""
    xforms = {path.stem: path.read_bytes() for path in forms_dir.glob("*.xml")}
    outcomes: Counter[str] = Counter()
    now = now_local()
    for form_id, report in all_sample_reports(default_reference(), until or last_month_end(now.date())):
        xform = xforms.get(form_id)
        if xform is None:
            outcomes["form_not_served"] += 1
            continue
        sent_at = min(report.sent_at, now) if report.sent_at else None
        try:
            accepted = service.submit(fill_instance(xform, report.answers, report.instance_id), SAMPLES_ACCOUNT,
                                      source="samples", received_at=sent_at)
        except Refused as exc:
            outcomes[exc.code] += 1
            log.warning("%s %s refused: %s", form_id, report.instance_id, exc)
            continue
        outcomes[accepted.kind] += 1
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base_url", nargs="?", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    print(dict(load(args.base_url)))


if __name__ == "__main__":
    main()
