-- The metering gateway's ledger side.
--
-- Lease tokens: what an agent holds instead of the provider's credential. Only the SHA-256 of
-- a token is stored (hex), never the token: a copy of the file gives no usable token. A token
-- is worth something only while its lease is active; the lease's row decides that, so ending
-- a lease needs no write here.
CREATE TABLE lease_tokens (
    token_hash  TEXT    PRIMARY KEY,
    lease_id    TEXT    NOT NULL REFERENCES leases (id),
    created_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX lease_tokens_lease ON lease_tokens (lease_id);

-- Richer usage records, as a gateway reads them from every response: the model, the prompt
-- cache's reads and writes (kept apart from input), and the request's outcome.
ALTER TABLE usage_events ADD COLUMN model TEXT;
ALTER TABLE usage_events ADD COLUMN cache_read INTEGER NOT NULL DEFAULT 0 CHECK (cache_read >= 0);
ALTER TABLE usage_events ADD COLUMN cache_write INTEGER NOT NULL DEFAULT 0 CHECK (cache_write >= 0);
ALTER TABLE usage_events ADD COLUMN status TEXT;
