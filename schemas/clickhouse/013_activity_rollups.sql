-- Rollups of the activity forms (mobile sessions, reading promotion, staff training, donations),
-- kept as the visit rollups are (012_visit_rollups.sql; schemas/AGGREGATES.md, "Rollups"): the
-- activities processor writes each change of a report chain as a cancel row and a new row in
-- `activity_chain_rows`, and the views add `sign × value` per library-month, area-day and
-- area-month, per form (`event_type`) and per what its aggregate groups by (occasion; donor kind
-- and origin; worker and result, so that distinct workers can be counted from the rollup).
CREATE TABLE IF NOT EXISTS activity_chain_rows
(
    root_id                String,
    event_id               String,
    event_type             LowCardinality(String),
    submitted_at           DateTime64(3, 'Asia/Ho_Chi_Minh'),
    position               UInt64,
    counted                UInt8,
    library_id             LowCardinality(String),
    day                    Date,
    province_legacy        LowCardinality(String),
    commune_legacy         String,
    province_2025          LowCardinality(String),
    commune_2025           String,
    occasion               LowCardinality(String),
    donor_kind             LowCardinality(String),
    donor_origin           LowCardinality(String),
    worker_id              String,
    result                 LowCardinality(String),
    visits_total           Int64,
    visits_children        Int64,
    visits_adults          Int64,
    loans                  Int64,
    participants_total     Int64,
    participants_children  Int64,
    participants_adults    Int64,
    co_organised           Int64,
    hours                  Float64,
    books                  Int64,
    money_vnd              Int64,
    first_reported_at      Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    version_ids            Array(String),
    version_hashes         Array(String),
    seq                    UInt64,
    sign                   Int8
)
ENGINE = VersionedCollapsingMergeTree(sign, seq)
ORDER BY root_id
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS activity_library_month
(
    event_type             LowCardinality(String),
    library_id             LowCardinality(String),
    month                  Date,
    province_legacy        LowCardinality(String),
    commune_legacy         String,
    province_2025          LowCardinality(String),
    commune_2025           String,
    occasion               LowCardinality(String),
    donor_kind             LowCardinality(String),
    donor_origin           LowCardinality(String),
    worker_id              String,
    result                 LowCardinality(String),
    visits_total           Int64,
    visits_children        Int64,
    visits_adults          Int64,
    loans                  Int64,
    participants_total     Int64,
    participants_children  Int64,
    participants_adults    Int64,
    co_organised           Int64,
    hours                  Float64,
    books                  Int64,
    money_vnd              Int64,
    reports                Int64
)
ENGINE = SummingMergeTree
ORDER BY (event_type, library_id, month, province_2025, commune_2025, province_legacy, commune_legacy, occasion, donor_kind, donor_origin, worker_id, result);

CREATE TABLE IF NOT EXISTS activity_area_day
(
    event_type             LowCardinality(String),
    scheme                 LowCardinality(String),
    level                  LowCardinality(String),
    code                   String,
    day                    Date,
    occasion               LowCardinality(String),
    donor_kind             LowCardinality(String),
    donor_origin           LowCardinality(String),
    worker_id              String,
    result                 LowCardinality(String),
    visits_total           Int64,
    visits_children        Int64,
    visits_adults          Int64,
    loans                  Int64,
    participants_total     Int64,
    participants_children  Int64,
    participants_adults    Int64,
    co_organised           Int64,
    hours                  Float64,
    books                  Int64,
    money_vnd              Int64,
    reports                Int64
)
ENGINE = SummingMergeTree
ORDER BY (event_type, scheme, level, code, day, occasion, donor_kind, donor_origin, worker_id, result);

CREATE TABLE IF NOT EXISTS activity_area_month
(
    event_type             LowCardinality(String),
    scheme                 LowCardinality(String),
    level                  LowCardinality(String),
    code                   String,
    month                  Date,
    occasion               LowCardinality(String),
    donor_kind             LowCardinality(String),
    donor_origin           LowCardinality(String),
    worker_id              String,
    result                 LowCardinality(String),
    visits_total           Int64,
    visits_children        Int64,
    visits_adults          Int64,
    loans                  Int64,
    participants_total     Int64,
    participants_children  Int64,
    participants_adults    Int64,
    co_organised           Int64,
    hours                  Float64,
    books                  Int64,
    money_vnd              Int64,
    reports                Int64
)
ENGINE = SummingMergeTree
ORDER BY (event_type, scheme, level, code, month, occasion, donor_kind, donor_origin, worker_id, result);

CREATE MATERIALIZED VIEW IF NOT EXISTS activity_library_month_mv TO activity_library_month AS
SELECT event_type, library_id, toStartOfMonth(day) AS month, province_legacy, commune_legacy, province_2025,
       commune_2025, occasion, donor_kind, donor_origin, worker_id, result,
       sum(sign * counted * visits_total) AS visits_total,
       sum(sign * counted * visits_children) AS visits_children,
       sum(sign * counted * visits_adults) AS visits_adults,
       sum(sign * counted * loans) AS loans,
       sum(sign * counted * participants_total) AS participants_total,
       sum(sign * counted * participants_children) AS participants_children,
       sum(sign * counted * participants_adults) AS participants_adults,
       sum(sign * counted * co_organised) AS co_organised,
       sum(sign * counted * hours) AS hours,
       sum(sign * counted * books) AS books,
       sum(sign * counted * money_vnd) AS money_vnd,
       sum(sign * counted) AS reports
