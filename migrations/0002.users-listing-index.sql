-- transactional: false
-- Why: listing users sorted by creation time (and filtering by created_after/created_before)
-- pages with a keyset on (created_at, id). This index serves both directions of that sort, so a
-- deep page costs what the first page costs. The id sorts use the primary key; the email and
-- username filters use the unique indexes of 0001.
--
-- CONCURRENTLY: users already holds rows when this runs on an existing deployment, and a plain
-- CREATE INDEX blocks every write to it for as long as the build takes. CONCURRENTLY cannot run
-- in a transaction, hence `transactional: false` (yoyo runs this file, and its rollback, outside
-- one), and this file holds this one statement only.

-- No IF NOT EXISTS: a concurrent build that fails leaves an invalid index of this name, which
-- IF NOT EXISTS would take for done. Drop it and migrate again (docs/operations.md).
-- squawk-ignore prefer-robust-stmts
CREATE INDEX CONCURRENTLY users_created_at_id_idx ON users (created_at, id);
