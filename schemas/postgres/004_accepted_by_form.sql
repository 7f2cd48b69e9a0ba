-- The registry form's submissions, read by every intake replica to learn of libraries registered
-- on any of them (services/intake/registry.py): a few rows among the visit logs, found by form.
CREATE INDEX IF NOT EXISTS accepted_by_form ON accepted (form_id, accepted_at, seq);
