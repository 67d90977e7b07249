-- authledger schema, version 1: limits, windows, leases, usage, audit, settings, credentials.
-- Times are UTC epoch milliseconds; token figures are non-negative integers.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Limits per provider account. NULL means "no such limit".
CREATE TABLE limits (
    provider          TEXT    NOT NULL,
    account           TEXT    NOT NULL,
    daily_tokens      INTEGER NOT NULL CHECK (daily_tokens >= 0),
    window_5h_tokens  INTEGER CHECK (window_5h_tokens >= 0),
    weekly_tokens     INTEGER CHECK (weekly_tokens >= 0),
    rpm               INTEGER CHECK (rpm >= 0),
    tpm               INTEGER CHECK (tpm >= 0),
    concurrent        INTEGER NOT NULL CHECK (concurrent >= 0),
    lease_cap         INTEGER CHECK (lease_cap >= 0),
    reset_offset_min  INTEGER NOT NULL DEFAULT 0 CHECK (reset_offset_min >= 0 AND reset_offset_min < 1440),
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (provider, account)
) STRICT;

-- One row per metering window. A new window is a new row, never a counter reset in place.
CREATE TABLE windows (
    id        INTEGER PRIMARY KEY,
    provider  TEXT    NOT NULL,
    account   TEXT    NOT NULL,
    kind      TEXT    NOT NULL CHECK (kind IN ('day', '5h', 'week', 'minute')),
    start_ms  INTEGER NOT NULL,
    end_ms    INTEGER NOT NULL CHECK (end_ms > start_ms),
    used      INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    reserved  INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    requests  INTEGER NOT NULL DEFAULT 0 CHECK (requests >= 0),
    UNIQUE (provider, account, kind, start_ms)
) STRICT;

CREATE TABLE leases (
    id            TEXT    PRIMARY KEY,
    fence         INTEGER NOT NULL UNIQUE CHECK (fence > 0),
    agent         TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    account       TEXT    NOT NULL,
    allocated     INTEGER NOT NULL CHECK (allocated >= 0),
    used          INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    ttl_ms        INTEGER NOT NULL CHECK (ttl_ms > 0),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('active', 'released', 'expired', 'revoked')),
    ended_at      INTEGER,
    end_reason    TEXT,
    CHECK ((state = 'active') = (ended_at IS NULL))
) STRICT;
CREATE INDEX leases_active ON leases (provider, account, state, expires_at);

-- What each lease still holds in each budget window; released exactly once.
CREATE TABLE lease_windows (
    lease_id   TEXT    NOT NULL REFERENCES leases (id),
    window_id  INTEGER NOT NULL REFERENCES windows (id),
    reserved   INTEGER NOT NULL CHECK (reserved >= 0),
    PRIMARY KEY (lease_id, window_id)
) STRICT;

CREATE TABLE usage_events (
    id        INTEGER PRIMARY KEY,
    idem_key  TEXT    NOT NULL UNIQUE,
    lease_id  TEXT    NOT NULL REFERENCES leases (id),
    agent     TEXT    NOT NULL,
    provider  TEXT    NOT NULL,
    account   TEXT    NOT NULL,
    input     INTEGER NOT NULL CHECK (input >= 0),
    output    INTEGER NOT NULL CHECK (output >= 0),
    requests  INTEGER NOT NULL CHECK (requests >= 0),
    at_ms     INTEGER NOT NULL
) STRICT;
CREATE INDEX usage_events_at ON usage_events (at_ms);

-- Append-only, hash-chained audit trail.
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    action     TEXT    NOT NULL,
    agent      TEXT,
    provider   TEXT,
    account    TEXT,
    lease_id   TEXT,
    detail     TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_at ON audit (at_ms);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Credentials (filled by the vault): clear metadata, every secret field AEAD-encrypted.
CREATE TABLE credentials (
    provider     TEXT    NOT NULL,
    account      TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('api_key', 'oauth')),
    tier         TEXT,
    expires_at   INTEGER,
    scopes       TEXT,
    generation   INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    PRIMARY KEY (provider, account)
) STRICT;

CREATE TABLE credential_secrets (
    provider    TEXT NOT NULL,
    account     TEXT NOT NULL,
    field       TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    PRIMARY KEY (provider, account, field),
    FOREIGN KEY (provider, account) REFERENCES credentials (provider, account) ON DELETE CASCADE
) STRICT;
