-- Queries the readiness probe runs. They read yoyo's bookkeeping, never the service's data.

-- name: applied_migrations()
-- The ids of the migrations yoyo has applied, through the owner's function (migration 0004):
-- the application role may not read yoyo's tables.
SELECT migration_id
  FROM applied_migrations() AS migration_id;
