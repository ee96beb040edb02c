-- Queries the readiness probe runs. They read yoyo's bookkeeping, never the service's data.

-- name: applied_migrations()
-- The ids of the migrations yoyo has applied, or no rows when it never ran here.
SELECT migration_id
  FROM _yoyo_migration;
