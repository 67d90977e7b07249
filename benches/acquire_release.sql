-- One acquire+release pair of the ledger's shape, as raw SQL (benches/postgres.rs runs it with
-- pgbench -M prepared). Both transactions take the ledger-wide advisory lock, read what the
-- ledger reads (the window's sums, the next fence, the audit chain's tail) and write what it
-- writes (the window, the lease, one chained audit row).
\set acct random(1, 8)
\set n random(1, 1000)
BEGIN;
SELECT pg_advisory_xact_lock(1);
SELECT used, reserved, lim FROM windows WHERE account_id = :acct;
SELECT COALESCE(MAX(fence), 0) + 1 AS fence FROM leases \gset
UPDATE windows SET reserved = reserved + :n WHERE account_id = :acct AND used + reserved + :n <= lim;
INSERT INTO leases (fence, account_id, reserved, state, created_at) VALUES (:fence, :acct, :n, 'active', now());
SELECT seq AS tail_seq, hash AS tail_hash FROM audit ORDER BY seq DESC LIMIT 1 \gset
INSERT INTO audit (seq, at, action, lease_fence, hash) VALUES (:tail_seq + 1, now(), 'acquire', :fence, md5(:tail_hash::text || 'acquire' || :fence::text));
COMMIT;
BEGIN;
SELECT pg_advisory_xact_lock(1);
UPDATE leases SET state = 'released', ended_at = now() WHERE fence = :fence AND state = 'active';
UPDATE windows SET reserved = reserved - :n, used = used + :n WHERE account_id = :acct;
SELECT seq AS tail_seq, hash AS tail_hash FROM audit ORDER BY seq DESC LIMIT 1 \gset
INSERT INTO audit (seq, at, action, lease_fence, hash) VALUES (:tail_seq + 1, now(), 'release', :fence, md5(:tail_hash::text || 'release' || :fence::text));
COMMIT;
