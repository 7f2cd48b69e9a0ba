-- Raw XML and attachments by content, as ODK Central keeps them: bytea named by its sha256,
-- written with INSERT … ON CONFLICT DO NOTHING (the same bytes twice are one row).
-- STORAGE EXTERNAL: out of line but not compressed — photos and audio do not compress, and
-- trying costs CPU on every insert.
CREATE TABLE IF NOT EXISTS blobs (
    sha256 text PRIMARY KEY,
    size   bigint NOT NULL,
    data   bytea NOT NULL
);
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;

-- Attachments of split uploads whose last part has not come, per instanceID: adopted into blobs
-- with the last part (whichever replica gets it), dropped with the upload when it expires.
CREATE TABLE IF NOT EXISTS parked (
    instance_id text NOT NULL,
    sha256      text NOT NULL,
    size        bigint NOT NULL,
    data        bytea NOT NULL,
    PRIMARY KEY (instance_id, sha256)
);
ALTER TABLE parked ALTER COLUMN data SET STORAGE EXTERNAL;
