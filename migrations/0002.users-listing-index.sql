-- Why: listing users sorted by creation time (and filtering by created_after/created_before)
-- pages with a keyset on (created_at, id). This index serves both directions of that sort, so a
-- deep page costs what the first page costs. The id sorts use the primary key; the email and
-- username filters use the unique indexes of 0001.

CREATE INDEX users_created_at_id_idx ON users (created_at, id);
