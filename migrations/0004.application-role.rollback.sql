-- Undoes 0004.application-role. The role itself stays: roles belong to the whole cluster and
-- other databases may use it.
DROP FUNCTION applied_migrations();
REVOKE ALL ON users, api_clients FROM dataservice_app;
