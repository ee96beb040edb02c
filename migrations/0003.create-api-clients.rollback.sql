-- Undoes 0003.create-api-clients.
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-table
DROP TABLE api_clients;
