-- A credential's identity survives a logout. The generation a refresh compares-and-swaps on
-- must never repeat for a provider account, or a refresh that read the old credential would
-- pass the check against a new login that restarted at 1. The highest generation an account
-- ever had is kept here, outside the credential row, so a delete does not forget it.
CREATE TABLE credential_generations (
    provider  TEXT    NOT NULL,
    account   TEXT    NOT NULL,
    last      INTEGER NOT NULL,
    PRIMARY KEY (provider, account)
) STRICT, WITHOUT ROWID;
INSERT INTO credential_generations (provider, account, last)
    SELECT provider, account, generation FROM credentials;

CREATE TRIGGER credential_generation_insert AFTER INSERT ON credentials
BEGIN
    INSERT INTO credential_generations (provider, account, last)
        VALUES (NEW.provider, NEW.account, NEW.generation)
        ON CONFLICT (provider, account) DO UPDATE SET last = MAX(last, excluded.last);
END;

CREATE TRIGGER credential_generation_update AFTER UPDATE OF generation ON credentials
BEGIN
    INSERT INTO credential_generations (provider, account, last)
        VALUES (NEW.provider, NEW.account, NEW.generation)
        ON CONFLICT (provider, account) DO UPDATE SET last = MAX(last, excluded.last);
END;

-- Who may refresh a credential: the token endpoint and client id it was issued through,
-- recorded at login. Imported credentials (Claude Code, Codex, …) and rows stored before
-- this version have none: the ledger never refreshes them.
ALTER TABLE credentials ADD COLUMN refresh_token_url TEXT;
ALTER TABLE credentials ADD COLUMN refresh_client_id TEXT;
