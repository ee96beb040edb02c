-- Undoes 0010.version-guard.
DROP FUNCTION version_matches(integer, integer[]);
