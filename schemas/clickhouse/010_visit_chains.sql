-- Visits by report chain (schemas/AGGREGATES.md, "Visits" and "Partitioning"). The daily-visits
-- processor keeps one row per submission chain (root_id, the instanceID of its first version):
-- the chain's current version (the one accepted last; a retraction withdraws it: counted = 0),
-- the versions it has seen, and when its first version was accepted. A worker owns a chain
-- (events are keyed by root_id), never a library-day: an edit that moves a report to another
-- library, day or province rewrites the chain's one row. `seq` counts the chain's changes:
-- ReplacingMergeTree keeps the highest, and the same events folded again give the same rows,
-- so a batch written twice changes nothing. Read with FINAL. The row is also the processor's
-- state: it reads the chains a batch's edits and retractions touch by root_id (the sort key)
-- before folding it.
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
ORDER BY root_id
-- Small granules: the processor reads a batch's edited chains by root_id, scattered over the key
-- range (random UUIDs); each read costs a granule per chain, so 1024 rows rather than 8192.
SETTINGS index_granularity = 1024;

-- Chains from the archive of a store made before this migration: each chain's current version
-- (accepted last, then log position) as `current_facts` defines it. A `thuvien replay` into a new
-- store rebuilds the same rows through the processor.
INSERT INTO visit_chains
SELECT root_id, argMax(event_id, v), max(submitted_at), argMax(version, v),
       argMax(event_type, v) = 'visit_logged', argMax(library_id, v), argMax(occurred_on, v),
       argMax(province_legacy, v), argMax(commune_legacy, v), argMax(province_2025, v), argMax(commune_2025, v),
       argMax(JSONExtractUInt(payload, 'visits_total'), v), argMax(JSONExtractUInt(payload, 'visits_children'), v),
       argMax(JSONExtractUInt(payload, 'visits_adults'), v), argMax(JSONExtractUInt(payload, 'visits_female'), v),
       argMax(JSONExtractUInt(payload, 'visits_male'), v),
       argMax(JSONExtractUInt(payload, 'visits_ethnic_minority'), v),
       argMax(JSONExtractUInt(payload, 'visits_learning'), v), argMax(JSONExtractUInt(payload, 'visits_information'), v),
       argMax(JSONExtractUInt(payload, 'visits_reading'), v), argMax(JSONExtractUInt(payload, 'visits_events'), v),
       argMax(JSONExtractUInt(payload, 'virtual_visits'), v), argMax(JSONExtractUInt(payload, 'loans'), v),
       argMax(JSONExtractUInt(payload, 'renewals'), v), argMax(JSONExtractUInt(payload, 'new_registrations'), v),
       minIf(submitted_at, event_type = 'visit_logged'),
       groupArrayIf(event_id, event_type = 'visit_logged'), groupArrayIf(content_hash, event_type = 'visit_logged'),
       count()
FROM (SELECT *, (submitted_at, version) AS v FROM events FINAL
      WHERE root_id IN (SELECT root_id FROM events FINAL WHERE event_type = 'visit_logged'))
GROUP BY root_id;

-- Visits per library per day, by event time: the store's sum over the current chains. Nothing
-- holds a library-day's total apart from its chains, so nothing can disagree with them.
DROP TABLE IF EXISTS visits_library_daily;

CREATE VIEW IF NOT EXISTS visits_library_daily AS
SELECT
    library_id,
    day,
    any(province_legacy)        AS province_legacy,
    any(commune_legacy)         AS commune_legacy,
    any(province_2025)          AS province_2025,
    any(commune_2025)           AS commune_2025,
    sum(visits_total)           AS visits_total,
    sum(visits_children)        AS visits_children,
    sum(visits_adults)          AS visits_adults,
    sum(visits_female)          AS visits_female,
    sum(visits_male)            AS visits_male,
    sum(visits_ethnic_minority) AS visits_ethnic_minority,
    sum(visits_learning)        AS visits_learning,
    sum(visits_information)     AS visits_information,
    sum(visits_reading)         AS visits_reading,
    sum(visits_events)          AS visits_events,
    sum(virtual_visits)         AS virtual_visits,
    sum(loans)                  AS loans,
    sum(renewals)               AS renewals,
    sum(new_registrations)      AS new_registrations,
    count()                     AS reports,
    min(first_reported_at)      AS first_reported_at
FROM visit_chains FINAL
WHERE counted
GROUP BY library_id, day;
