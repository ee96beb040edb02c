-- Undoes 0019.api-json-every-resource.
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback), and
-- the code whose SQL calls api_membership (sql/memberships.sql, organizations.sql, users.sql)
-- goes back first.
-- squawk-ignore ban-drop-function
DROP FUNCTION api_membership(bigint, bigint, text, timestamptz, timestamptz);
-- Likewise for api_organization (sql/organizations.sql).
-- squawk-ignore ban-drop-function
DROP FUNCTION api_organization(bigint, text, text, timestamptz, timestamptz);
