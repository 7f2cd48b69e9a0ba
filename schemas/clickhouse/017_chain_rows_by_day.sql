-- The report chains' rows also sorted by day (schemas/AGGREGATES.md, "Lineage").
--
-- `visit_chain_rows` and `activity_chain_rows` are sorted by root_id: the processors read a
-- batch's chains by it. A question about one area's month (a figure's lineage, an approval's
-- snapshot and queue, an activity figure read with approved rows in place of live ones) would read
-- every granule of the table, since a month's chains are scattered over the random ids. A
-- projection keeps a copy of each part sorted by (day, root_id); ClickHouse reads it when a query's
-- days are narrow, and keeps it exact through the collapsing merges ('rebuild'). It holds every
-- column but the versions' content hashes, which no such question reads (lineage counts a chain's
-- versions from `version_ids`).
-- Each chain row also names who sent its current version and through what (the envelope's
-- `submitter` and `source`): lineage lists them from the row, and reads the archive only for a chain
-- with more than one version or a retraction (rows made before: empty, read from the archive).
ALTER TABLE visit_chain_rows ADD COLUMN IF NOT EXISTS submitter LowCardinality(String) DEFAULT '';
ALTER TABLE visit_chain_rows ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '';
ALTER TABLE activity_chain_rows ADD COLUMN IF NOT EXISTS submitter LowCardinality(String) DEFAULT '';
ALTER TABLE activity_chain_rows ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '';
ALTER TABLE visit_chain_rows MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';
ALTER TABLE visit_chain_rows ADD PROJECTION IF NOT EXISTS by_day (
    SELECT root_id, event_id, submitted_at, position, counted, library_id, day, province_legacy, commune_legacy,
           province_2025, commune_2025, visits_total, visits_children, visits_adults, visits_female, visits_male,
           visits_ethnic_minority, visits_learning, visits_information, visits_reading, visits_events,
           virtual_visits, loans, renewals, new_registrations, first_reported_at, version_ids, seq, submitter,
           source, sign
    ORDER BY day, root_id
);
ALTER TABLE visit_chain_rows MATERIALIZE PROJECTION by_day;
ALTER TABLE activity_chain_rows MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';
ALTER TABLE activity_chain_rows ADD PROJECTION IF NOT EXISTS by_day (
    SELECT root_id, event_id, event_type, submitted_at, position, counted, library_id, day, province_legacy,
           commune_legacy, province_2025, commune_2025, occasion, donor_kind, donor_origin, worker_id, result,
           visits_total, visits_children, visits_adults, loans, participants_total, participants_children,
           participants_adults, co_organised, hours, books, money_vnd, first_reported_at, version_ids, seq,
           submitter, source, sign
    ORDER BY day, root_id
);
ALTER TABLE activity_chain_rows MATERIALIZE PROJECTION by_day;
