-- Queries of `dataservice migrate` (dataservice/migrate.py), run on yoyo's own connections.

-- name: set_local(name, value)^
-- Sets one of migrate's limits (lock_timeout, statement_timeout) for this transaction only:
-- behind PgBouncer in transaction mode a session setting would stay on a shared connection.
SELECT set_config(:name, :value, true);

-- name: invalid_indexes()
-- Invalid indexes: what a failed CREATE INDEX CONCURRENTLY leaves behind.
SELECT indexrelid::regclass::text
  FROM pg_index
 WHERE NOT indisvalid
 ORDER BY 1;
