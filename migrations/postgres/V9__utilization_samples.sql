-- What the provider said of a subscription window, kept as a short history for calibration
-- (see migrations/sqlite/V9__utilization_samples.sql, the same table).
CREATE TABLE utilization_samples (
    provider    TEXT   NOT NULL,
    account     TEXT   NOT NULL,
    window_name TEXT   NOT NULL,
    at_ms       BIGINT NOT NULL,
    used_bp     BIGINT NOT NULL CHECK (used_bp >= 0),
    resets_at   BIGINT NOT NULL,
    window_ms   BIGINT NOT NULL CHECK (window_ms > 0),
    PRIMARY KEY (provider, account, window_name, resets_at, used_bp)
);
CREATE INDEX utilization_samples_at ON utilization_samples (provider, account, at_ms);
