-- The highest Digest nonce count (nc) used with each nonce, while the nonce is valid: a header
-- replayed to any replica is refused (services/intake/postgres/nonce_counts.py).
CREATE TABLE IF NOT EXISTS digest_nonces (
    nonce     text PRIMARY KEY,
    nc        bigint NOT NULL,
    issued_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS digest_nonces_by_issue ON digest_nonces (issued_at);
