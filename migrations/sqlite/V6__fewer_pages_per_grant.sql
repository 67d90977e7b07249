-- Every grant and release writes one WAL frame per B-tree page it touches, and at
-- synchronous=NORMAL those frames are most of a transaction's cost. Active leases are a handful
-- while ended ones pile up forever, so one partial index over the active ones serves every
-- lookup (per account counts, expiry and idle scans) and stays a page or two.
DROP INDEX leases_active;
DROP INDEX leases_state_expiry;
DROP INDEX leases_state_heartbeat;
CREATE INDEX leases_live ON leases (provider, account, expires_at) WHERE state = 'active';

-- A reservation row is only ever found by its key: without a rowid it is one B-tree, not two.
CREATE TABLE lease_windows_v6 (
    lease_id   TEXT    NOT NULL REFERENCES leases (id),
    window_id  INTEGER NOT NULL REFERENCES windows (id),
    reserved   INTEGER NOT NULL CHECK (reserved >= 0),
    PRIMARY KEY (lease_id, window_id)
) STRICT, WITHOUT ROWID;
INSERT INTO lease_windows_v6 (lease_id, window_id, reserved)
    SELECT lease_id, window_id, reserved FROM lease_windows;
DROP TABLE lease_windows;
ALTER TABLE lease_windows_v6 RENAME TO lease_windows;
