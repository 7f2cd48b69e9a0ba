-- Every accepted event, as published: the archive that replays, audits and the
-- reporting-completeness indicator read. One row per event_id (a resend rewrites it).
CREATE TABLE IF NOT EXISTS events
(
    event_id        String,
    root_id         String,
    deprecated_id   String,
    event_type      LowCardinality(String),
    form_id         LowCardinality(String),
    form_version    String,
    library_id      LowCardinality(String),
    occurred_on     Date,
    submitted_at    DateTime64(3, 'Asia/Ho_Chi_Minh'),
    source          LowCardinality(String),
    submitter       LowCardinality(String),
    content_hash    String,
    province_legacy LowCardinality(String),
    commune_legacy  String,
    province_2025   LowCardinality(String),
    commune_2025    String,
    payload         String,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(occurred_on)
ORDER BY (event_type, event_id);
