-- Submissions and events that could not be applied, with a reason a person can read and
-- the raw submission, so they can be re-driven after a fix. Nothing accepted is dropped:
-- it is either in the aggregates or here. A dead letter is resolved once an event with
-- the same instance_id and content_hash is in `events` (see Store.dead_letters).
CREATE TABLE IF NOT EXISTS dead_letters
(
    dead_letter_id String,
    stage          LowCardinality(String),
    reason_code    LowCardinality(String),
    reason_vi      String,
    reason_en      String,
    instance_id    String,
    form_id        LowCardinality(String),
    library_id     String,
    submitter      String,
    content_hash   String,
    raw_xml        String,
    event_json     String,
    recorded_at    DateTime64(3, 'Asia/Ho_Chi_Minh')
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY dead_letter_id;
