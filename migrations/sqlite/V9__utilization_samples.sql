-- What the provider said of a subscription window, kept as a short history (provider_health
-- keeps only the last headers): each sample beside the tokens the ledger metered in the same
-- window estimates the window's real token limit (`limits show`, `limits set --window-5h auto`).
--
-- One row per window instance (resets_at) and reported figure: a figure reported again is not
-- stored again. Rows older than the longest window are pruned when a new one is written.
-- `window_name` is `5h`, `7d`, `primary` or `secondary` (not `window`: reserved in
-- PostgreSQL); `used_bp` is the used share in hundredths of a percent (4200 = 42 %), an exact
-- integer; `window_ms` is the window's length, so it started at `resets_at - window_ms`.
CREATE TABLE utilization_samples (
    provider    TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    window_name TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL,
    used_bp     INTEGER NOT NULL CHECK (used_bp >= 0),
    resets_at   INTEGER NOT NULL,
    window_ms   INTEGER NOT NULL CHECK (window_ms > 0),
    PRIMARY KEY (provider, account, window_name, resets_at, used_bp)
);
CREATE INDEX utilization_samples_at ON utilization_samples (provider, account, at_ms);
