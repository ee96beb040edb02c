-- Undoes 0013.users-matching.
DROP FUNCTION users_matching(text, text, text, timestamptz, timestamptz);
