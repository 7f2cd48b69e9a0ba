"""Every Prometheus metric of every service, defined once (cf. arroyo's metric_defs.py).

Each process exposes the default registry at ``/metrics`` (the faust worker on its web port).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

SUBMISSIONS_ACCEPTED = Counter(
    "intake_submissions_accepted_total", "Submissions accepted (201), by form and whether new or a resend.",
    ["form_id", "kind"],  # kind: new | duplicate
)
SUBMISSIONS_REJECTED = Counter(
    "intake_submissions_rejected_total", "Submissions turned away, by form, HTTP status and reason code.",
    ["form_id", "status", "reason"],
)
SUBMISSION_BYTES = Histogram(
    "intake_submission_bytes", "Size of submission POST bodies (XML + attachments).", ["form_id"],
    buckets=(1_000, 4_000, 16_000, 64_000, 256_000, 1_000_000, 4_000_000, 16_000_000),
)
AUTH_FAILURES = Counter(
    "auth_failures_total", "Wrong credentials (password or API key), by service and method.",
    ["service", "method"],  # service: intake | query; method: digest | basic | api_key
)
AUTH_LOCKOUTS = Counter(
    "auth_lockouts_total", "Lock-outs after repeated wrong credentials, by service and what was locked.",
    ["service", "scope"],  # scope: account | address
)
ATTACHMENTS = Counter("intake_attachments_total", "Attachments stored, by form.", ["form_id"])
PUBLISH_SECONDS = Histogram(
    "bus_publish_seconds", "Time from publish to durable (broker ack or local commit).", ["bus"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PROCESSED = Counter(
    "processor_events_processed_total", "Events folded by a processor, by outcome.",
    ["processor", "outcome"],  # applied | replaced | duplicate | stale | conflict
)
ROWS_INSERTED = Counter("store_rows_inserted_total", "Rows written to the store, by table.", ["table"])
STORE_WRITE_SECONDS = Histogram(
    "store_write_seconds", "Time to write one processor batch to the store, by processor (both modes).", ["processor"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STORE_INSERT_FAILURES = Counter("store_insert_failures_total", "Failed writes to the store, by table.", ["table"])
PROCESSED_OFFSET = Gauge(
    "processor_processed_offset", "Highest offset written to the store, per topic partition (distributed mode). "
    "Compare with the log end: unlike the group's committed offset, faust's commit bookkeeping cannot hold it back.",
    ["topic", "partition"],
)
CONSUMER_LAG = Gauge(
    "processor_consumer_lag", "Events on a partition not yet written to the store by this worker.",
    ["topic", "partition"],
)
ROTATION_OVERDUE = Gauge(
    "rotation_batches_overdue", "Rotation batches dispatched longer than ROTATION_LOAN_DAYS ago, not returned.",
    ["province"],  # 2025-scheme province code
)
DEAD_LETTERS = Counter("dead_letters_total", "Submissions sent to the dead letters, by stage and reason.",
                       ["stage", "reason"])
CENTRAL_ROWS = Counter(
    "central_rows_total", "Submissions pulled from ODK Central, by form and what the intake made of them.",
    ["form_id", "outcome"],  # accepted | replaced | duplicate | held | rejected | retracted | retract_noop | reinstated
)
CENTRAL_ATTACHMENTS = Counter(
    "central_attachments_total", "Attachments of ODK Central submissions, by form and what became of them.",
    ["form_id", "outcome"],  # fetched | missing | late | too_large | abandoned
)
CENTRAL_POLL_LAG = Gauge(
    "central_poll_lag_seconds",
    "Now minus the newest of: the last ODK Central row handled, the start of the last complete poll.", ["form_id"],
)
CENTRAL_POLL_ERRORS = Counter("central_poll_errors_total", "ODK Central polls that stopped early, by form.",
                              ["form_id"])
# The pull's state (services/intake/central_state.py), read when scraped.
CENTRAL_LAST_POLL = Gauge("central_last_poll_timestamp_seconds", "When the last ODK Central poll ended (Unix time).",
                          ["form_id"])
CENTRAL_LAST_COMPLETE_POLL = Gauge(
    "central_last_complete_poll_timestamp_seconds",
    "When the last ODK Central poll that reached the end of both streams started (Unix time).", ["form_id"])
CENTRAL_BACKLOG = Gauge(
    "central_backlog_rows", "ODK Central rows from the cursor's bound at the start of the last poll, by stream "
    "(@odata.count: includes the few rows at the bound already handled).", ["form_id", "stream"])
CENTRAL_CURSOR = Gauge(
    "central_cursor_timestamp_seconds", "Position of the ODK Central cursor: the newest row time handled (Central's "
    "clock, Unix time), by stream (submissionDate: new submissions; updatedAt: edits and reviews).",
    ["form_id", "stream"])


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
