-- Why: 0012 added events_type_check NOT VALID. Validating it in a transaction of its own takes
-- only a SHARE UPDATE EXCLUSIVE lock: the feed's reads and the writes' inserts go on while it
-- reads the table.

ALTER TABLE events VALIDATE CONSTRAINT events_type_check;
