-- Undoes 0012.event-types-per-resource: the users' literal list of 0005 again. It fails while
-- the feed holds events of other resources (prune them, or roll back their resources first).
ALTER TABLE events DROP CONSTRAINT events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check
    CHECK (type IN ('user.created', 'user.updated', 'user.password_changed', 'user.deleted'));
