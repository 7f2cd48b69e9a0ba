-- What the intake accepted, what it holds and what it is still receiving: shared by every
-- intake replica (services/intake/postgres/ledger.py). instance_id's unique key is what makes
-- a second record of one instanceID impossible, whichever replica tries.
CREATE TABLE IF NOT EXISTS accepted (
    instance_id  text PRIMARY KEY,
    root_id      text NOT NULL,
    content_hash text NOT NULL,
    form_id      text NOT NULL,
    raw_sha256   text NOT NULL,
    event_json   text NOT NULL,
    retracted    boolean NOT NULL DEFAULT false,
    accepted_at  timestamptz NOT NULL,
    seq          bigserial NOT NULL  -- order of acceptance among equal accepted_at
);
CREATE INDEX IF NOT EXISTS accepted_by_root ON accepted (root_id, accepted_at, seq);

-- Edits that came before the version they replace. provinces: the scopes of the account that
-- sent it (JSON), checked again when it is released.
CREATE TABLE IF NOT EXISTS held (
    instance_id   text PRIMARY KEY,
    deprecated_id text NOT NULL,
    content_hash  text NOT NULL,
    raw_sha256    text NOT NULL,
    username      text NOT NULL,
    source        text NOT NULL,
    attachments   text NOT NULL,
    held_at       timestamptz NOT NULL,
    provinces     text
);
CREATE INDEX IF NOT EXISTS held_by_predecessor ON held (deprecated_id);
CREATE INDEX IF NOT EXISTS held_by_time ON held (held_at);

-- Split uploads (*isIncomplete*=yes): the attachments (JSON) of the parts received so far.
CREATE TABLE IF NOT EXISTS partial (
    instance_id  text PRIMARY KEY,
    content_hash text NOT NULL,
    attachments  text NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS partial_by_time ON partial (updated_at);
