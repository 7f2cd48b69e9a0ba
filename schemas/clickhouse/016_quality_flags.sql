-- Data-quality flags (schemas/AGGREGATES.md, "Data quality"; the rules: services/domain/quality.py).
-- One row per library, month and rule, written by the `quality` processor each time it evaluates
-- the library-month: `holds` = 1 while the rule fires, 0 once a re-evaluation finds it no longer
-- does (an edit fixed the report). `seq` counts the flag's changes: ReplacingMergeTree keeps the
-- highest, so a re-evaluation replaces the flag. Read with FINAL and `holds`. Derived, like every
-- table here: `thuvien replay` rebuilds the same flags from the log. `root_ids` / `instance_ids` are
-- the submission chains the flag is about (their first and current instanceIDs).
CREATE TABLE IF NOT EXISTS quality_flags
(
    library_id      LowCardinality(String),
    month           Date,
    rule            LowCardinality(String),
    holds           UInt8,
    province_legacy LowCardinality(String),
    commune_legacy  String,
    province_2025   LowCardinality(String),
    commune_2025    String,
    message_vi      String,
    message_en      String,
    figures         String,
    root_ids        Array(String),
    instance_ids    Array(String),
    seq             UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY (library_id, month, rule);
