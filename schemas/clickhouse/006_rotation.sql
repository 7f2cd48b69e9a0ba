-- Book rotation (schemas/AGGREGATES.md, "Book rotation"), maintained by the rotation
-- processor (services/domain/rotation.py). One row per batch: its state made from its valid
-- movements, walked in event-time order: status (none | dispatched | received | returned),
-- origin, holder (the library it was dispatched to and received by; areas under both
-- schemes, each column named by its scheme), the dates of its three steps (NULL until
-- then), titles / copies / ethnic-language copies as dispatched, copies lost and damaged
-- summed over the valid movements. The processor rewrites the whole row whenever the batch
-- changes; `version` is a per-batch counter (a batch's movements may come from several
-- Kafka partitions, whose offsets do not compare), so the highest version is the latest
-- state and a re-delivered event rewrites identical rows. Read with FINAL.
CREATE TABLE IF NOT EXISTS rotation_batches
(
    batch_id               String,
    status                 LowCardinality(String),
    origin                 LowCardinality(String),
    origin_province        LowCardinality(String),
    origin_library_id      Nullable(String),
    library_id             LowCardinality(String),
    province_legacy        LowCardinality(String),
    commune_legacy         String,
    province_2025          LowCardinality(String),
    commune_2025           String,
    dispatched_on          Nullable(Date),
    received_on            Nullable(Date),
    returned_on            Nullable(Date),
    titles                 UInt32,
    copies                 UInt32,
    ethnic_language_copies UInt32,
    copies_lost            UInt32,
    copies_damaged         UInt32,
    valid_movements        UInt16,
    invalid_movements      UInt16,
    version                UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY batch_id;

-- Every current movement of every batch (the current version of its submission chain), in
-- the batch's walk order (`seq`), valid or not: an invalid movement (received before
-- dispatched, returned twice, a second dispatch, …) is kept with `valid = 0` and its reason
-- in Vietnamese and English, and has a dead letter. Rewritten with the batch's version
-- whenever the batch changes. A movement withdrawn from the batch (its chain retracted, or
-- edited into another batch) is rewritten with `is_deleted = 1`: FINAL leaves it out.
CREATE TABLE IF NOT EXISTS rotation_movements
(
    batch_id       String,
    root_id        String,
    event_id       String,
    movement       LowCardinality(String),
    library_id     LowCardinality(String),
    occurred_on    Date,
    submitted_at   DateTime64(3, 'Asia/Ho_Chi_Minh'),
    seq            UInt16,
    valid          UInt8,
    reason_code    LowCardinality(String),
    reason_vi      String,
    reason_en      String,
    copies         UInt32,
    copies_lost    UInt32,
    copies_damaged UInt32,
    is_deleted     UInt8,
    version        UInt64
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (batch_id, root_id);
