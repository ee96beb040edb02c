-- Why: every conditional write (If-Match) of every resource keeps the same rule: the row
-- changes only when its version is one the client names, or when it names none. One definition
-- instead of the same two lines in each UPDATE and DELETE. A plain SQL function, so PostgreSQL
-- inlines it: the planner sees `version = ANY (...)` as if written out.

CREATE FUNCTION version_matches(current_version integer, accepted integer[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN accepted IS NULL OR current_version = ANY (accepted);

COMMENT ON FUNCTION version_matches(integer, integer[]) IS 'A conditional write''s guard: true when the client named no versions (no If-Match) or the current one.';
