-- Undoes 0002.users-listing-index.
DROP INDEX users_created_at_id_idx;
