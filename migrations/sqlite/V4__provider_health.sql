-- Provider health, fed by callers reporting provider responses: a 429 or repeated 5xx makes an
-- account unavailable until its reset time; rate-limit headers are kept as reported.
CREATE TABLE provider_health (
    provider            TEXT    NOT NULL,
    account             TEXT    NOT NULL,
    unavailable_until   INTEGER,
    reason              TEXT,
    consecutive_errors  INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_errors >= 0),
    last_status         INTEGER,
    facts               TEXT    NOT NULL DEFAULT '{}',
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (provider, account)
) STRICT;
