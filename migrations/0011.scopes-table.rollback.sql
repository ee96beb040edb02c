-- Undoes 0011.scopes-table: the literal CHECK of 0003 again. It fails while a client holds a
-- scope that 0003 did not know (revoke or change that client first).
-- api_clients holds a row per calling service: its scan is instant.
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE api_clients ADD CONSTRAINT api_clients_scopes_check CHECK (
    scopes <@ ARRAY['users:read', 'users:write', 'users:credentials', 'events:read']::text[]
);
DROP TRIGGER api_clients_known_scopes ON api_clients;
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-function
DROP FUNCTION api_clients_known_scopes();
-- The check above takes over; the lookup table goes.
-- squawk-ignore ban-drop-table
DROP TABLE api_scopes;