FROM activity_chain_rows
GROUP BY event_type, library_id, month, province_legacy, commune_legacy, province_2025, commune_2025, occasion, donor_kind, donor_origin, worker_id, result;

CREATE MATERIALIZED VIEW IF NOT EXISTS activity_area_day_mv TO activity_area_day AS
SELECT event_type, area.1 AS scheme, area.2 AS level, area.3 AS code, day, occasion, donor_kind, donor_origin, worker_id, result,
       sum(sign * counted * visits_total) AS visits_total,
       sum(sign * counted * visits_children) AS visits_children,
       sum(sign * counted * visits_adults) AS visits_adults,
       sum(sign * counted * loans) AS loans,
       sum(sign * counted * participants_total) AS participants_total,
       sum(sign * counted * participants_children) AS participants_children,
       sum(sign * counted * participants_adults) AS participants_adults,
       sum(sign * counted * co_organised) AS co_organised,
       sum(sign * counted * hours) AS hours,
       sum(sign * counted * books) AS books,
       sum(sign * counted * money_vnd) AS money_vnd,
       sum(sign * counted) AS reports
FROM activity_chain_rows
ARRAY JOIN [('', 'region', ''), ('legacy', 'province', toString(province_legacy)),
            ('legacy', 'commune', commune_legacy), ('2025', 'province', toString(province_2025)),
            ('2025', 'commune', commune_2025)] AS area
GROUP BY event_type, scheme, level, code, day, occasion, donor_kind, donor_origin, worker_id, result;

CREATE MATERIALIZED VIEW IF NOT EXISTS activity_area_month_mv TO activity_area_month AS
SELECT event_type, area.1 AS scheme, area.2 AS level, area.3 AS code, toStartOfMonth(day) AS month, occasion, donor_kind, donor_origin, worker_id, result,
       sum(sign * counted * visits_total) AS visits_total,
       sum(sign * counted * visits_children) AS visits_children,
       sum(sign * counted * visits_adults) AS visits_adults,
       sum(sign * counted * loans) AS loans,
       sum(sign * counted * participants_total) AS participants_total,
       sum(sign * counted * participants_children) AS participants_children,
       sum(sign * counted * participants_adults) AS participants_adults,
       sum(sign * counted * co_organised) AS co_organised,
       sum(sign * counted * hours) AS hours,
       sum(sign * counted * books) AS books,
       sum(sign * counted * money_vnd) AS money_vnd,
       sum(sign * counted) AS reports
FROM activity_chain_rows
ARRAY JOIN [('', 'region', ''), ('legacy', 'province', toString(province_legacy)),
            ('legacy', 'commune', commune_legacy), ('2025', 'province', toString(province_2025)),
            ('2025', 'commune', commune_2025)] AS area
GROUP BY event_type, scheme, level, code, month, occasion, donor_kind, donor_origin, worker_id, result;

-- The visit chains say their form too, as every report chain does.
ALTER TABLE visit_chain_rows ADD COLUMN IF NOT EXISTS event_type LowCardinality(String) DEFAULT 'visit_logged'
    AFTER event_id;

-- The activity chains of a store made before this migration, from the archive: each chain's
-- current version (accepted last, then log position), as `current_facts` resolves it; a chain whose
-- current version is a retraction is left out (it counts nothing). Only into an empty table.
INSERT INTO activity_chain_rows
SELECT root_id, argMax(event_id, v), argMax(event_type, v), max(submitted_at), argMax(version, v), 1,
       argMax(library_id, v), argMax(occurred_on, v), argMax(province_legacy, v), argMax(commune_legacy, v),
       argMax(province_2025, v), argMax(commune_2025, v),
       argMax(JSONExtractString(payload, 'occasion'), v), argMax(JSONExtractString(payload, 'donor_kind'), v),
       argMax(JSONExtractString(payload, 'donor_origin'), v), argMax(JSONExtractString(payload, 'worker_id'), v),
       argMax(JSONExtractString(payload, 'result'), v),
       argMax(JSONExtractInt(payload, 'visits_total'), v),
       argMax(JSONExtractInt(payload, 'visits_children'), v),
       argMax(JSONExtractInt(payload, 'visits_adults'), v),
       argMax(JSONExtractInt(payload, 'loans'), v),
       argMax(JSONExtractInt(payload, 'participants_total'), v),
       argMax(JSONExtractInt(payload, 'participants_children'), v),
       argMax(JSONExtractInt(payload, 'participants_adults'), v),
       argMax(toInt64(JSONExtractBool(payload, 'co_organised_with_provincial_library')), v),
       argMax(JSONExtractFloat(payload, 'hours'), v),
       argMax(JSONExtractInt(payload, 'books'), v),
       argMax(JSONExtractInt(payload, 'money_vnd'), v),
       min(submitted_at), groupArrayIf(event_id, event_type != 'submission_retracted'),
       groupArrayIf(content_hash, event_type != 'submission_retracted'), count(), toInt8(1)
FROM (SELECT *, (submitted_at, version) AS v FROM events FINAL
      WHERE event_type IN ('mobile_session_held', 'reading_promotion_held', 'staff_trained', 'donation_received',
                           'submission_retracted')
        AND (SELECT count() FROM activity_chain_rows) = 0)
GROUP BY root_id
HAVING argMax(event_type, v) IN ('mobile_session_held', 'reading_promotion_held', 'staff_trained',
                                 'donation_received');
