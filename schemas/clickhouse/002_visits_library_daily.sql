-- Visits per library per day, by event time (the day the visits happened, not when the
-- phone sent them). Each row carries the full totals of its (library_id, day); the
-- processor rewrites it whenever they change, with `version` = the log position of the
-- last event applied. ReplacingMergeTree keeps the highest version, so a re-delivered
-- batch rewrites identical rows and nothing is double counted. Read with FINAL.
-- Admin codes are stored under both schemes, each column named by its scheme.
CREATE TABLE IF NOT EXISTS visits_library_daily
(
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
    reports                UInt32,
    version                UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(day)
ORDER BY (library_id, day);
