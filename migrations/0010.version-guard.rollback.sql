-- Undoes 0010.version-guard.
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-function
DROP FUNCTION version_matches(integer, integer[]);
