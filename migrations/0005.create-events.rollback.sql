-- Undoes 0005.create-events: the outbox and everything in it.
DROP TRIGGER events_notify ON events;
DROP FUNCTION events_notify();
DROP TABLE events;
