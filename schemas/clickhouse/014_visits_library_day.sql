-- Visits per library per day, sorted by day (schemas/AGGREGATES.md, "Rollups"). The chain rows are
-- sorted by root_id, as the processor reads them; a question about some libraries by day (a library
-- type, say) would scan them all. This rollup holds about as many rows as there are chains (a
-- library reports once a day) but sorted by day, so a period reads only its days; it is kept like
-- the other rollups (012_visit_rollups.sql), by a view adding each insert's cancel and new rows.
CREATE TABLE IF NOT EXISTS visits_library_day
(
    library_id             LowCardinality(String),
    day                    Date,
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
ORDER BY (day, library_id, province_2025, commune_2025, province_legacy, commune_legacy);

CREATE MATERIALIZED VIEW IF NOT EXISTS visits_library_day_mv TO visits_library_day AS
SELECT library_id, day, province_legacy, commune_legacy, province_2025, commune_2025,
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
GROUP BY library_id, day, province_legacy, commune_legacy, province_2025, commune_2025;

-- The chains already in the store, once (only into an empty rollup).
INSERT INTO visits_library_day
SELECT library_id, day, province_legacy, commune_legacy, province_2025, commune_2025,
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
WHERE (SELECT count() FROM visits_library_day) = 0
GROUP BY library_id, day, province_legacy, commune_legacy, province_2025, commune_2025;
