-- Visit rollups kept exact under edits, moves and retractions (schemas/AGGREGATES.md, "Rollups").
--
-- The chains move to `visit_chain_rows`, a VersionedCollapsingMergeTree: when the daily-visits
-- processor changes a chain it writes, in one insert, a cancel row (sign = -1) repeating the row
-- the store held and the chain's new row (sign = +1, seq one higher). So sum(sign * x) over the
-- rows is the sum over the chains as they stand, without FINAL, and every insert is exactly the
-- change it makes: the materialized views below add it to the rollups (SummingMergeTree), where an
-- edit that moves a report to another library, day or province subtracts it from where it was and
-- adds it where it is. A plain view over rewritten rows would count a chain once per version.
-- The processor reads a chain as it stands before cancelling it (always, for a batch that may
-- have been folded before: services/processors/runner.py), so a re-delivery writes nothing; an
-- insert retried after an ambiguous failure is the same block, dropped by the deduplication window
-- (and then not passed to the views).
CREATE TABLE IF NOT EXISTS visit_chain_rows
(
    root_id                String,
    event_id               String,
    submitted_at           DateTime64(3, 'Asia/Ho_Chi_Minh'),
    position               UInt64,
    counted                UInt8,
    library_id             LowCardinality(String),
    day                    Date,
    province_legacy        LowCardinality(String),
    commune_legacy         String,
    province_2025          LowCardinality(String),
    commune_2025           String,
    visits_total           UInt32,
    visits_children        UInt32,
    visits_adults          UInt32,
    visits_female          UInt32,
    visits_male            UInt32,
    visits_ethnic_minority UInt32,
    visits_learning        UInt32,
    visits_information     UInt32,
    visits_reading         UInt32,
    visits_events          UInt32,
    virtual_visits         UInt32,
    loans                  UInt32,
    renewals               UInt32,
    new_registrations      UInt32,
    first_reported_at      Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    version_ids            Array(String),
    version_hashes         Array(String),
    seq                    UInt64,
    sign                   Int8
)
ENGINE = VersionedCollapsingMergeTree(sign, seq)
ORDER BY root_id
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 1000;

