-- Read-replica routing: how far a replica has replayed, and the primary's commit position.

-- name: replayed_position()$
-- How far this server has replayed the primary's WAL; NULL when it is not a standby (a standby
-- promoted since keeps reporting where its recovery ended, which would look ever further behind).
SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS lsn;

-- name: has_replayed(lsn)$
-- Whether this server has replayed the WAL up to lsn (a primary always has).
SELECT NOT pg_is_in_recovery()
    OR pg_wal_lsn_diff(pg_last_wal_replay_lsn(), :lsn::pg_lsn) >= 0 AS replayed;

-- name: current_lsn()$
-- The primary's WAL position now: after a commit, at or past that commit's record. The insert
-- position, not pg_current_wal_lsn() (the write position), which can still be short of a commit
-- made with synchronous_commit off.
SELECT pg_current_wal_insert_lsn()::text AS lsn;
