-- Undoes 0007.api-json.
DROP FUNCTION api_user(bigint, text, text, timestamptz, timestamptz);
DROP FUNCTION api_timestamp(timestamptz);
