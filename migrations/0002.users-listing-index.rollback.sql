-- Undoes 0002.users-listing-index. Runs outside a transaction, as 0002 does (yoyo takes
-- `transactional: false` from 0002.users-listing-index.sql): a plain DROP INDEX would block
-- every read and write of users until it is done.
DROP INDEX CONCURRENTLY IF EXISTS users_created_at_id_idx;
