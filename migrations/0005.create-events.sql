-- Why: the transactional outbox. Every write appends its event in the same transaction as the
-- change, so a consumer of the change feed sees exactly the committed changes, no dual writes.
-- `xid` records the writing transaction: the feed hands out events in (xid, id) order and only
-- below the oldest transaction still running (pg_snapshot_xmin), so an event whose transaction
-- commits late is never skipped by a consumer that has already moved past later ids.

CREATE TABLE events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    type        text        NOT NULL,
    entity      text        NOT NULL,
    entity_id   bigint      NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text,
    data        jsonb       NOT NULL,
    CONSTRAINT events_type_check
        CHECK (type IN ('user.created', 'user.updated', 'user.password_changed', 'user.deleted'))
);

-- The feed's keyset; also what "events older than the retention" prunes by (occurred_at grows
-- with id closely enough that pruning by id order is cheap).
CREATE INDEX events_xid_id_idx ON events (xid, id);
CREATE INDEX events_occurred_at_idx ON events (occurred_at);

-- Wakes long-polling feed readers when events commit (NOTIFY is delivered at commit, once per
-- transaction and channel).
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dataservice_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

GRANT SELECT, INSERT, UPDATE, DELETE ON events TO dataservice_app;

COMMENT ON TABLE events IS 'Outbox: one row per change, written in the changing transaction; read by GET /api/v1/events.';
COMMENT ON COLUMN events.xid IS 'Writing transaction; the feed orders by (xid, id) and holds back xids not yet finished.';
COMMENT ON COLUMN events.data IS 'The entity as the API shows it after the change (before it, for a delete). Never a secret.';
COMMENT ON COLUMN events.actor IS 'The API client that caused the change, where known.';
