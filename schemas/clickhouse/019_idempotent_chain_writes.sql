-- A chain write retried after a partial failure counts once (schemas/AGGREGATES.md, "Partitioning",
-- "Exactness under re-delivery and crashes").
--
-- ClickHouse does not make an insert into the chain rows and the inserts of their materialized
-- views one: a store failing in between (a full disk) can keep the chain rows and lose a rollup's
-- block, or keep some rollups' blocks and lose the chain rows'. The processor retries the same
-- write until the store takes it (services/processors/retry.py), and a rollup's block kept the
-- first time was then counted twice (the chain rows had a deduplication window since 012; the
-- rollups had none). Every chain write now carries a deduplication token made from its rows
-- (`Store.write_chains`); each rollup now remembers the tokens of its last 1,000 blocks too, and
-- the views' blocks are checked by their own tables (`deduplicate_blocks_in_dependent_materialized_views`):
-- on a retry each table takes exactly the block it lost.
ALTER TABLE visits_library_day MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE visits_library_month MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE visits_area_day MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE visits_area_month MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE activity_library_month MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE activity_area_day MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE activity_area_month MODIFY SETTING non_replicated_deduplication_window = 1000;
