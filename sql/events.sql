-- The outbox and the change feed. See migrations/0005.create-events.sql for the ordering rule.

-- name: append_event(type, entity, entity_id, actor, data, trace_id)!
-- Records one change; runs in the transaction that made the change.
INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
VALUES (:type, :entity, :entity_id, :actor, :data, :trace_id);

-- name: announce_events()^
-- Wakes the feed's long-polling readers in every worker and instance (they LISTEN on this
-- channel), after writes that appended events have committed. A transaction of its own, so that
-- writes never commit holding NOTIFY's database-wide lock (migration 0008); asynchronous commit,
-- since a lost wake-up costs a reader at most its 0.5 s re-poll and is worth no WAL flush.
SELECT set_config('synchronous_commit', 'off', true) AS synchronous_commit,
       pg_notify('dataservice_events', '') AS notified;

-- name: listen_for_events()#
-- Subscribes this session (the feed's listener, a connection of its own) to announce_events.
LISTEN dataservice_events;

-- name: list_events(after_xid, after_id, types, limit)
-- The next events in commit-safe order: after the cursor's (xid, id), and only from transactions
-- older than every transaction still running, so none can still commit behind the cursor.
SELECT id, xid::text::bigint AS xid, type, entity, entity_id, occurred_at, actor, data, trace_id
  FROM events
 WHERE (xid, id) > (:after_xid::text::xid8, :after_id::bigint)
   AND xid < pg_snapshot_xmin(pg_current_snapshot())
   AND (:types::text[] IS NULL OR type = ANY (:types::text[]))
 ORDER BY events.xid, events.id  -- the table's columns (served by events_xid_id_idx), not the output alias
 LIMIT :limit;

-- name: prune_events(retention_seconds)!
-- Deletes events older than the retention.
DELETE FROM events
 WHERE occurred_at < now() - make_interval(secs => :retention_seconds);
