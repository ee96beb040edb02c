-- Undoes 0007.api-json.
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback), and
-- the code whose SQL calls api_user (sql/users.sql) goes back first.
-- squawk-ignore ban-drop-function
DROP FUNCTION api_user(bigint, text, text, timestamptz, timestamptz);
-- Only api_user, dropped above, calls it.
-- squawk-ignore ban-drop-function
DROP FUNCTION api_timestamp(timestamptz);
