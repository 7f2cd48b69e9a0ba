"""The demo's samples carry their sending times, so `make run`'s dashboard shows a real timeliness.

``load_in_process`` (what ``python -m services.embedded --load-samples`` runs) gives each sample to
the intake with the time its sample says it was sent; the figures are read back through the query
API and compared with what the samples themselves say.
"""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack
from services.config import Settings
from services.domain.quality import reporting_deadline
from services.domain.reference import default_reference
from services.tools.load_samples import load_in_process
from services.tools.samples import all_sample_reports

YEAR = 2025
UNTIL = date(YEAR, 12, 31)  # long past: every sample's sending time is, too


def test_samples_loaded_in_process_show_the_timeliness_their_sending_times_say(
        stack: EmbeddedStack, client: TestClient, settings: Settings):
    visit_logs = [report for form_id, report in all_sample_reports(default_reference(), UNTIL)
                  if form_id == "visit_log" and report.answers["report_date"].startswith(f"{YEAR}-")]
    received = len(visit_logs)
    on_time = sum(1 for r in visit_logs if r.sent_at is not None and r.sent_at.date() <= reporting_deadline(
        date.fromisoformat(r.answers["report_date"])))

    outcomes = load_in_process(stack.service, settings.forms_dir, UNTIL)

    assert set(outcomes) == {"new"}, outcomes
    response = client.get("/v1/indicators", params={"scheme": "legacy", "year": YEAR})
    assert response.status_code == 200, response.text
    indicators = response.json()["indicators"]
    completeness, timeliness = indicators["completeness"], indicators["timeliness"]
    assert completeness["numerator"] == received
    assert timeliness["numerator"] == on_time and timeliness["denominator"] == completeness["denominator"]
    assert 0 < timeliness["value"] < 1
    # The events say when each was sent, and that it came from the samples, not from a phone.
    stamped = {e["event_id"]: e for e in stack.store.events("visit_logged")}
    first = visit_logs[0]
    assert stamped[first.instance_id]["submitted_at"] == first.sent_at
    assert stamped[first.instance_id]["source"] == "samples"
    # Deterministic: the same samples, the same sending times.
    again = {r.instance_id: r.sent_at for form_id, r in all_sample_reports(default_reference(), UNTIL)
             if form_id == "visit_log"}
    assert all(again[r.instance_id] == r.sent_at for r in visit_logs)
