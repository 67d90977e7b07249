-- Credential details the vault keeps in clear: the provider's account id, where the
-- credential came from, and whether it needs a new login.
ALTER TABLE credentials ADD COLUMN account_id TEXT;
ALTER TABLE credentials ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'needs_login'));
