-- Undoes 0011.scopes-table: the literal CHECK of 0003 again. It fails while a client holds a
-- scope that 0003 did not know (revoke or change that client first).
ALTER TABLE api_clients ADD CONSTRAINT api_clients_scopes_check CHECK (
    scopes <@ ARRAY['users:read', 'users:write', 'users:credentials', 'events:read']::text[]
);
DROP TRIGGER api_clients_known_scopes ON api_clients;
DROP FUNCTION api_clients_known_scopes();
DROP TABLE api_scopes;
