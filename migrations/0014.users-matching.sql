-- Why: the users' list filters were written out in each of the five list and count queries of
-- sql/users.sql. This function is their one definition: the users a list request's filters
-- match (a NULL filter is off). PostgreSQL inlines it into each query that reads from it, and
-- those run unprepared, so the planner sees the real values, drops the filters that are off and
-- picks the index (tests/test_explain.py proves each plan). `username_prefix` is literal: the
-- `_` usernames may contain is escaped before LIKE sees it.

CREATE FUNCTION users_matching(email text, username text, username_prefix text,
                               created_after timestamptz, created_before timestamptz)
    RETURNS SETOF users
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT *
      FROM users
     WHERE (users_matching.email IS NULL OR lower(users.email) = lower(users_matching.email))
       AND (users_matching.username IS NULL
            OR lower(users.username) = lower(users_matching.username))
       AND (users_matching.username_prefix IS NULL
            OR lower(users.username)
               LIKE replace(lower(users_matching.username_prefix), '_', '\_') || '%')
       AND (created_after IS NULL OR users.created_at > created_after)
       AND (created_before IS NULL OR users.created_at < created_before)
$$;

COMMENT ON FUNCTION users_matching(text, text, text, timestamptz, timestamptz) IS 'The users a list request''s filters match (NULL: filter off); inlined into the queries of sql/users.sql.';
