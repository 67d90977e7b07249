-- Every acquire looks for expired active leases; without this index that was a scan of every
-- lease ever granted.
CREATE INDEX leases_state_expiry ON leases (state, expires_at);
CREATE INDEX leases_state_heartbeat ON leases (state, heartbeat_at);
