-- Read-replica routing: how far a replica has replayed, and the primary's commit position.

-- name: replay_lag_seconds()$
-- On a replica: 0 when it has replayed all it received, else the age of the last replayed
-- transaction; 0 on a server that is not in recovery (a primary is never behind).
SELECT CASE
         WHEN NOT pg_is_in_recovery() THEN 0
         WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
         ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
       END AS lag;

-- name: has_replayed(lsn)$
-- Whether this server has replayed the WAL up to lsn (a primary always has).
SELECT NOT pg_is_in_recovery()
    OR pg_wal_lsn_diff(pg_last_wal_replay_lsn(), :lsn::pg_lsn) >= 0 AS replayed;

-- name: current_lsn()$
-- The primary's WAL position now: after a commit, at or past that commit.
SELECT pg_current_wal_lsn()::text AS lsn;
