-- Undoes 0018.events-trace-id: events no longer record the trace of their request.
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-column
ALTER TABLE events DROP COLUMN trace_id;
