-- Why: least privilege. Migrations run as the owner of the schema; the service connects as
-- dataservice_app, which may read and write the service's tables and nothing else: no DDL, no
-- TRUNCATE, no access to yoyo's bookkeeping. Ops give the role LOGIN and a password, or grant
-- it to the login role the service uses (see docs/security.md). Every later migration that
-- creates a table grants it here too; a test fails on a table without these grants.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dataservice_app') THEN
        CREATE ROLE dataservice_app NOLOGIN;
    END IF;
END;
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON users, api_clients TO dataservice_app;

-- /ready compares the applied migrations with the code's; the role cannot read yoyo's table,
-- so the owner lends it exactly that, through a function with a fixed search_path.
CREATE FUNCTION applied_migrations() RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    SELECT migration_id FROM public._yoyo_migration
$$;

REVOKE ALL ON FUNCTION applied_migrations() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION applied_migrations() TO dataservice_app;

COMMENT ON FUNCTION applied_migrations() IS 'Applied migration ids, for the readiness probe of the application role.';
