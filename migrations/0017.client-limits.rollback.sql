-- Undoes 0017.client-limits: every client is unlimited again.
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-constraint
ALTER TABLE api_clients DROP CONSTRAINT api_clients_limits_check;
-- The limits go with their columns.
-- squawk-ignore ban-drop-column
ALTER TABLE api_clients DROP COLUMN rate_per_second;
-- (as above)
-- squawk-ignore ban-drop-column
ALTER TABLE api_clients DROP COLUMN burst;
-- (as above)
-- squawk-ignore ban-drop-column
ALTER TABLE api_clients DROP COLUMN max_in_flight;
