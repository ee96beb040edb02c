-- Undoes 0013.validate-event-types: nothing to undo (a validated check stays valid; rolling back
-- 0012 replaces it).
SELECT 1;
