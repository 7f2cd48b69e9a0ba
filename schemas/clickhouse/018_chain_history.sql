-- Each report chain's history on its row (schemas/AGGREGATES.md, "Lineage").
--
-- A figure's lineage lists, for each of its chains, every version and retraction with who sent it,
-- through what and when it was accepted (and a retraction's reason). It read those from `events`
-- for every chain edited or retracted: a few dozen of a page's chains, each a lookup by id into an
-- archive of millions of events in many parts, and the largest part of a page's time. The
-- processors now keep them on the chain row as they fold (`ReportChain.history`, in acceptance
-- order), so a page reads the chain rows only. A row written before this migration has an empty
-- history; lineage reads such a chain from the archive, as before, until a `thuvien replay`
-- rebuilds the rows. The history names who sent the current version, so the `submitter` and
-- `source` columns migration 017 added for a chain of one version go.
ALTER TABLE visit_chain_rows DROP PROJECTION IF EXISTS by_day;
ALTER TABLE activity_chain_rows DROP PROJECTION IF EXISTS by_day;
ALTER TABLE visit_chain_rows DROP COLUMN IF EXISTS submitter;
ALTER TABLE visit_chain_rows DROP COLUMN IF EXISTS source;
ALTER TABLE activity_chain_rows DROP COLUMN IF EXISTS submitter;
ALTER TABLE activity_chain_rows DROP COLUMN IF EXISTS source;
ALTER TABLE visit_chain_rows ADD COLUMN IF NOT EXISTS history Array(Tuple(
    event_id String, retraction UInt8, accepted_at DateTime64(3, 'Asia/Ho_Chi_Minh'),
    submitter LowCardinality(String), source LowCardinality(String), reason_code LowCardinality(String),
    reason String)) DEFAULT [];
ALTER TABLE activity_chain_rows ADD COLUMN IF NOT EXISTS history Array(Tuple(
    event_id String, retraction UInt8, accepted_at DateTime64(3, 'Asia/Ho_Chi_Minh'),
    submitter LowCardinality(String), source LowCardinality(String), reason_code LowCardinality(String),
    reason String)) DEFAULT [];
-- The by-day projections of migration 017 are replaced by projections sorted by area, then day: the
-- rows of a province's days lie together (a growth rate's two years of one area read ~80 granules
-- instead of every province's ~1,400), and a question with days but no province still reads only
-- those days of each province (a 2025 province holds at most a few legacy ones). They hold the
-- history too: lineage reads a page's rows through them.
ALTER TABLE visit_chain_rows ADD PROJECTION IF NOT EXISTS by_area_day (
    SELECT root_id, event_id, submitted_at, position, counted, library_id, day, province_legacy, commune_legacy,
           province_2025, commune_2025, visits_total, visits_children, visits_adults, visits_female, visits_male,
           visits_ethnic_minority, visits_learning, visits_information, visits_reading, visits_events,
           virtual_visits, loans, renewals, new_registrations, first_reported_at, version_ids, seq, history,
           sign
    ORDER BY province_2025, province_legacy, day, root_id
);
ALTER TABLE visit_chain_rows MATERIALIZE PROJECTION by_area_day;
ALTER TABLE activity_chain_rows ADD PROJECTION IF NOT EXISTS by_area_day (
    SELECT root_id, event_id, event_type, submitted_at, position, counted, library_id, day, province_legacy,
           commune_legacy, province_2025, commune_2025, occasion, donor_kind, donor_origin, worker_id, result,
           visits_total, visits_children, visits_adults, loans, participants_total, participants_children,
           participants_adults, co_organised, hours, books, money_vnd, first_reported_at, version_ids, seq,
           history, sign
    ORDER BY province_2025, province_legacy, day, root_id
);
ALTER TABLE activity_chain_rows MATERIALIZE PROJECTION by_area_day;
