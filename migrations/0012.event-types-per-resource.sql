-- Why: events.type was checked against a literal list of the users' event types, so every new
-- resource would have had to rewrite it. Each resource declares its event types in its code
-- (tests/test_contracts.py holds the SQL that writes events to them); the database keeps the
-- shape: `<entity>.<action>`, the entity being the row's `entity`.

ALTER TABLE events DROP CONSTRAINT events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check
    CHECK (type ~ '^[a-z]+(_[a-z]+)*\.[a-z]+(_[a-z]+)*$' AND split_part(type, '.', 1) = entity)
    NOT VALID;
ALTER TABLE events VALIDATE CONSTRAINT events_type_check;
