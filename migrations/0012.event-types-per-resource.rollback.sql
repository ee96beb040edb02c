-- Undoes 0012.event-types-per-resource: the users' literal list of 0005 again. It fails while
-- the feed holds events of other resources (prune them, or roll back their resources first).
-- A rollback puts back what its migration replaced: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-constraint
ALTER TABLE events DROP CONSTRAINT events_type_check;
-- The feed is read while this scans it; a rollback is a deliberate, rare step.
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE events ADD CONSTRAINT events_type_check
    CHECK (type IN ('user.created', 'user.updated', 'user.password_changed', 'user.deleted'));
