-- Undoes 0006.create-idempotency-keys.
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-table
DROP TABLE idempotency_keys;
