-- Why: a consumer of the change feed links its own work to the write that caused an event
-- (issue 28): each event records the W3C trace id of the request that made it (32 hex digits),
-- or NULL when the request carried none and tracing was off. Nullable, no default: adding it
-- rewrites nothing, and the events written before it have none.

ALTER TABLE events ADD COLUMN trace_id text;

COMMENT ON COLUMN events.trace_id IS 'W3C trace id (32 lowercase hex digits) of the request that made the change; NULL when unknown.';
