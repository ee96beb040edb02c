-- Undoes 0014.create-organizations: drops both tables with every organization and membership,
-- and takes the organizations scopes from every client.
UPDATE api_clients
   SET scopes = array_remove(array_remove(scopes, 'organizations:read'), 'organizations:write')
 WHERE scopes && ARRAY['organizations:read', 'organizations:write'];
DELETE FROM api_scopes WHERE name IN ('organizations:read', 'organizations:write');
DROP FUNCTION organizations_matching(text, timestamptz, timestamptz, bigint);
DROP TABLE memberships;
DROP TABLE organizations;