-- Per library per month (a library's rows under each pair of areas its reports carried).
CREATE TABLE IF NOT EXISTS visits_library_month
(
    library_id             LowCardinality(String),
    month                  Date,
    province_legacy        LowCardinality(String),
    commune_legacy         String,
    province_2025          LowCardinality(String),
    commune_2025           String,
    visits_total           Int64,
    visits_children        Int64,
    visits_adults          Int64,
    visits_female          Int64,
    visits_male            Int64,
    visits_ethnic_minority Int64,
    visits_learning        Int64,
    visits_information     Int64,
    visits_reading         Int64,
    visits_events          Int64,
    virtual_visits         Int64,
    loans                  Int64,
    renewals               Int64,
    new_registrations      Int64,
    reports                Int64,
    on_time_reports        Int64
)
ENGINE = SummingMergeTree
ORDER BY (library_id, month, province_2025, commune_2025, province_legacy, commune_legacy);

-- Per area per day and per month: level 'region' (code ''), 'province' and 'commune' under each
-- scheme (the region is the same under both: scheme '').
CREATE TABLE IF NOT EXISTS visits_area_day
(
    scheme                 LowCardinality(String),
    level                  LowCardinality(String),
    code                   String,
    day                    Date,
    visits_total           Int64,
    visits_children        Int64,
    visits_adults          Int64,
    visits_female          Int64,
    visits_male            Int64,
    visits_ethnic_minority Int64,
    visits_learning        Int64,
    visits_information     Int64,
    visits_reading         Int64,
    visits_events          Int64,
    virtual_visits         Int64,
    loans                  Int64,
    renewals               Int64,
    new_registrations      Int64,
    reports                Int64,
    on_time_reports        Int64
)
ENGINE = SummingMergeTree
ORDER BY (scheme, level, code, day);

CREATE TABLE IF NOT EXISTS visits_area_month
(
    scheme                 LowCardinality(String),
    level                  LowCardinality(String),
    code                   String,
    month                  Date,
    visits_total           Int64,
    visits_children        Int64,
    visits_adults          Int64,
    visits_female          Int64,
    visits_male            Int64,
    visits_ethnic_minority Int64,
    visits_learning        Int64,
    visits_information     Int64,
    visits_reading         Int64,
    visits_events          Int64,
    virtual_visits         Int64,
    loans                  Int64,
    renewals               Int64,
    new_registrations      Int64,
    reports                Int64,
    on_time_reports        Int64
)
ENGINE = SummingMergeTree
ORDER BY (scheme, level, code, month);

-- reports: counted chains; on_time_reports: those whose first version was accepted by the
-- reporting deadline of their month (its last day + 10 days), so a library-month is on time
-- when it has one (reporting timeliness).
CREATE MATERIALIZED VIEW IF NOT EXISTS visits_library_month_mv TO visits_library_month AS
SELECT library_id, toStartOfMonth(day) AS month, province_legacy, commune_legacy, province_2025, commune_2025,
       sum(sign * counted * visits_total) AS visits_total,
       sum(sign * counted * visits_children) AS visits_children,
       sum(sign * counted * visits_adults) AS visits_adults,
       sum(sign * counted * visits_female) AS visits_female,
       sum(sign * counted * visits_male) AS visits_male,
       sum(sign * counted * visits_ethnic_minority) AS visits_ethnic_minority,
       sum(sign * counted * visits_learning) AS visits_learning,
       sum(sign * counted * visits_information) AS visits_information,
       sum(sign * counted * visits_reading) AS visits_reading,
       sum(sign * counted * visits_events) AS visits_events,
       sum(sign * counted * virtual_visits) AS virtual_visits,
       sum(sign * counted * loans) AS loans,
       sum(sign * counted * renewals) AS renewals,
       sum(sign * counted * new_registrations) AS new_registrations,
       sum(sign * counted) AS reports,
       sum(sign * counted * ifNull(toDate(first_reported_at, 'Asia/Ho_Chi_Minh') <= addDays(toLastDayOfMonth(day), 10), 0)) AS on_time_reports
FROM visit_chain_rows
GROUP BY library_id, month, province_legacy, commune_legacy, province_2025, commune_2025;

CREATE MATERIALIZED VIEW IF NOT EXISTS visits_area_day_mv TO visits_area_day AS
SELECT area.1 AS scheme, area.2 AS level, area.3 AS code, day,
       sum(sign * counted * visits_total) AS visits_total,
       sum(sign * counted * visits_children) AS visits_children,
       sum(sign * counted * visits_adults) AS visits_adults,
       sum(sign * counted * visits_female) AS visits_female,
       sum(sign * counted * visits_male) AS visits_male,
       sum(sign * counted * visits_ethnic_minority) AS visits_ethnic_minority,
       sum(sign * counted * visits_learning) AS visits_learning,
       sum(sign * counted * visits_information) AS visits_information,
       sum(sign * counted * visits_reading) AS visits_reading,
       sum(sign * counted * visits_events) AS visits_events,
       sum(sign * counted * virtual_visits) AS virtual_visits,
       sum(sign * counted * loans) AS loans,
       sum(sign * counted * renewals) AS renewals,
       sum(sign * counted * new_registrations) AS new_registrations,
       sum(sign * counted) AS reports,
       sum(sign * counted * ifNull(toDate(first_reported_at, 'Asia/Ho_Chi_Minh') <= addDays(toLastDayOfMonth(day), 10), 0)) AS on_time_reports
FROM visit_chain_rows
ARRAY JOIN [('', 'region', ''), ('legacy', 'province', toString(province_legacy)),
            ('legacy', 'commune', commune_legacy), ('2025', 'province', toString(province_2025)),
            ('2025', 'commune', commune_2025)] AS area
GROUP BY scheme, level, code, day;

CREATE MATERIALIZED VIEW IF NOT EXISTS visits_area_month_mv TO visits_area_month AS
SELECT area.1 AS scheme, area.2 AS level, area.3 AS code, toStartOfMonth(day) AS month,
       sum(sign * counted * visits_total) AS visits_total,
       sum(sign * counted * visits_children) AS visits_children,
       sum(sign * counted * visits_adults) AS visits_adults,
       sum(sign * counted * visits_female) AS visits_female,
       sum(sign * counted * visits_male) AS visits_male,
       sum(sign * counted * visits_ethnic_minority) AS visits_ethnic_minority,
       sum(sign * counted * visits_learning) AS visits_learning,
       sum(sign * counted * visits_information) AS visits_information,
       sum(sign * counted * visits_reading) AS visits_reading,
       sum(sign * counted * visits_events) AS visits_events,
       sum(sign * counted * virtual_visits) AS virtual_visits,
       sum(sign * counted * loans) AS loans,
       sum(sign * counted * renewals) AS renewals,
       sum(sign * counted * new_registrations) AS new_registrations,
       sum(sign * counted) AS reports,
       sum(sign * counted * ifNull(toDate(first_reported_at, 'Asia/Ho_Chi_Minh') <= addDays(toLastDayOfMonth(day), 10), 0)) AS on_time_reports
FROM visit_chain_rows
ARRAY JOIN [('', 'region', ''), ('legacy', 'province', toString(province_legacy)),
            ('legacy', 'commune', commune_legacy), ('2025', 'province', toString(province_2025)),
            ('2025', 'commune', commune_2025)] AS area
GROUP BY scheme, level, code, month;

-- The chains of a store made before this migration, copied once (through the views above, so the
-- rollups start equal to them). The table is made again first, empty, should a run that dropped
-- it be retried; the copy only fills an empty table.
CREATE TABLE IF NOT EXISTS visit_chains
(
    root_id                String,
    event_id               String,
    submitted_at           DateTime64(3, 'Asia/Ho_Chi_Minh'),
    position               UInt64,
    counted                UInt8,
    library_id             LowCardinality(String),
    day                    Date,
    province_legacy        LowCardinality(String),
    commune_legacy         String,
    province_2025          LowCardinality(String),
    commune_2025           String,
    visits_total           UInt32,
    visits_children        UInt32,
    visits_adults          UInt32,
    visits_female          UInt32,
    visits_male            UInt32,
    visits_ethnic_minority UInt32,
    visits_learning        UInt32,
    visits_information     UInt32,
    visits_reading         UInt32,
    visits_events          UInt32,
    virtual_visits         UInt32,
    loans                  UInt32,
    renewals               UInt32,
    new_registrations      UInt32,
    first_reported_at      Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    version_ids            Array(String),
    version_hashes         Array(String),
    seq                    UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY root_id;

INSERT INTO visit_chain_rows
SELECT *, toInt8(1) FROM visit_chains FINAL
WHERE (SELECT count() FROM visit_chain_rows) = 0;

DROP VIEW IF EXISTS visits_library_daily;

DROP TABLE IF EXISTS visit_chains;

-- Visits per library per day, by event time, as before: the sum over the chains as they stand
-- (for tools and people; the API reads the rollups or sums sign * x).
CREATE VIEW IF NOT EXISTS visits_library_daily AS
SELECT
    library_id,
    day,
    any(province_legacy)        AS province_legacy,
    any(commune_legacy)         AS commune_legacy,
    any(province_2025)          AS province_2025,
    any(commune_2025)           AS commune_2025,
    toInt64(sum(visits_total)) AS visits_total,
    toInt64(sum(visits_children)) AS visits_children,
    toInt64(sum(visits_adults)) AS visits_adults,
    toInt64(sum(visits_female)) AS visits_female,
    toInt64(sum(visits_male)) AS visits_male,
    toInt64(sum(visits_ethnic_minority)) AS visits_ethnic_minority,
    toInt64(sum(visits_learning)) AS visits_learning,
    toInt64(sum(visits_information)) AS visits_information,
    toInt64(sum(visits_reading)) AS visits_reading,
    toInt64(sum(visits_events)) AS visits_events,
    toInt64(sum(virtual_visits)) AS virtual_visits,
    toInt64(sum(loans)) AS loans,
    toInt64(sum(renewals)) AS renewals,
    toInt64(sum(new_registrations)) AS new_registrations,
    toInt64(count())            AS reports,
    min(first_reported_at)      AS first_reported_at
FROM visit_chain_rows FINAL
WHERE counted AND sign = 1
GROUP BY library_id, day;
