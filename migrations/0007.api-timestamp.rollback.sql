-- Undoes 0007.api-timestamp.
DROP FUNCTION api_timestamp(timestamptz);
