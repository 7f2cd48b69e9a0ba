-- The current version of every submission chain (edits replace, Central's review
-- rejection retracts), read from the event archive. Aggregates other than the
-- processor-maintained ones are queries over this view; see schemas/AGGREGATES.md.
-- The current version is the one accepted last (submitted_at, then log position);
-- a chain whose last event is a retraction is left out. first_submitted_at is when
-- the chain's first version was accepted (reporting timeliness).
CREATE VIEW IF NOT EXISTS current_facts AS
SELECT
    root_id,
    argMax(event_id, v)        AS event_id,
    argMax(event_type, v)      AS event_type,
    argMax(form_id, v)         AS form_id,
    argMax(library_id, v)      AS library_id,
    argMax(occurred_on, v)     AS occurred_on,
    max(ts)                    AS submitted_at,
    min(ts)                    AS first_submitted_at,
    argMax(province_legacy, v) AS province_legacy,
    argMax(commune_legacy, v)  AS commune_legacy,
    argMax(province_2025, v)   AS province_2025,
    argMax(commune_2025, v)    AS commune_2025,
    argMax(payload, v)         AS payload
FROM (SELECT *, submitted_at AS ts, (submitted_at, version) AS v FROM events FINAL)
GROUP BY root_id
HAVING event_type != 'submission_retracted';
