-- Undoes 0004.application-role. The role itself stays: roles belong to the whole cluster and
-- other databases may use it.
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-function
DROP FUNCTION applied_migrations();
REVOKE ALL ON users, api_clients FROM dataservice_app;
