-- Undoes 0015.create-organizations: drops both tables with every organization and membership,
-- and takes the organizations scopes from every client.
UPDATE api_clients
   SET scopes = array_remove(array_remove(scopes, 'organizations:read'), 'organizations:write')
 WHERE scopes && ARRAY['organizations:read', 'organizations:write'];
DELETE FROM api_scopes WHERE name IN ('organizations:read', 'organizations:write');
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-function
DROP FUNCTION organizations_matching(text, timestamptz, timestamptz, bigint);
-- Every organization and membership goes with them.
-- squawk-ignore ban-drop-table
DROP TABLE memberships;
-- ... and the organizations themselves.
-- squawk-ignore ban-drop-table
DROP TABLE organizations;
