-- Undoes 0014.users-matching.
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-function
DROP FUNCTION users_matching(text, text, text, timestamptz, timestamptz);
