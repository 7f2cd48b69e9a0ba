"""Send the sample visit logs to a running intake over HTTP, as ODK Collect would.

``python -m services.tools.load_samples [BASE_URL]`` (default http://127.0.0.1:8000).
Safe to run twice: the instanceIDs are deterministic, so a second run is all resends.
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
from services.tools.samples import sample_reports
from services.tools.submissions import fill_instance, multipart

log = logging.getLogger(__name__)
OPENROSA = {"X-OpenRosa-Version": "1.0"}


def last_month_end(today: date) -> date:
    return today.replace(day=1) - timedelta(days=1)


def load(base_url: str, until: date | None = None) -> Counter[int]:
    """POST every sample report; return how many got each HTTP status."""
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=base_url, headers=OPENROSA, timeout=30) as client:
        form_list = client.get("/formList").raise_for_status().text
        match = re.search(r"<formID>visit_log</formID>.*?<downloadUrl>([^<]+)</downloadUrl>", form_list, re.S)
        if not match:
            raise RuntimeError("the server does not offer the visit_log form")
        xform = client.get(match.group(1)).raise_for_status().content
        for report in sample_reports(default_reference(), until or last_month_end(today_local())):
            xml = fill_instance(xform, report.answers, report.instance_id)
            response = client.post("/submission", files=multipart(xml))
            statuses[response.status_code] += 1
            if response.status_code != 201:
                log.warning("%s → %s %s", report.instance_id, response.status_code, response.text)
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base_url", nargs="?", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    print(dict(load(args.base_url)))


if __name__ == "__main__":
    main()
