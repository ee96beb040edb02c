-- Why: scopes were a literal list in a CHECK on api_clients (and in three places of the code).
-- Each resource's migration now adds the scopes its endpoints require to this table, which
-- api_clients' scopes must come from; the code's list (the scopes its endpoints declare) and
-- this table are held equal by tests/test_contracts.py.

CREATE TABLE api_scopes (
    name        text PRIMARY KEY,
    description text NOT NULL,
    CONSTRAINT api_scopes_name_check CHECK (name ~ '^[a-z_]+:[a-z_]+$')
);

INSERT INTO api_scopes (name, description) VALUES
    ('users:read', 'Read users.'),
    ('users:write', 'Create, change and delete users.'),
    ('users:credentials', 'Check passwords and change them.'),
    ('events:read', 'Read the change feed.');

-- A CHECK cannot read a table, so a trigger keeps every client's scopes known. It reports as
-- the constraint it replaces, so errors read the same.
CREATE FUNCTION api_clients_known_scopes() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
AS $$
BEGIN
    IF EXISTS (SELECT FROM unnest(NEW.scopes) AS s (name)
                WHERE s.name NOT IN (SELECT name FROM api_scopes)) THEN
        RAISE EXCEPTION 'unknown scope in %', NEW.scopes
            USING ERRCODE = 'check_violation', CONSTRAINT = 'api_clients_scopes_check',
                  TABLE = 'api_clients', COLUMN = 'scopes';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER api_clients_known_scopes BEFORE INSERT OR UPDATE OF scopes ON api_clients
    FOR EACH ROW EXECUTE FUNCTION api_clients_known_scopes();

-- The trigger above replaces it and enforces the same rule against the table.
-- squawk-ignore ban-drop-constraint
ALTER TABLE api_clients DROP CONSTRAINT api_clients_scopes_check;

GRANT SELECT ON api_scopes TO dataservice_app;

COMMENT ON TABLE api_scopes IS 'Every scope an endpoint may require; filled by the migrations of the resources that require them.';
