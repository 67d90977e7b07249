-- OAuth refresh: when a credential was last refreshed, and the claim that makes one process
-- (of many) do the refresh while the others wait. A claim expires so a dead claimer cannot
-- block the others.
ALTER TABLE credentials ADD COLUMN refreshed_at INTEGER;

CREATE TABLE refresh_claims (
    provider    TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    holder      TEXT    NOT NULL,
    generation  INTEGER NOT NULL,
    claimed_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL CHECK (expires_at > claimed_at),
    PRIMARY KEY (provider, account)
) STRICT;
