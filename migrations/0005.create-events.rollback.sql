-- Undoes 0005.create-events: the outbox and everything in it.
DROP TRIGGER events_notify ON events;
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-function
DROP FUNCTION events_notify();
-- The outbox goes with every event in it: consumers of the feed must have read them.
-- squawk-ignore ban-drop-table
DROP TABLE events;
