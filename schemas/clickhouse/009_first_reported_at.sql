-- When the earliest visit log counted on a library-day was first accepted (its chain's first
-- version), written by the processor with the day's totals: the reporting-timeliness indicator
-- reads it here instead of resolving every edit chain of the year from `events`.
-- Rows written before this migration hold 1970-01-01 (as days with no report do); the
-- indicator falls back to `events` for a year that still has such rows with reports > 0
-- (a `thuvien replay` into a new store rewrites them).
ALTER TABLE visits_library_daily
    ADD COLUMN IF NOT EXISTS first_reported_at DateTime64(3, 'Asia/Ho_Chi_Minh') DEFAULT toDateTime64(0, 3, 'Asia/Ho_Chi_Minh');
