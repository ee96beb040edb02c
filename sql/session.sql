-- Settings of the database session a request borrows from the pool.

-- name: tag_connection(name)$
-- Names the session after the request's trace (application_name, shown by pg_stat_activity),
-- so a DBA can find the request behind a running statement (docs/dba.md). Session-wide on
-- purpose: the next request to take the connection names it again.
SELECT set_config('application_name', :name, false) AS application_name;
