-- Submissions the intake turned away (4xx), with the reason given to the phone, for
-- operators and the dashboard ("what the intake rejected recently and why"). The phone
-- keeps the submission; nothing here was accepted. Kept 180 days.
CREATE TABLE IF NOT EXISTS rejections
(
    rejection_id String,
    form_id      LowCardinality(String),
    instance_id  String,
    status       UInt16,
    reason_code  LowCardinality(String),
    reason_vi    String,
    reason_en    String,
    submitter    LowCardinality(String),
    received_at  DateTime64(3, 'Asia/Ho_Chi_Minh')
)
ENGINE = ReplacingMergeTree
ORDER BY rejection_id
TTL toDateTime(received_at) + INTERVAL 180 DAY;
