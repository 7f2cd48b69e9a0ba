-- Events the processors could not apply, with a reason a person can read. Nothing
-- accepted is dropped: it is either in the aggregates or here.
CREATE TABLE IF NOT EXISTS dead_letters
(
    event_id    String,
    event_type  LowCardinality(String),
    library_id  String,
    reason_code LowCardinality(String),
    reason      String,
    event_json  String,
    recorded_at DateTime64(3, 'Asia/Ho_Chi_Minh')
)
ENGINE = ReplacingMergeTree
ORDER BY (event_id, reason_code);
