"""Send the sample submissions of every programme form to a running intake over HTTP, as ODK Collect would.

``python -m services.tools.load_samples [BASE_URL]`` (default http://127.0.0.1:8000).
Each form is downloaded from ``/formList`` and its samples are filled into it, so they follow
the served form's structure. Safe to run twice: the instanceIDs are deterministic, so a
second run is all resends.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections import Counter
from datetime import date, timedelta

import httpx

from services.clock import today_local
from services.domain.reference import default_reference
from services.tools.samples import all_sample_reports
from services.tools.submissions import fill_instance, multipart

log = logging.getLogger(__name__)
OPENROSA = {"X-OpenRosa-Version": "1.0"}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base_url", nargs="?", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    print(dict(load(args.base_url)))


if __name__ == "__main__":
    main()
