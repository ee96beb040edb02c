-- Why: the events_notify trigger sent NOTIFY inside every writing transaction. PostgreSQL
-- serialises the commits of notifying transactions on one database-wide lock held through the
-- commit's WAL flush, so writes could not share a flush (group commit): pgbench with the create
-- statement did 2,100 transactions/s with the trigger and 5,400/s without it, and the service's
-- creates/s rose 20-25% (docs/benchmarks.md). The service now announces new events itself,
-- after its writes commit, in a transaction of its own (events.announce_events in sql/).
DROP TRIGGER events_notify ON events;
-- Only the trigger dropped above called it; the service never did.
-- squawk-ignore ban-drop-function
DROP FUNCTION events_notify();
