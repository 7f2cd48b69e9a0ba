-- Approvals of periods by area (schemas/AGGREGATES.md, "Approval"): every approval, un-approval,
-- decision on a held change and region acceptance, as published on the `approvals` topic, with
-- its log position (one partition: a total order). PRIMARY data carried by the log: the
-- `approvals` processor archives the actions, and a `thuvien replay` into a new store writes them
-- again; the query API folds them in `position` order (services/domain/approvals.py). `body` is
-- the action's JSON (an approval holds the chain rows the approver saw). An action written twice
-- (a batch re-delivered, a publish retried) is read once, at its first position (min per action_id).
CREATE TABLE IF NOT EXISTS approval_actions
(
    action_id   String,
    position    UInt64,
    approval_id String,
    action      LowCardinality(String),
    scheme      LowCardinality(String),
    province    LowCardinality(String),
    body        String
)
ENGINE = MergeTree
ORDER BY (action_id, position);
