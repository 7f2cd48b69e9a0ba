-- The processors' own state, key → JSON, where it is not already a fact row (schemas/AGGREGATES.md,
-- "Partitioning"): book rotation's chains (`sub:<root_id>`) and batches (`batch:<batch_id>`), and
-- the next offset each distributed agent expects per partition (`next:<topic>:<partition>`). Kept in
-- the store, not in a worker, so a partition that moves to another worker finds its state there
-- at once (no changelog to restore). A batch reads the keys it touches once, and writes those it
-- changed once. `seq` counts a key's changes (for offsets, the offset itself): ReplacingMergeTree
-- keeps the highest, and the same events folded again from the same state give the same rows.
CREATE TABLE IF NOT EXISTS processor_state
(
    processor LowCardinality(String),
    key       String,
    value     String,
    seq       UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY (processor, key);
