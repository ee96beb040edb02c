-- Why: a create writes its user and the user's change-feed event in one statement (one round
-- trip instead of four; see docs/benchmarks.md), so the event's JSON is built in SQL and must
-- read exactly as the API writes a user (dataservice/schemas/users.py, UserOut): these two
-- functions are that one definition on the SQL side. Timestamps are RFC 3339 in UTC as
-- Python's isoformat() gives them, microseconds only when there are any
-- ("2026-12-01T13:05:09.120000+00:00", "2026-12-01T13:05:09+00:00").
-- tests/test_events.py holds the two definitions together.

CREATE FUNCTION api_timestamp(ts timestamptz) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    RETURN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN extract(microseconds FROM ts AT TIME ZONE 'UTC') % 1000000 = 0 THEN ''
                ELSE to_char(ts AT TIME ZONE 'UTC', '.US') END
        || '+00:00';

CREATE FUNCTION api_user(id bigint, email text, username text, created_at timestamptz,
                         updated_at timestamptz) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN jsonb_build_object('id', id, 'email', email, 'username', username,
                              'created_at', api_timestamp(created_at),
                              'updated_at', api_timestamp(updated_at));

COMMENT ON FUNCTION api_timestamp(timestamptz) IS 'A timestamp as the API shows it (UTC, isoformat), for JSON built in SQL.';
COMMENT ON FUNCTION api_user(bigint, text, text, timestamptz, timestamptz) IS 'A user as the API shows it (UserOut), for event data built in SQL. Never add a secret.';
